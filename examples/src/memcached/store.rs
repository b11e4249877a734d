//! The cache itself: items, expiry, CAS and LRU eviction, shared by every
//! thread of the server.
//!
//! A [`Store`] is `Send + Sync` and meant to live in an `Arc`. It is split
//! into N shards, each a [`Shard`] behind its own `Mutex`, and a key's hash
//! picks its shard, so threads working on different keys rarely wait for each
//! other. Each shard has its own LRU list and an equal slice of the memory
//! limit; eviction is per shard. A lock is held only for one operation on one
//! key; a multi-key `get` locks shards one at a time.
//!
//! The store knows nothing of the wire protocol except memcached's rules for
//! what an item is: the exptime convention (relative up to 30 days, absolute
//! after, negative = already expired), the item size formula used for both
//! the size limit and the memory budget, and the semantics of each storage
//! command. [`Session`](super::Session) turns bytes into calls on it.
//!
//! Parts: this file owns [`Store`] itself (sharding, locking, the
//! per-shard fan-out of admin commands and the [`ItemStats`] sum);
//! `item` owns what an item is (key rules, exptime, size formula, storage
//! modes and outcomes, [`NewItem`]); the tables themselves live in
//! [`shard`](super::shard).

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::clock::Clock;
use super::config::Config;
pub use super::shard::{Lease, LeaseGet, MarkStale};
use super::shard::{Shard, ShardCounts};
use super::stats::Counters;

mod item;
pub use item::{
    expiry_deadline, is_valid_key, item_size, DeltaError, ItemView, NewItem, StoreMode,
    StoreOutcome, KEY_MAX_LENGTH, MAX_RELATIVE_EXPTIME,
};

/// Item statistics summed over all shards.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ItemStats {
    /// Items currently stored (`curr_items`).
    pub curr_items: u64,
    /// Their [`item_size`] total (`bytes`).
    pub bytes: u64,
    /// Items stored since start (`total_items`).
    pub total_items: u64,
    /// Live items evicted to make room (`evictions`).
    pub evictions: u64,
    /// Expired items whose memory was reused or that the background
    /// reclaimer removed (`reclaimed`).
    pub reclaimed: u64,
    /// Lookups that found an expired item (`get_expired`).
    pub get_expired: u64,
    /// Lookups that found an item invalidated by `flush_all`
    /// (`get_flushed`).
    pub get_flushed: u64,
    /// Seconds since the least recently used item was last stored
    /// (`stats items` `age`): the oldest over the shards.
    pub oldest_age: u64,
    /// Hash buckets over all shards (`hash_power_level`, `hash_bytes`).
    pub hash_buckets: u64,
    /// Expired items reclaimed unfetched (`expired_unfetched`).
    pub expired_unfetched: u64,
    /// Items evicted unfetched (`evicted_unfetched`).
    pub evicted_unfetched: u64,
    /// Evicted items that had an expiry (`evicted_nonzero`).
    pub evicted_nonzero: u64,
    /// Seconds between the last store and the eviction of the most
    /// recently evicted item, the largest over shards (`evicted_time`).
    pub evicted_time: u64,
}

/// A shard padded to its own cache line, so two threads locking
/// neighbouring shards do not contend on one line.
#[repr(align(64))]
struct Padded(Mutex<Shard>);

