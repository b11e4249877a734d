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
//!
//! Parts: this file owns the slab and the chained hash table (insert,
//! find, unlink, growth) and the per-key commands built on them; `entry`
//! owns the slot type and the `stats` counts; `lru` the LRU list and
//! eviction under the budget; `expiry` `flush_all` and the background
//! reclaimer; `lease` the meta-protocol leases.

use super::sizes::SizeHistogram;

mod entry;
mod expiry;
mod lease;
mod lru;
use super::store::{item_size, DeltaError, ItemView, NewItem, StoreMode, StoreOutcome};
use entry::Entry;
pub(crate) use entry::ShardCounts;
pub use lease::{Lease, LeaseGet, MarkStale};

/// "No slot": the end of a bucket chain, free list or LRU list.
const NIL: u32 = u32::MAX;

/// Grow the bucket array when items exceed this many per bucket on average
/// (memcached expands at 1.5).
const LOAD_FACTOR_NUM: usize = 3;
const LOAD_FACTOR_DEN: usize = 2;

/// Initial number of hash buckets (a power of two).
const INITIAL_BUCKETS: usize = 64;

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
                let data = if mode == StoreMode::Append {
                    old.data_with_value(&[old_value, added])
                } else {
                    old.data_with_value(&[added, old_value])
                };
                // Appending keeps the old item's flags and expiry.
                self.reinsert(idx, hash, data, now)
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
            let data = e.data_with_value(&[digits]);
            if self.reinsert(idx, hash, data, now) != StoreOutcome::Stored {
                return Err(DeltaError::OutOfMemory);
            }
        }
        Ok(result)
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

    /// Replaces slot `idx` by a new item made of `data` (from
    /// [`Entry::data_with_value`]) that keeps the old item's key, flags and
    /// expiry, with a new CAS unique at the LRU head (append/prepend, and an
    /// incr whose result outgrew the old value).
    fn reinsert(&mut self, idx: u32, hash: u64, data: Box<[u8]>, now: u64) -> StoreOutcome {
        let old = &self.entries[idx as usize];
        let (key_len, flags, exptime) = (old.key_len, old.flags, old.exptime);
        self.unlink(idx);
        self.insert(hash, data, key_len, flags, exptime, now)
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
}

#[cfg(test)]
mod tests;
