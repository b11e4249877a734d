//! Wall-clock time for item expiry, behind a trait so tests can move it.
//!
//! memcached's expiry times are wall-clock by definition: a client may send
//! an absolute unix time, and `stats` reports `time`. So unlike the reactor's
//! timers (which use `Instant`), the cache asks a [`Clock`] for unix seconds.
//! The clock is injected into the [`Store`](super::Store) so expiry, touch and
//! delayed `flush_all` can be tested by setting a [`ManualClock`] instead of
//! sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A source of the current unix time in whole seconds.
///
/// Shared by every thread that uses the store, hence `Send + Sync`.
pub trait Clock: Send + Sync {
    /// Seconds since the unix epoch.
    fn now_unix(&self) -> u64;
}

/// The system's wall clock.
///
/// ```
/// use examples::memcached::{Clock, SystemClock};
/// assert!(SystemClock.now_unix() > 1_600_000_000);
/// ```
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_unix(&self) -> u64 {
        // A clock set before 1970 is reported as the epoch rather than
        // panicking; every item then simply looks very old.
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }
}

/// A clock that only moves when told to; for tests and simulations.
///
/// ```
/// use examples::memcached::{Clock, ManualClock};
/// let clock = ManualClock::new(1_000);
/// clock.advance(5);
/// assert_eq!(clock.now_unix(), 1_005);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock reading `now` unix seconds.
    pub fn new(now: u64) -> Self {
        ManualClock {
            now: AtomicU64::new(now),
        }
    }

    /// Sets the time.
    pub fn set(&self, now: u64) {
        self.now.store(now, Ordering::Relaxed);
    }

    /// Moves the time forward by `seconds`.
    pub fn advance(&self, seconds: u64) {
        self.now.fetch_add(seconds, Ordering::Relaxed);
    }
}

impl Clock for ManualClock {
    fn now_unix(&self) -> u64 {
        self.now.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(10);
        assert_eq!(clock.now_unix(), 10);
        clock.advance(3);
        assert_eq!(clock.now_unix(), 13);
        clock.set(100);
        assert_eq!(clock.now_unix(), 100);
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now_unix() > 1_577_836_800);
    }
}
