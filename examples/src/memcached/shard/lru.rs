//! The shard's LRU list and eviction: the doubly linked list threaded
//! through the slots (`prev`/`next`, head = most recently used), making
//! room by evicting or reclaiming from the tail under the byte budget, and
//! the walks over the list (`stats items` age, `stats cachedump`).

use super::{Shard, NIL};

impl Shard {
    /// Evicts from the LRU tail until `size` more bytes fit. False if the
    /// item could never fit in this shard's budget.
    pub(super) fn make_room(&mut self, size: usize, now: u64) -> bool {
        if size > self.budget {
            return false;
        }
        while self.used + size > self.budget && self.tail != NIL {
            let victim = self.tail;
            let e = &self.entries[victim as usize];
            if !self.evict && !e.is_expired(now) {
                return false;
            }
            if e.is_expired(now) {
                self.counts.reclaimed += 1;
                self.counts.expired_unfetched += u64::from(!e.fetched);
            } else {
                self.counts.evictions += 1;
                self.counts.evicted_unfetched += u64::from(!e.fetched);
                self.counts.evicted_nonzero += u64::from(e.exptime != 0);
                self.counts.evicted_time = now.saturating_sub(e.time);
            }
            self.unlink(victim);
        }
        true
    }

    /// The age in seconds of the least recently used item (`stats items`
    /// `age`), or `None` when the shard is empty.
    pub(crate) fn oldest_age(&self, now: u64) -> Option<u64> {
        (self.tail != NIL).then(|| now.saturating_sub(self.entries[self.tail as usize].time))
    }

    /// Calls `visit` with (key, value length, absolute exptime) for live
    /// items from most to least recently used, until it returns false
    /// (`stats cachedump`).
    pub(crate) fn for_each_item(&self, now: u64, mut visit: impl FnMut(&[u8], usize, u64) -> bool) {
        let mut idx = self.head;
        while idx != NIL {
            let e = &self.entries[idx as usize];
            if !e.is_expired(now) && !visit(e.key(), e.value().len(), e.exptime) {
                return;
            }
            idx = e.next;
        }
    }

    pub(super) fn lru_push_front(&mut self, idx: u32) {
        let old_head = self.head;
        {
            let e = &mut self.entries[idx as usize];
            e.prev = NIL;
            e.next = old_head;
        }
        if old_head != NIL {
            self.entries[old_head as usize].prev = idx;
        } else {
            self.tail = idx;
        }
        self.head = idx;
    }

    pub(super) fn lru_remove(&mut self, idx: u32) {
        let (prev, next) = {
            let e = &self.entries[idx as usize];
            (e.prev, e.next)
        };
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            self.head = next;
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        } else {
            self.tail = prev;
        }
    }

    pub(super) fn lru_to_front(&mut self, idx: u32) {
        if self.head != idx {
            self.lru_remove(idx);
            self.lru_push_front(idx);
        }
    }

    /// Keys from most to least recently used (tests only).
    #[cfg(test)]
    pub(super) fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut idx = self.head;
        while idx != NIL {
            keys.push(self.entries[idx as usize].key().to_vec());
            idx = self.entries[idx as usize].next;
        }
        keys
    }
}
