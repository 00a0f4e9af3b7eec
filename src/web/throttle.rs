//! Per-client-address throttling of failed sign-ins, per pool: past the pool's
//! `address_lockout_attempts` failures in its `address_lockout_window`, an address is
//! answered 429 before any password is checked. Counted per pool, so a flood against one
//! pool does not shut an address (a shared office NAT, say) out of another.

use std::net::IpAddr;

use dashmap::DashMap;

use crate::config::LockoutPolicy;
use crate::ids::PoolId;

/// Past this many tracked (pool, address) pairs, stale ones are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Default)]
pub struct Throttle {
    /// (pool, address) → failures in the current window, and when it started.
    failures: DashMap<(PoolId, IpAddr), (u32, i64)>,
}

impl Throttle {
    /// Seconds to wait, if the address is over the pool's limit now.
    pub fn blocked(&self, pool: &PoolId, policy: &LockoutPolicy, ip: Option<IpAddr>, now: i64) -> Option<i64> {
        let (count, start) = *self.failures.get(&(pool.clone(), ip?))?;
        let window = policy.address_window.as_secs() as i64;
        (count >= policy.address_attempts && now - start < window).then_some(window - (now - start))
    }

    pub fn failed(&self, pool: &PoolId, policy: &LockoutPolicy, ip: Option<IpAddr>, now: i64) {
        let Some(ip) = ip else { return };
        let window = policy.address_window.as_secs() as i64;
        if self.failures.len() > MAX_TRACKED {
            self.failures.retain(|_, (_, start)| now - *start < window);
        }
        let mut entry = self.failures.entry((pool.clone(), ip)).or_insert((0, now));
        if now - entry.1 >= window {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_address_waits_out_the_window_in_its_pool_only() {
        let policy = LockoutPolicy {
            attempts: 5,
            duration: Duration::from_secs(900),
            address_attempts: 2,
            address_window: Duration::from_secs(60),
        };
        let (a, b) = (PoolId::parse("a").unwrap(), PoolId::parse("b").unwrap());
        let ip: Option<IpAddr> = Some("192.0.2.1".parse().unwrap());
        let t = Throttle::default();
        t.failed(&a, &policy, ip, 1000);
        assert_eq!(t.blocked(&a, &policy, ip, 1000), None);
        t.failed(&a, &policy, ip, 1010);
        assert_eq!(t.blocked(&a, &policy, ip, 1020), Some(40));
        assert_eq!(t.blocked(&b, &policy, ip, 1020), None, "another pool is not affected");
        assert_eq!(t.blocked(&a, &policy, Some("192.0.2.2".parse().unwrap()), 1020), None);
        assert_eq!(t.blocked(&a, &policy, ip, 1060), None, "the window has passed");
    }
}
