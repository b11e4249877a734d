//! Heartbeats, idle timeouts, the login deadline, and reconnect backoff.
//!
//! TeamTalk checked every connection from a 1-second timer: cost grew with
//! the number of connections, healthy or not. Here each connection has one
//! netlib timer armed at its *earliest* deadline. When it fires, the deadline
//! is recomputed from the connection's timestamps (traffic moves deadlines
//! without touching the timer) and the timer is re-armed; only a connection
//! that is really due costs anything, and a timer operation is O(log n).

use std::time::{Duration, Instant};

/// Which deadlines apply to a connection. Defaults are TeamTalk's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Send a heartbeat after this long without sending anything.
    pub heartbeat: Option<Duration>,
    /// Close after this long without receiving anything.
    pub idle: Option<Duration>,
    /// Close if not marked logged in within this long of connecting.
    pub login: Option<Duration>,
}

impl Timeouts {
    /// Server-to-server links: heartbeat after 5 s of silence, close after 30 s.
    pub const SERVER_LINK: Timeouts = Timeouts {
        heartbeat: Some(Duration::from_secs(5)),
        idle: Some(Duration::from_secs(30)),
        login: None,
    };
    /// Desktop clients: closed after 120 s of silence and if not logged in
    /// within 15 s.
    pub const CLIENT: Timeouts = Timeouts {
        heartbeat: None,
        idle: Some(Duration::from_secs(120)),
        login: Some(Duration::from_secs(15)),
    };
    /// Mobile clients: 300 s of silence.
    pub const MOBILE_CLIENT: Timeouts = Timeouts {
        heartbeat: None,
        idle: Some(Duration::from_secs(300)),
        login: Some(Duration::from_secs(15)),
    };
    /// No deadlines at all.
    pub const NONE: Timeouts = Timeouts {
        heartbeat: None,
        idle: None,
        login: None,
    };
}

/// What a due connection timer should do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Close: no login in time.
    LoginTimeout,
    /// Close: nothing received for too long.
    IdleTimeout,
    /// Send a heartbeat, then re-arm.
    Heartbeat,
    /// Nothing yet; re-arm.
    Nothing,
}

/// Decides what is due at `now` and when to look next (`None` when a close
/// is due, or no deadline applies: the caller acts on `Due` first).
pub fn evaluate(
    t: &Timeouts,
    now: Instant,
    connected_at: Instant,
    logged_in: bool,
    last_recv: Instant,
    last_send: Instant,
) -> (Due, Option<Instant>) {
    if !logged_in {
        if let Some(login) = t.login {
            if now >= connected_at + login {
                return (Due::LoginTimeout, None);
            }
        }
    }
    if let Some(idle) = t.idle {
        if now >= last_recv + idle {
            return (Due::IdleTimeout, None);
        }
    }
    let heartbeat_due = t.heartbeat.is_some_and(|hb| now >= last_send + hb);
    // After a heartbeat the send time becomes `now`.
    let last_send = if heartbeat_due { now } else { last_send };
    let next = [
        t.login.filter(|_| !logged_in).map(|d| connected_at + d),
        t.idle.map(|d| last_recv + d),
        t.heartbeat.map(|d| last_send + d),
    ]
    .into_iter()
    .flatten()
    .min();
    let due = if heartbeat_due {
        Due::Heartbeat
    } else {
        Due::Nothing
    };
    (due, next)
}

/// Exponential reconnect backoff: 1 s doubling to a 64 s cap, with up to
/// 25% random jitter so many clients do not reconnect in lockstep; reset
/// after a successful connect. TeamTalk's wrapped from 64 s back to 4 s.
#[derive(Debug, Clone)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Largest delay.
    pub max: Duration,
    current: Duration,
    seed: u64,
}

impl Backoff {
    /// A backoff from `min` doubling to `max`.
    pub fn new(min: Duration, max: Duration) -> Backoff {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x9e37_79b9)
            | 1;
        Backoff {
            min,
            max,
            current: min,
            seed,
        }
    }

    /// The delay before the next attempt; later calls double it up to `max`.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        // xorshift: cheap jitter without a dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let jitter_range = base.as_millis() as u64 / 4;
        let jitter = if jitter_range == 0 {
            0
        } else {
            self.seed % (jitter_range + 1)
        };
        base + Duration::from_millis(jitter)
    }

    /// The base delay of the next attempt, without jitter.
    pub fn current(&self) -> Duration {
        self.current
    }

    /// Back to `min` (after a successful connect).
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(Duration::from_secs(1), Duration::from_secs(64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regression_backoff_caps_instead_of_wrapping() {
        let mut b = Backoff::default();
        let bases: Vec<u64> = (0..12)
            .map(|_| {
                let base = b.current().as_secs();
                let d = b.next_delay();
                assert!(d >= Duration::from_secs(base));
                assert!(d <= Duration::from_secs(base) + Duration::from_secs(base) / 4);
                base
            })
            .collect();
        assert_eq!(bases, vec![1, 2, 4, 8, 16, 32, 64, 64, 64, 64, 64, 64]);
        b.reset();
        assert_eq!(b.current(), Duration::from_secs(1));
    }

    #[test]
    fn evaluate_orders_deadlines() {
        let t0 = Instant::now();
        let s = |n| Duration::from_secs(n);
        let t = Timeouts::SERVER_LINK;
        // Quiet link: heartbeat at 5 s.
        let (due, next) = evaluate(&t, t0 + s(5), t0, true, t0, t0);
        assert_eq!(due, Due::Heartbeat);
        assert_eq!(next, Some(t0 + s(10)));
        // Silent peer: closed at 30 s.
        let (due, _) = evaluate(&t, t0 + s(30), t0, true, t0, t0 + s(29));
        assert_eq!(due, Due::IdleTimeout);
        // Client not logged in.
        let (due, _) = evaluate(&Timeouts::CLIENT, t0 + s(15), t0, false, t0 + s(14), t0);
        assert_eq!(due, Due::LoginTimeout);
        let (due, next) = evaluate(&Timeouts::CLIENT, t0 + s(15), t0, true, t0 + s(14), t0);
        assert_eq!(due, Due::Nothing);
        assert_eq!(next, Some(t0 + s(134)));
    }
}
