//! Per-client-address throttling of failed sign-ins: past a number of failures in a
//! window, an address is answered 429 before any password is checked.

use std::net::IpAddr;

use dashmap::DashMap;

/// Failures allowed per address per window.
pub const LIMIT: u32 = 20;
pub const WINDOW_SECS: i64 = 300;

#[derive(Default)]
pub struct Throttle {
    failures: DashMap<IpAddr, (u32, i64)>,
}

impl Throttle {
    /// Seconds to wait, if the address is over its limit now.
    pub fn blocked(&self, ip: Option<IpAddr>, now: i64) -> Option<i64> {
        let (count, start) = *self.failures.get(&ip?)?;
        (count >= LIMIT && now - start < WINDOW_SECS).then_some(WINDOW_SECS - (now - start))
    }

    pub fn failed(&self, ip: Option<IpAddr>, now: i64) {
        let Some(ip) = ip else { return };
        if self.failures.len() > 100_000 {
            self.failures.retain(|_, (_, start)| now - *start < WINDOW_SECS);
        }
        let mut entry = self.failures.entry(ip).or_insert((0, now));
        if now - entry.1 >= WINDOW_SECS {
            *entry = (0, now);
        }
        entry.0 += 1;
    }
}