/// The shared, sharded cache. See the module docs.
///
/// ```
/// use std::sync::Arc;
/// use examples::memcached::{Config, ManualClock, NewItem, Store, StoreMode, StoreOutcome};
///
/// let clock = Arc::new(ManualClock::new(1_700_000_000));
/// let store = Store::new(&Config::default(), clock);
/// let now = store.now();
/// let item = NewItem::new(b"greeting", b"hello", 0, 0).unwrap();
/// assert_eq!(store.store(StoreMode::Set, item, now), StoreOutcome::Stored);
/// let value = store.get(b"greeting", now, |item| item.value.to_vec());
/// assert_eq!(value.as_deref(), Some(&b"hello"[..]));
/// ```
pub struct Store {
    shards: Box<[Padded]>,
    hasher: RandomState,
    shard_budget: AtomicUsize,
    /// `-m`, as `cache_memlimit` last set it (bytes; 0 = no limit).
    memory_limit: AtomicUsize,
    /// `lru_crawler enable|disable`: whether the background reclaimer runs.
    crawler_enabled: AtomicBool,
    clock: Arc<dyn Clock>,
    config: Config,
    started: u64,
    counters: Counters,
    verbosity: AtomicU32,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("shards", &self.shards.len())
            .field("config", &self.config)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// An empty store. The shard count is `config.shards`, lowered if needed
    /// so that every shard can hold two items of `config.item_size_max`.
    pub fn new(config: &Config, clock: Arc<dyn Clock>) -> Self {
        let limit = if config.memory_limit == 0 {
            usize::MAX
        } else {
            config.memory_limit
        };
        let per_shard_floor = config.item_size_max.saturating_mul(2).max(1);
        let shards = config.shards.clamp(1, (limit / per_shard_floor).max(1));
        let budget = limit / shards;
        let started = clock.now_unix();
        let store = Store {
            shards: (0..shards)
                .map(|i| Padded(Mutex::new(Shard::new(budget, i, shards))))
                .collect(),
            hasher: RandomState::new(),
            shard_budget: AtomicUsize::new(budget),
            memory_limit: AtomicUsize::new(config.memory_limit),
            crawler_enabled: AtomicBool::new(config.lru_crawler),
            clock,
            config: config.clone(),
            started,
            counters: Counters::default(),
            verbosity: AtomicU32::new(0),
        };
        if config.track_sizes {
            store.set_size_tracking(true);
        }
        if !config.evict {
            for shard in store.shards.iter() {
                store.lock_padded(shard).disable_eviction();
            }
        }
        store
    }

    /// The configuration the store was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How many shards the store really uses.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The current unix second from the store's clock. Sessions read it once
    /// per batch of commands and pass it to every call.
    pub fn now(&self) -> u64 {
        self.clock.now_unix()
    }

    /// The unix second the store was created (for `uptime`).
    pub fn started(&self) -> u64 {
        self.started
    }

    /// The shared command and connection counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The level last set by `verbosity` (the server may use it for logging).
    pub fn verbosity(&self) -> u32 {
        self.verbosity.load(Ordering::Relaxed)
    }

    /// Sets the verbosity level.
    pub fn set_verbosity(&self, level: u32) {
        self.verbosity.store(level, Ordering::Relaxed);
    }

    /// The largest item the store accepts, by [`item_size`].
    pub fn item_size_max(&self) -> usize {
        self.config.item_size_max
    }

    /// Whether an item of `size` bytes can never fit in one shard.
    pub fn exceeds_shard_budget(&self, size: usize) -> bool {
        size > self.shard_budget.load(Ordering::Relaxed)
    }

    /// The memory limit in bytes (`-m`, or what `cache_memlimit` set).
    pub fn memory_limit(&self) -> usize {
        self.memory_limit.load(Ordering::Relaxed)
    }

    /// `cache_memlimit`: a new memory limit of `bytes`, split over the
    /// shards; items beyond a lowered limit are evicted from the LRU tails
    /// at once. False (nothing changes) if a shard could then not hold an
    /// item of the `-I` size.
    pub fn set_memory_limit(&self, bytes: usize) -> bool {
        let budget = bytes / self.shards.len();
        if budget < self.config.item_size_max {
            return false;
        }
        let now = self.now();
        self.shard_budget.store(budget, Ordering::Relaxed);
        self.memory_limit.store(bytes, Ordering::Relaxed);
        for shard in self.shards.iter() {
            self.lock_padded(shard).set_budget(budget, now);
        }
        true
    }

    /// `stats sizes_enable` (true) or `sizes_disable`: starts the item
    /// size histogram on every shard (counting items stored from now on),
    /// or stops it and drops its counts.
    pub fn set_size_tracking(&self, on: bool) {
        for shard in self.shards.iter() {
            let mut shard = self.lock_padded(shard);
            if on {
                shard.enable_sizes(self.config.item_size_max);
            } else {
                shard.disable_sizes();
            }
        }
    }

