//! Password checks, bounded. One argon2id check takes 19 MiB and a core for tens of
//! milliseconds, so a flood of logins must not start them all at once: at most
//! `in_flight` run together (the core count), at most `queue` more wait their turn — no
//! client address holding more than a quarter of the places — and the rest are told to come
//! back (503 with `Retry-After`). Memory under any flood stays near `in_flight` × 19 MiB.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::Semaphore;

/// No place to check a password now: try again after this many seconds.
#[derive(Debug, PartialEq, Eq)]
pub struct Busy {
    pub retry_after: u64,
}

pub struct HashGate {
    running: Arc<Semaphore>,
    /// Checks running or waiting.
    admitted: AtomicUsize,
    capacity: usize,
    per_address: DashMap<IpAddr, usize>,
    per_address_max: usize,
    /// The longest a check waits for its turn before it is answered `Busy`.
    wait: Duration,
}

impl Default for HashGate {
    /// As many checks at once as there are cores, 32 times as many waiting.
    fn default() -> HashGate {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        HashGate::new(cores, 32 * cores, Duration::from_secs(10))
    }
}

impl HashGate {
    pub fn new(in_flight: usize, queue: usize, wait: Duration) -> HashGate {
        let in_flight = in_flight.max(1);
        HashGate {
            running: Arc::new(Semaphore::new(in_flight)),
            admitted: AtomicUsize::new(0),
            capacity: in_flight + queue,
            per_address: DashMap::new(),
            per_address_max: (queue / 4).max(in_flight),
            wait,
        }
    }

    /// Runs `check` on a blocking thread when its turn comes, or answers `Busy` at once
    /// when the queue (or this address's share of it) is full, or after `wait`.
    pub async fn run<T: Send + 'static>(
        &self,
        client: Option<IpAddr>,
        check: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Busy> {
        let busy = Busy { retry_after: 2 };
        let _place = self.admit(client).ok_or(Busy { retry_after: 1 })?;
        let permit = match tokio::time::timeout(self.wait, self.running.clone().acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => return Err(busy),
        };
        // The permit travels with the work: a client that hangs up does not free its place
        // before its check has finished.
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            check()
        })
        .await
        .map_err(|_| busy)
    }

    fn admit(&self, client: Option<IpAddr>) -> Option<Place<'_>> {
        if self.admitted.fetch_add(1, Ordering::SeqCst) >= self.capacity {
            self.admitted.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        if let Some(ip) = client {
            let mut n = self.per_address.entry(ip).or_insert(0);
            if *n >= self.per_address_max {
                drop(n);
                self.admitted.fetch_sub(1, Ordering::SeqCst);
                return None;
            }
            *n += 1;
        }
        Some(Place { gate: self, client })
    }
}

/// A place in the gate, given back when dropped (also when the client hangs up).
struct Place<'a> {
    gate: &'a HashGate,
    client: Option<IpAddr>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.gate.admitted.fetch_sub(1, Ordering::SeqCst);
        if let Some(ip) = self.client {
            self.gate.per_address.remove_if_mut(&ip, |_, n| {
                *n -= 1;
                *n == 0
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn at_most_in_flight_run_and_the_rest_queue_or_are_turned_away() {
        let gate = Arc::new(HashGate::new(2, 8, Duration::from_secs(5)));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for i in 0..40u8 {
            let (gate, running, peak) = (gate.clone(), running.clone(), peak.clone());
            // Ten addresses, four clients each.
            let ip: IpAddr = [127, 0, 0, 2 + i % 10].into();
            tasks.push(tokio::spawn(async move {
                gate.run(Some(ip), move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(200));
                    running.fetch_sub(1, Ordering::SeqCst);
                })
                .await
            }));
        }
        let mut ran = 0;
        let mut busy = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => ran += 1,
                Err(b) => {
                    assert!(b.retry_after >= 1);
                    busy += 1;
                }
            }
        }
        assert_eq!(peak.load(Ordering::SeqCst), 2, "never more than two at once");
        assert_eq!(ran + busy, 40);
        assert!((2..=10).contains(&ran), "at most in-flight + queue ran: {ran}");
        assert_eq!(gate.admitted.load(Ordering::SeqCst), 0, "every place given back");
        assert!(gate.per_address.is_empty());
        // Drained, it takes work again.
        assert_eq!(gate.run(None, || 7).await, Ok(7));
    }

    #[tokio::test]
    async fn one_address_cannot_take_the_whole_queue() {
        let gate = HashGate::new(1, 8, Duration::from_secs(5));
        let ip: IpAddr = [127, 0, 0, 9].into();
        let places: Vec<_> = (0..2).map(|_| gate.admit(Some(ip)).unwrap()).collect();
        assert!(gate.admit(Some(ip)).is_none(), "a quarter of the queue per address");
        assert!(
            gate.admit(Some([127, 0, 0, 10].into())).is_some(),
            "another address still gets in"
        );
        drop(places);
        assert!(gate.admit(Some(ip)).is_some());
    }
}
