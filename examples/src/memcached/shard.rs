//! One shard of the cache: a chained hash table and an LRU list threaded
//! through a single slab of entries, kept under a byte budget.
//!
//! This is memcached's `assoc.c` + `items.c` in miniature. Every item is one
//! slot in `entries`; the slot holds the item's single heap allocation (key
//! followed by value), its metadata, the index of the next slot in its hash
//! bucket, and its neighbours in the LRU list. Slots are addressed by `u32`
//! index, so the table needs no per-item allocation besides the data, no
//! `unsafe`, and no second copy of the key.
//!
//! A shard is single-threaded; [`Store`](super::Store) wraps each one in a
//! `Mutex` and picks the shard by key hash, so callers pass in the hash they
//! already computed. All time is passed in as `now` (unix seconds) so that the
//! shard never reads a clock and tests can drive it precisely.

use super::sizes::SizeHistogram;

mod lease;
use super::store::{item_size, DeltaError, ItemView, NewItem, StoreMode, StoreOutcome};
pub use lease::{Lease, LeaseGet, MarkStale};

/// "No slot": the end of a bucket chain, free list or LRU list.
const NIL: u32 = u32::MAX;

/// Grow the bucket array when items exceed this many per bucket on average
/// (memcached expands at 1.5).
const LOAD_FACTOR_NUM: usize = 3;
const LOAD_FACTOR_DEN: usize = 2;

/// Initial number of hash buckets (a power of two).
const INITIAL_BUCKETS: usize = 64;

/// One slot: a live item, or a free slot on the free list (`key_len == 0`).
#[derive(Debug)]
struct Entry {
    /// Key bytes then value bytes: the item's only allocation.
    data: Box<[u8]>,
    key_len: u32,
    flags: u32,
    hash: u64,
    cas: u64,
    /// Absolute unix second at which the item dies; 0 = never.
    exptime: u64,
    /// Unix second of the last store or modification (for delayed flush).
    time: u64,
    /// Whether a get/touch has found the item since it was stored
    /// (memcached's `ITEM_FETCHED`, for the `*_unfetched` stats).
    fetched: bool,
    /// Meta-protocol lease bits ([`lease::TOKEN_SENT`], [`lease::STALE`]).
    lease: u8,
    /// Next slot in the same bucket, or in the free list.
    chain: u32,
    /// LRU neighbours: `prev` is more recently used.
    prev: u32,
    next: u32,
}

impl Entry {
    fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    fn is_live(&self) -> bool {
        self.key_len != 0
    }

    fn size(&self) -> usize {
        item_size(
            self.key_len as usize,
            self.flags,
            self.data.len() - self.key_len as usize,
        )
    }

    fn is_expired(&self, now: u64) -> bool {
        self.exptime != 0 && self.exptime <= now
    }
}

/// Counts a shard keeps for `stats`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardCounts {
    /// Items stored since start (or `stats reset`).
    pub(crate) total_items: u64,
    /// Live items removed from the LRU tail to make room.
    pub(crate) evictions: u64,
    /// Expired items removed from the LRU tail to make room, or by the
    /// background reclaimer.
    pub(crate) reclaimed: u64,
    /// Lookups that found their key expired (memcached counts every
    /// `do_item_get` that does: get, touch, delete, incr, storage).
    pub(crate) get_expired: u64,
    /// Lookups that found their key invalidated by `flush_all`.
    pub(crate) get_flushed: u64,
    /// Expired items reclaimed without ever being fetched.
    pub(crate) expired_unfetched: u64,
    /// Live items evicted without ever being fetched.
    pub(crate) evicted_unfetched: u64,
    /// Evicted items that had an expiry time.
    pub(crate) evicted_nonzero: u64,
    /// Seconds since the last evicted item was stored (`evicted_time`).
    pub(crate) evicted_time: u64,
}

