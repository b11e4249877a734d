//! Removing items wholesale: `flush_all` (now or at a set second) and the
//! background reclaimer's bounded sweep for expired items. Lookups that
//! find a single expired item remove it themselves (see `Shard::find`).

use super::{Shard, NIL};

impl Shard {
    /// The background reclaimer's step: looks at no more than `max_slots`
    /// slots, from where the last step stopped, and removes the expired
    /// items among them (counted as `reclaimed`, as memcached's LRU
    /// maintainer counts them). Returns how many it removed.
    pub(crate) fn reclaim_expired(&mut self, now: u64, max_slots: usize) -> usize {
        let total = self.entries.len();
        if total == 0 {
            return 0;
        }
        let mut removed = 0;
        let mut idx = self.reclaim_cursor % total;
        for _ in 0..max_slots.min(total) {
            let e = &self.entries[idx];
            if e.is_live() && e.is_expired(now) {
                self.unlink(idx as u32);
                self.counts.reclaimed += 1;
                removed += 1;
            }
            idx = (idx + 1) % total;
        }
        self.reclaim_cursor = idx;
        removed
    }

    /// Applies a due delayed flush. Every operation calls this first.
    pub(crate) fn maintain(&mut self, now: u64) {
        if let Some(at) = self.flush_at {
            if at <= now {
                self.flush_at = None;
                self.flushed.clear();
                for idx in 0..self.entries.len() {
                    let e = &self.entries[idx];
                    if e.is_live() && e.time <= at {
                        self.flushed.insert(e.hash);
                        self.unlink(idx as u32);
                    }
                }
            }
        }
    }

    /// `flush_all`: `None` empties the shard now; `Some(at)` schedules a
    /// flush of everything stored at or before second `at`, replacing any
    /// earlier schedule (memcached keeps one `oldest_live` too).
    pub(crate) fn flush(&mut self, at: Option<u64>, now: u64) {
        match at {
            None => {
                self.flush_at = None;
                self.clear();
            }
            Some(at) => {
                self.flush_at = Some(at);
                self.maintain(now);
            }
        }
    }

    /// Drops every item.
    fn clear(&mut self) {
        let live = self.entries.iter().filter(|e| e.is_live());
        let unfetched = live.clone().filter(|e| !e.fetched).count() as u64;
        self.flushed_unreclaimed = (live.count() as u64, unfetched);
        self.flushed.clear();
        self.flushed
            .extend(self.entries.iter().filter(|e| e.is_live()).map(|e| e.hash));
        self.entries.clear();
        self.free = NIL;
        self.buckets.fill(NIL);
        self.len = 0;
        self.head = NIL;
        self.tail = NIL;
        self.used = 0;
        if let Some(sizes) = &mut self.sizes {
            sizes.clear();
        }
    }
}
