//! Command counters for `stats`, cheap enough to keep on every request.
//!
//! With `-t N` many event loops (one per thread) serve requests at once.
//! Bumping a shared atomic on every `get` would bounce one cache line between
//! cores (the reason memcached keeps per-thread stats), so each connection's
//! [`Session`](super::Session) counts into a plain [`LocalCounters`] and adds
//! it to the shared [`Counters`] once per `process` call. The totals thus
//! live in one place, the store, and `stats` on any loop reads them there
//! without asking the other loops. Item counts
//! (`curr_items`, `bytes`, `evictions`, ...) are not here: they live in each
//! store shard, under the shard's lock, and are summed when `stats` asks.

use std::sync::atomic::{AtomicU64, Ordering};

/// One monotonically increasing counter reported by `stats`.
///
/// The discriminant indexes [`Counters`] and [`LocalCounters`]; the order is
/// the order memcached prints them in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Counter {
    /// Connections accepted since start (`total_connections`).
    TotalConnections,
    /// Connections refused because of a connection limit.
    RejectedConnections,
    /// Keys looked up by get/gets (one per key, like memcached).
    CmdGet,
    /// Storage commands whose data block was read.
    CmdSet,
    /// `flush_all` commands.
    CmdFlush,
    /// touch, gat and gats lookups (one per key).
    CmdTouch,
    /// get/gets keys found.
    GetHits,
    /// get/gets keys not found.
    GetMisses,
    /// delete of a missing key.
    DeleteMisses,
    /// delete of a present key.
    DeleteHits,
    /// incr of a missing key.
    IncrMisses,
    /// incr of a present key.
    IncrHits,
    /// decr of a missing key.
    DecrMisses,
    /// decr of a present key.
    DecrHits,
    /// cas of a missing key.
    CasMisses,
    /// cas that stored.
    CasHits,
    /// cas refused because the unique did not match.
    CasBadval,
    /// touch/gat keys found.
    TouchHits,
    /// touch/gat keys not found.
    TouchMisses,
    /// Values refused for exceeding the item size limit.
    StoreTooLarge,
    /// Values refused because no memory could be freed for them.
    StoreNoMemory,
    /// Bytes consumed from clients.
    BytesRead,
    /// Bytes of replies produced.
    BytesWritten,
}

impl Counter {
    /// Every counter, in `stats` order.
    pub const ALL: [Counter; COUNTERS] = [
        Counter::TotalConnections,
        Counter::RejectedConnections,
        Counter::CmdGet,
        Counter::CmdSet,
        Counter::CmdFlush,
        Counter::CmdTouch,
        Counter::GetHits,
        Counter::GetMisses,
        Counter::DeleteMisses,
        Counter::DeleteHits,
        Counter::IncrMisses,
        Counter::IncrHits,
        Counter::DecrMisses,
        Counter::DecrHits,
        Counter::CasMisses,
        Counter::CasHits,
        Counter::CasBadval,
        Counter::TouchHits,
        Counter::TouchMisses,
        Counter::StoreTooLarge,
        Counter::StoreNoMemory,
        Counter::BytesRead,
        Counter::BytesWritten,
    ];

    /// The name `stats` prints for this counter.
    pub fn name(self) -> &'static str {
        match self {
            Counter::TotalConnections => "total_connections",
            Counter::RejectedConnections => "rejected_connections",
            Counter::CmdGet => "cmd_get",
            Counter::CmdSet => "cmd_set",
            Counter::CmdFlush => "cmd_flush",
            Counter::CmdTouch => "cmd_touch",
            Counter::GetHits => "get_hits",
            Counter::GetMisses => "get_misses",
            Counter::DeleteMisses => "delete_misses",
            Counter::DeleteHits => "delete_hits",
            Counter::IncrMisses => "incr_misses",
            Counter::IncrHits => "incr_hits",
            Counter::DecrMisses => "decr_misses",
            Counter::DecrHits => "decr_hits",
            Counter::CasMisses => "cas_misses",
            Counter::CasHits => "cas_hits",
            Counter::CasBadval => "cas_badval",
            Counter::TouchHits => "touch_hits",
            Counter::TouchMisses => "touch_misses",
            Counter::StoreTooLarge => "store_too_large",
            Counter::StoreNoMemory => "store_no_memory",
            Counter::BytesRead => "bytes_read",
            Counter::BytesWritten => "bytes_written",
        }
    }
}