/// A hash table + LRU under a memory budget. See the module docs.
#[derive(Debug)]
pub(crate) struct Shard {
    entries: Vec<Entry>,
    free: u32,
    buckets: Vec<u32>,
    len: usize,
    /// Most recently used live slot.
    head: u32,
    /// Least recently used live slot: the next eviction victim.
    tail: u32,
    /// Sum of [`item_size`] over live items.
    used: usize,
    budget: usize,
    /// CAS uniques are `seq * stride + offset`: unique across shards without
    /// sharing a counter between threads.
    cas_seq: u64,
    cas_stride: u64,
    cas_offset: u64,
    /// A pending `flush_all <delay>`: at this second, everything stored at or
    /// before it goes.
    flush_at: Option<u64>,
    /// Hashes of the items the last `flush_all` dropped. memcached leaves
    /// flushed items in memory until a lookup finds them (and counts
    /// `get_flushed`); this shard frees them at once and keeps 8 bytes per
    /// item so the lookup can still be counted. A key leaves the set when
    /// it is looked up; the next flush replaces the set.
    flushed: std::collections::HashSet<u64>,
    pub(crate) counts: ShardCounts,
    /// Where the background reclaimer's next slice of slots starts.
    reclaim_cursor: usize,
    /// The `stats sizes` histogram, while tracking is on.
    sizes: Option<SizeHistogram>,
    /// False with `-M`: a full shard refuses new items instead of evicting
    /// live ones (expired ones still make room).
    evict: bool,
    /// Items the last `flush_all` dropped whose memory memcached would not
    /// have reused yet: it frees flushed items lazily, reusing one per new
    /// item stored and counting it `reclaimed` (and `expired_unfetched` if
    /// never fetched). This shard frees them at once and counts them the
    /// same way as new items come: (all, never fetched).
    flushed_unreclaimed: (u64, u64),
}

impl Shard {
    /// An empty shard allowed `budget` bytes of items, numbered `index` of
    /// `shards` (for CAS uniqueness).
    pub(crate) fn new(budget: usize, index: usize, shards: usize) -> Self {
        Shard {
            entries: Vec::new(),
            free: NIL,
            buckets: vec![NIL; INITIAL_BUCKETS],
            len: 0,
            head: NIL,
            tail: NIL,
            used: 0,
            budget,
            cas_seq: 0,
            cas_stride: shards.max(1) as u64,
            cas_offset: index as u64,
            flush_at: None,
            flushed: std::collections::HashSet::new(),
            counts: ShardCounts::default(),
            reclaim_cursor: 0,
            sizes: None,
            evict: true,
            flushed_unreclaimed: (0, 0),
        }
    }

    /// `-M`: refuse to store rather than evict live items.
    pub(crate) fn disable_eviction(&mut self) {
        self.evict = false;
    }

    /// Changes the byte budget (`cache_memlimit`); a lower budget evicts
    /// from the LRU tail at once until the items fit.
    pub(crate) fn set_budget(&mut self, budget: usize, now: u64) {
        self.budget = budget;
        self.make_room(0, now);
    }

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

    /// Live items (expired ones not yet noticed included, as in memcached).
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of live items, by [`item_size`].
    pub(crate) fn used(&self) -> usize {
        self.used
    }