    /// `stats sizes`: items per 32-byte size bucket over all shards, or
    /// `None` while size tracking is off.
    pub fn size_histogram(&self) -> Option<Vec<u64>> {
        let mut total = Vec::new();
        for shard in self.shards.iter() {
            self.lock_padded(shard).sizes()?.add_into(&mut total);
        }
        Some(total)
    }

    /// Whether the background reclaimer runs (`lru_crawler enable`).
    pub fn crawler_enabled(&self) -> bool {
        self.crawler_enabled.load(Ordering::Relaxed)
    }

    /// `lru_crawler enable` (true) or `disable`; returns the previous state.
    pub fn set_crawler_enabled(&self, enabled: bool) -> bool {
        self.crawler_enabled.swap(enabled, Ordering::Relaxed)
    }

    /// One step of the background reclaimer (memcached's LRU maintainer):
    /// looks at no more than `max_slots` slots of each shard, each shard
    /// locked on its own, and removes the expired items found there.
    /// Bounded work, so it never holds a lock long. Returns how many items
    /// it removed.
    pub fn reclaim_expired(&self, max_slots: usize) -> usize {
        let now = self.now();
        self.shards
            .iter()
            .map(|shard| {
                let mut s = self.lock_maintained(shard, now);
                s.reclaim_expired(now, max_slots)
            })
            .sum()
    }