/// How many [`Counter`]s there are.
pub const COUNTERS: usize = 23;

/// The process-wide counters, shared by all threads.
#[derive(Debug, Default)]
pub struct Counters {
    values: [AtomicU64; COUNTERS],
    curr_connections: AtomicU64,
}

impl Counters {
    /// The current value of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize].load(Ordering::Relaxed)
    }

    /// Adds `n` to `counter`.
    pub fn add(&self, counter: Counter, n: u64) {
        self.values[counter as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Adds a connection's pending counts and zeroes them.
    pub fn absorb(&self, local: &mut LocalCounters) {
        if !local.dirty {
            return;
        }
        for (shared, pending) in self.values.iter().zip(local.values.iter_mut()) {
            if *pending != 0 {
                shared.fetch_add(*pending, Ordering::Relaxed);
                *pending = 0;
            }
        }
        local.dirty = false;
    }

    /// Connections open right now (`curr_connections`).
    pub fn curr_connections(&self) -> u64 {
        self.curr_connections.load(Ordering::Relaxed)
    }

    /// Records an accepted connection.
    pub fn connection_opened(&self) {
        self.curr_connections.fetch_add(1, Ordering::Relaxed);
        self.add(Counter::TotalConnections, 1);
    }

    /// Records a closed connection. Never goes below zero, so an unmatched
    /// call cannot wrap the gauge.
    pub fn connection_closed(&self) {
        let _ = self
            .curr_connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Zeroes every counter (`stats reset`); the open-connection gauge is a
    /// state, not a counter, and is kept.
    pub fn reset(&self) {
        for value in &self.values {
            value.store(0, Ordering::Relaxed);
        }
    }
}

/// Counts kept by one connection between flushes into [`Counters`].
#[derive(Debug, Default, Clone)]
pub struct LocalCounters {
    values: [u64; COUNTERS],
    dirty: bool,
}

impl LocalCounters {
    /// Adds `n` to `counter`.
    pub fn add(&mut self, counter: Counter, n: u64) {
        self.values[counter as usize] += n;
        self.dirty = true;
    }

    /// Adds one to `counter`.
    pub fn bump(&mut self, counter: Counter) {
        self.add(counter, 1);
    }

    /// The pending (not yet absorbed) count of `counter`.
    pub fn get(&self, counter: Counter) -> u64 {
        self.values[counter as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_is_in_discriminant_order() {
        for (i, c) in Counter::ALL.iter().enumerate() {
            assert_eq!(*c as usize, i, "{}", c.name());
        }
    }

    #[test]
    fn local_counts_reach_shared_once() {
        let shared = Counters::default();
        let mut local = LocalCounters::default();
        local.bump(Counter::CmdGet);
        local.add(Counter::BytesRead, 10);
        assert_eq!(shared.get(Counter::CmdGet), 0);
        shared.absorb(&mut local);
        assert_eq!(shared.get(Counter::CmdGet), 1);
        assert_eq!(shared.get(Counter::BytesRead), 10);
        assert_eq!(local.get(Counter::CmdGet), 0);
        shared.absorb(&mut local);
        assert_eq!(shared.get(Counter::CmdGet), 1);
    }

    #[test]
    fn connection_gauge_does_not_wrap() {
        let shared = Counters::default();
        shared.connection_closed();
        assert_eq!(shared.curr_connections(), 0);
        shared.connection_opened();
        shared.connection_opened();
        shared.connection_closed();
        assert_eq!(shared.curr_connections(), 1);
        assert_eq!(shared.get(Counter::TotalConnections), 2);
        shared.reset();
        assert_eq!(shared.get(Counter::TotalConnections), 0);
        assert_eq!(shared.curr_connections(), 1);
    }
}