    /// The byte budget.
    #[cfg(test)]
    pub(crate) fn budget(&self) -> usize {
        self.budget
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

    /// Looks up a key and calls `visit` on it if present. `touch` sets a new
    /// absolute expiry first (gat); an item that the touch expires is handed
    /// to `visit` once and then removed, as memcached does.
    pub(crate) fn get<R>(
        &mut self,
        hash: u64,
        key: &[u8],
        touch: Option<u64>,
        now: u64,
        visit: impl FnOnce(ItemView<'_>) -> R,
    ) -> Option<R> {
        let idx = self.find(hash, key, now)?;
        if let Some(exptime) = touch {
            self.entries[idx as usize].exptime = exptime;
        }
        self.entries[idx as usize].fetched = true;
        self.lru_to_front(idx);
        let e = &self.entries[idx as usize];
        let result = visit(ItemView {
            key: e.key(),
            value: e.value(),
            flags: e.flags,
            cas: e.cas,
            exptime: e.exptime,
        });
        if self.entries[idx as usize].is_expired(now) {
            self.unlink(idx);
        }
        Some(result)
    }

    /// Sets a new absolute expiry on a present key.
    pub(crate) fn touch(&mut self, hash: u64, key: &[u8], exptime: u64, now: u64) -> bool {
        self.get(hash, key, Some(exptime), now, |_| ()).is_some()
    }

    /// Removes a key if present.
    pub(crate) fn delete(&mut self, hash: u64, key: &[u8], now: u64) -> bool {
        match self.find(hash, key, now) {
            Some(idx) => {
                self.unlink(idx);
                true
            }
            None => false,
        }
    }

    /// Runs a storage command (memcached's `do_store_item`).
    pub(crate) fn store(
        &mut self,
        hash: u64,
        mode: StoreMode,
        item: NewItem,
        item_size_max: usize,
        now: u64,
    ) -> StoreOutcome {
        let old = self.find(hash, item.key(), now);
        match (mode, old) {
            (StoreMode::Add, Some(idx)) => {
                // add leaves the value alone but still counts as a use.
                self.lru_to_front(idx);
                StoreOutcome::NotStored
            }
            (StoreMode::Replace | StoreMode::Append | StoreMode::Prepend, None) => {
                StoreOutcome::NotStored
            }
            (StoreMode::Cas(_) | StoreMode::CasStale(_), None) => StoreOutcome::NotFound,
            (StoreMode::Cas(unique), Some(idx)) if self.entries[idx as usize].cas != unique => {
                StoreOutcome::Exists
            }
            (StoreMode::CasStale(unique), Some(idx))
                if self.entries[idx as usize].cas != unique =>
            {
                let old = &self.entries[idx as usize];
                if unique > old.cas {
                    return StoreOutcome::Exists;
                }
                // An older unique with I: store, but as stale, keeping the
                // expiry and any win token (memcached's CAS_STALE).
                let (exptime, bits) = (old.exptime, old.lease | lease::STALE);
                self.unlink(idx);
                let (data, key_len, flags, _) = item.into_parts();
                let outcome = self.insert(hash, data, key_len, flags, exptime, now);
                if outcome == StoreOutcome::Stored {
                    self.set_head_lease(bits);
                }
                outcome
            }
            (StoreMode::Append | StoreMode::Prepend, Some(idx)) => {
                let old = &self.entries[idx as usize];
                let added = item.value();
                let old_value = old.value();
                let combined_len = old_value.len() + added.len();
                if item_size(old.key_len as usize, old.flags, combined_len) > item_size_max {
                    return StoreOutcome::NotStored;
                }
                let mut data = Vec::with_capacity(old.key_len as usize + combined_len);
                data.extend_from_slice(old.key());
                if mode == StoreMode::Append {
                    data.extend_from_slice(old_value);
                    data.extend_from_slice(added);
                } else {
                    data.extend_from_slice(added);
                    data.extend_from_slice(old_value);
                }
                // Appending keeps the old item's flags and expiry.
                let (flags, exptime) = (old.flags, old.exptime);
                let key_len = old.key_len;
                self.unlink(idx);
                self.insert(hash, data.into_boxed_slice(), key_len, flags, exptime, now)
            }
            (_, old) => {
                if let Some(idx) = old {
                    self.unlink(idx);
                }
                let (data, key_len, flags, exptime) = item.into_parts();
                self.insert(hash, data, key_len, flags, exptime, now)
            }
        }
    }

    /// incr/decr (memcached's `do_add_delta`): unsigned 64-bit, incr wraps,
    /// decr stops at 0. A shorter result is written in place and padded with
    /// spaces, exactly as memcached does ("10" decr 1 reads back as "9 ").
    pub(crate) fn delta(
        &mut self,
        hash: u64,
        key: &[u8],
        incr: bool,
        delta: u64,
        now: u64,
    ) -> Result<u64, DeltaError> {
        let idx = self.find(hash, key, now).ok_or(DeltaError::NotFound)?;
        let e = &self.entries[idx as usize];
        let value = e.value();
        if value.is_empty() {
            return Err(DeltaError::NonNumeric);
        }
        let current = super::text::parse_u64(value).ok_or(DeltaError::NonNumeric)?;
        let result = if incr {
            current.wrapping_add(delta)
        } else {
            current.saturating_sub(delta)
        };
        let mut buf = [0u8; 20];
        let digits = super::text::format_u64(result, &mut buf);
        if digits.len() <= value.len() {
            let cas = self.next_cas();
            let e = &mut self.entries[idx as usize];
            let key_len = e.key_len as usize;
            let (num, pad) = e.data[key_len..].split_at_mut(digits.len());
            num.copy_from_slice(digits);
            pad.fill(b' ');
            e.cas = cas;
            e.time = now;
            self.lru_to_front(idx);
        } else {
            let (flags, exptime, key_len) = (e.flags, e.exptime, e.key_len);
            let mut data = Vec::with_capacity(key_len as usize + digits.len());
            data.extend_from_slice(e.key());
            data.extend_from_slice(digits);
            self.unlink(idx);
            if self.insert(hash, data.into_boxed_slice(), key_len, flags, exptime, now)
                != StoreOutcome::Stored
            {
                return Err(DeltaError::OutOfMemory);
            }
        }
        Ok(result)
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

    /// Starts the `stats sizes` histogram (if it is not running) with
    /// buckets up to `item_size_max`; it counts items stored from now on.
    pub(crate) fn enable_sizes(&mut self, item_size_max: usize) {
        if self.sizes.is_none() {
            let cas_min = self.cas_seq.saturating_add(1) * self.cas_stride + self.cas_offset;
            self.sizes = Some(SizeHistogram::new(item_size_max, cas_min));
        }
    }

    /// Stops the histogram and drops its counts.
    pub(crate) fn disable_sizes(&mut self) {
        self.sizes = None;
    }

    /// The histogram, while tracking is on.
    pub(crate) fn sizes(&self) -> Option<&SizeHistogram> {
        self.sizes.as_ref()
    }

    fn next_cas(&mut self) -> u64 {
        self.cas_seq += 1;
        self.cas_seq * self.cas_stride + self.cas_offset
    }

    fn bucket_of(&self, hash: u64) -> usize {
        hash as usize & (self.buckets.len() - 1)
    }

    /// The live slot holding `key`, removing it instead if it has expired.
    fn find(&mut self, hash: u64, key: &[u8], now: u64) -> Option<u32> {
        let mut idx = self.buckets[self.bucket_of(hash)];
        while idx != NIL {
            let e = &self.entries[idx as usize];
            if e.hash == hash && e.key() == key {
                if e.is_expired(now) {
                    self.counts.get_expired += 1;
                    self.unlink(idx);
                    return None;
                }
                return Some(idx);
            }
            idx = e.chain;
        }
        if !self.flushed.is_empty() && self.flushed.remove(&hash) {
            self.counts.get_flushed += 1;
        }
        None
    }

    /// The number of hash buckets.
    pub(crate) fn bucket_count(&self) -> usize {
        self.buckets.len()
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

    /// Links a new item at the head of the LRU, evicting from the tail to
    /// make room; on `Stored` the new item is the LRU head. An item already
    /// expired (a negative or past absolute exptime) is linked too, as
    /// memcached links it: the next lookup removes it and counts
    /// `get_expired`, or the reclaimer or an eviction frees it first.
    fn insert(
        &mut self,
        hash: u64,
        data: Box<[u8]>,
        key_len: u32,
        flags: u32,
        exptime: u64,
        now: u64,
    ) -> StoreOutcome {
        let size = item_size(key_len as usize, flags, data.len() - key_len as usize);
        if !self.make_room(size, now) {
            return StoreOutcome::OutOfMemory;
        }
        let cas = self.next_cas();
        let bucket = self.bucket_of(hash);
        let entry = Entry {
            data,
            key_len,
            flags,
            hash,
            cas,
            exptime,
            time: now,
            fetched: false,
            lease: 0,
            chain: self.buckets[bucket],
            prev: NIL,
            next: NIL,
        };
        let idx = if self.free != NIL {
            let idx = self.free;
            self.free = self.entries[idx as usize].chain;
            self.entries[idx as usize] = entry;
            idx
        } else {
            self.entries.push(entry);
            (self.entries.len() - 1) as u32
        };
        self.buckets[bucket] = idx;
        self.lru_push_front(idx);
        self.len += 1;
        self.used += size;
        if let Some(sizes) = &mut self.sizes {
            sizes.add(cas, size);
        }
        self.counts.total_items += 1;
        if self.flushed_unreclaimed.0 > 0 {
            let (all, unfetched) = &mut self.flushed_unreclaimed;
            *all -= 1;
            self.counts.reclaimed += 1;
            if *unfetched > 0 {
                *unfetched -= 1;
                self.counts.expired_unfetched += 1;
            }
        }
        if self.len * LOAD_FACTOR_DEN > self.buckets.len() * LOAD_FACTOR_NUM {
            self.grow();
        }
        StoreOutcome::Stored
    }

    /// Evicts from the LRU tail until `size` more bytes fit. False if the
    /// item could never fit in this shard's budget.
    fn make_room(&mut self, size: usize, now: u64) -> bool {
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

    /// Removes a live slot from its bucket and the LRU and frees it.
    fn unlink(&mut self, idx: u32) {
        let bucket = self.bucket_of(self.entries[idx as usize].hash);
        let next_in_chain = self.entries[idx as usize].chain;
        if self.buckets[bucket] == idx {
            self.buckets[bucket] = next_in_chain;
        } else {
            let mut cur = self.buckets[bucket];
            while cur != NIL {
                let chain = self.entries[cur as usize].chain;
                if chain == idx {
                    self.entries[cur as usize].chain = next_in_chain;
                    break;
                }
                cur = chain;
            }
        }
        self.lru_remove(idx);
        let size = self.entries[idx as usize].size();
        self.used -= size;
        if let Some(sizes) = &mut self.sizes {
            sizes.remove(self.entries[idx as usize].cas, size);
        }
        self.len -= 1;
        let e = &mut self.entries[idx as usize];
        e.data = Box::default();
        e.key_len = 0;
        e.chain = self.free;
        self.free = idx;
    }

    /// Doubles the bucket array and re-chains every live slot.
    fn grow(&mut self) {
        let new_len = self.buckets.len() * 2;
        self.buckets.clear();
        self.buckets.resize(new_len, NIL);
        let mask = new_len - 1;
        for idx in 0..self.entries.len() {
            if self.entries[idx].is_live() {
                let bucket = self.entries[idx].hash as usize & mask;
                self.entries[idx].chain = self.buckets[bucket];
                self.buckets[bucket] = idx as u32;
            }
        }
    }

    fn lru_push_front(&mut self, idx: u32) {
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

    fn lru_remove(&mut self, idx: u32) {
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

    fn lru_to_front(&mut self, idx: u32) {
        if self.head != idx {
            self.lru_remove(idx);
            self.lru_push_front(idx);
        }
    }

    /// Keys from most to least recently used (tests only).
    #[cfg(test)]
    fn lru_keys(&self) -> Vec<Vec<u8>> {
        let mut keys = Vec::new();
        let mut idx = self.head;
        while idx != NIL {
            keys.push(self.entries[idx as usize].key().to_vec());
            idx = self.entries[idx as usize].next;
        }
        keys
    }
}

#[cfg(test)]
mod tests;