    /// Looks up `key` and, if present and live, passes it to `visit` and
    /// returns what `visit` returned. The item becomes most recently used.
    /// `visit` runs under the shard lock: copy what you need and return.
    pub fn get<R>(&self, key: &[u8], now: u64, visit: impl FnOnce(ItemView<'_>) -> R) -> Option<R> {
        let hash = self.hash(key);
        self.lock(hash, now).get(hash, key, None, now, visit)
    }

    /// Like [`get`](Store::get), but first sets the item's expiry to the
    /// absolute `exptime` (gat/gats).
    pub fn get_and_touch<R>(
        &self,
        key: &[u8],
        exptime: u64,
        now: u64,
        visit: impl FnOnce(ItemView<'_>) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        self.lock(hash, now)
            .get(hash, key, Some(exptime), now, visit)
    }

    /// `mg` with the lease flags `N`/`R`/`T` (see [`LeaseGet`]): the
    /// lookup, a vivifying insert on a miss and the win decision happen
    /// under one lock, so concurrent clients cannot both win. `visit` gets
    /// the item and its [`Lease`]; `None` on a plain miss.
    pub fn meta_get<R>(
        &self,
        key: &[u8],
        ask: LeaseGet,
        now: u64,
        visit: impl FnOnce(ItemView<'_>, Lease) -> R,
    ) -> Option<R> {
        let hash = self.hash(key);
        self.lock(hash, now).meta_get(hash, key, ask, now, visit)
    }

    /// `md <key> I`: marks the item stale instead of deleting it (see
    /// [`MarkStale`] for the refusals).
    pub fn mark_stale(
        &self,
        key: &[u8],
        cas: Option<u64>,
        exptime: Option<u64>,
        now: u64,
    ) -> Result<(), MarkStale> {
        let hash = self.hash(key);
        self.lock(hash, now)
            .mark_stale(hash, key, cas, exptime, now)
    }

    /// Sets a present item's expiry to the absolute `exptime`; false if the
    /// key is absent.
    pub fn touch(&self, key: &[u8], exptime: u64, now: u64) -> bool {
        let hash = self.hash(key);
        self.lock(hash, now).touch(hash, key, exptime, now)
    }

    /// Runs a storage command.
    pub fn store(&self, mode: StoreMode, item: NewItem, now: u64) -> StoreOutcome {
        let hash = self.hash(item.key());
        let max = self.config.item_size_max;
        if item.size() > max {
            return StoreOutcome::NotStored;
        }
        self.lock(hash, now).store(hash, mode, item, max, now)
    }

    /// Removes `key`; false if it was absent.
    pub fn delete(&self, key: &[u8], now: u64) -> bool {
        let hash = self.hash(key);
        self.lock(hash, now).delete(hash, key, now)
    }

    /// incr (`incr == true`, wrapping at 2^64) or decr (stopping at 0) by
    /// `delta`; returns the new value.
    pub fn delta(&self, key: &[u8], incr: bool, delta: u64, now: u64) -> Result<u64, DeltaError> {
        let hash = self.hash(key);
        self.lock(hash, now).delta(hash, key, incr, delta, now)
    }

    /// `flush_all`. `at == None` invalidates every item now. `Some(second)`
    /// makes every item stored at or before that unix second invalid once
    /// the clock reaches it; a later call replaces an earlier schedule.
    pub fn flush_all(&self, at: Option<u64>, now: u64) {
        for shard in self.shards.iter() {
            self.lock_padded(shard).flush(at, now);
        }
    }

    /// Item statistics summed over the shards (locks each briefly).
    pub fn item_stats(&self) -> ItemStats {
        let now = self.now();
        let mut total = ItemStats::default();
        for shard in self.shards.iter() {
            let s = self.lock_maintained(shard, now);
            total.curr_items += s.len() as u64;
            total.bytes += s.used() as u64;
            total.total_items += s.counts.total_items;
            total.evictions += s.counts.evictions;
            total.reclaimed += s.counts.reclaimed;
            total.get_expired += s.counts.get_expired;
            total.get_flushed += s.counts.get_flushed;
            total.hash_buckets += s.bucket_count() as u64;
            total.expired_unfetched += s.counts.expired_unfetched;
            total.evicted_unfetched += s.counts.evicted_unfetched;
            total.evicted_nonzero += s.counts.evicted_nonzero;
            total.evicted_time = total.evicted_time.max(s.counts.evicted_time);
            if let Some(age) = s.oldest_age(now) {
                total.oldest_age = total.oldest_age.max(age);
            }
        }
        total
    }

    /// Calls `visit` with (key, value length, absolute exptime or 0) for up
    /// to `limit` live items (0: all), shard by shard, most recently used
    /// first within a shard (`stats cachedump`). `visit` runs under a shard
    /// lock.
    pub fn for_each_item(&self, limit: usize, mut visit: impl FnMut(&[u8], usize, u64)) {
        let now = self.now();
        let mut left = if limit == 0 { usize::MAX } else { limit };
        for shard in self.shards.iter() {
            if left == 0 {
                break;
            }
            let s = self.lock_maintained(shard, now);
            s.for_each_item(now, |key, len, exptime| {
                visit(key, len, exptime);
                left -= 1;
                left > 0
            });
        }
    }

    /// `stats reset`: zeroes the counters and the per-shard totals.
    pub fn reset_stats(&self) {
        self.counters.reset();
        for shard in self.shards.iter() {
            self.lock_padded(shard).counts = ShardCounts::default();
        }
    }

    fn hash(&self, key: &[u8]) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Locks the shard owning `hash` and applies any due delayed flush.
    fn lock(&self, hash: u64, now: u64) -> MutexGuard<'_, Shard> {
        // High bits pick the shard; the shard's buckets use the low bits.
        let index = ((hash >> 32) as usize) % self.shards.len();
        self.lock_maintained(&self.shards[index], now)
    }

    /// Locks `shard` and applies any due delayed flush, as every operation
    /// that looks at items must first.
    fn lock_maintained<'a>(&self, shard: &'a Padded, now: u64) -> MutexGuard<'a, Shard> {
        let mut guard = self.lock_padded(shard);
        guard.maintain(now);
        guard
    }

    fn lock_padded<'a>(&self, shard: &'a Padded) -> MutexGuard<'a, Shard> {
        // A panic while a shard was locked leaves it consistent at the
        // granularity of whole operations, so keep serving rather than
        // poisoning every later request.
        shard.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests;
