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

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::clock::Clock;
use super::config::Config;
pub use super::shard::{Lease, LeaseGet, MarkStale};
use super::shard::{Shard, ShardCounts};
use super::stats::Counters;

/// The longest key memcached accepts.
pub const KEY_MAX_LENGTH: usize = 250;

/// exptimes up to this many seconds (30 days) are relative to now; larger
/// ones are absolute unix times (memcached's `REALTIME_MAXDELTA`).
pub const MAX_RELATIVE_EXPTIME: i64 = 60 * 60 * 24 * 30;

/// memcached's per-item header on a 64-bit build (`sizeof(item)`).
const ITEM_HEADER: usize = 48;
/// The stored CAS unique.
const ITEM_CAS: usize = 8;

/// How many bytes an item counts for: memcached's `ITEM_ntotal` with CAS on,
/// i.e. header + key + NUL + flags (only if non-zero) + value + `\r\n` + CAS.
///
/// The same number is checked against the item size limit (so the largest
/// storable value is exactly memcached's) and charged to the memory budget
/// (so `bytes` and `limit_maxbytes` mean what they mean in memcached).
///
/// ```
/// use examples::memcached::item_size;
/// assert_eq!(item_size(3, 0, 5), 48 + 4 + 7 + 8);
/// assert_eq!(item_size(3, 1, 5), 48 + 4 + 4 + 7 + 8);
/// ```
pub fn item_size(key_len: usize, flags: u32, value_len: usize) -> usize {
    let suffix = if flags == 0 { 0 } else { 4 };
    ITEM_HEADER
        .saturating_add(key_len)
        .saturating_add(1 + suffix)
        .saturating_add(value_len)
        .saturating_add(2 + ITEM_CAS)
}

/// Whether `key` is a key memcached's text protocol can carry: 1 to 250
/// bytes, none of them a space, a newline or NUL.
///
/// The protocol document asks clients not to send control characters, but
/// memcached only splits lines on spaces and reads keys as C strings, and
/// clients rely on that: `memaslap` puts `0x10` bytes in its keys. So every
/// other byte is accepted, UTF-8 included.
///
/// ```
/// use examples::memcached::is_valid_key;
/// assert!(is_valid_key(b"user:42"));
/// assert!(is_valid_key(b"\x10\x10memaslap"));
/// assert!(!is_valid_key(b"two words"));
/// assert!(!is_valid_key(&[b'k'; 251]));
/// ```
pub fn is_valid_key(key: &[u8]) -> bool {
    !key.is_empty()
        && key.len() <= KEY_MAX_LENGTH
        && key.iter().all(|&b| !matches!(b, b' ' | b'\n' | 0))
}

/// Converts a client's exptime into an absolute unix second (0 = never),
/// following memcached's `realtime()`:
///
/// - 0 never expires;
/// - 1 ..= 30 days is relative to `now`;
/// - more than 30 days is an absolute unix time (possibly already past);
/// - negative is already expired.
///
/// An item is expired once `now >= deadline`. "Already expired" is encoded
/// as second 1, which is in the past for any real clock.
///
/// ```
/// use examples::memcached::expiry_deadline;
/// let now = 1_700_000_000;
/// assert_eq!(expiry_deadline(0, now), 0);
/// assert_eq!(expiry_deadline(10, now), now + 10);
/// assert_eq!(expiry_deadline(60 * 60 * 24 * 30 + 1, now), 2_592_001);
/// assert_eq!(expiry_deadline(-1, now), 1);
/// ```
pub fn expiry_deadline(exptime: i64, now: u64) -> u64 {
    if exptime == 0 {
        0
    } else if exptime < 0 {
        1
    } else if exptime > MAX_RELATIVE_EXPTIME {
        exptime as u64
    } else {
        now.saturating_add(exptime as u64)
    }
}

/// What a storage command does when the key exists or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreMode {
    /// Store unconditionally.
    Set,
    /// Store only if the key is absent.
    Add,
    /// Store only if the key is present.
    Replace,
    /// Add the data after the present value (flags and exptime are kept).
    Append,
    /// Add the data before the present value (flags and exptime are kept).
    Prepend,
    /// Store only if the present item's CAS unique equals this one.
    Cas(u64),
    /// `ms ... C<unique> I`: as [`Cas`](StoreMode::Cas), and if `unique`
    /// is older than the present item's, store anyway but marked stale,
    /// keeping the present item's expiry and win token.
    CasStale(u64),
}

/// The result of a storage command; each maps to one protocol reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreOutcome {
    /// `STORED`
    Stored,
    /// `NOT_STORED`: add on a present key, replace/append/prepend on a
    /// missing one, or an append that would exceed the item size limit.
    NotStored,
    /// `EXISTS`: cas on an item modified since the client read it.
    Exists,
    /// `NOT_FOUND`: cas on a missing key.
    NotFound,
    /// `SERVER_ERROR out of memory storing object`: the item is larger than
    /// a shard's whole budget.
    OutOfMemory,
}

/// Why incr/decr did not produce a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaError {
    /// The key is absent (`NOT_FOUND`).
    NotFound,
    /// The value is not a decimal u64 (`CLIENT_ERROR cannot increment or
    /// decrement non-numeric value`).
    NonNumeric,
    /// A longer result could not be stored (`SERVER_ERROR out of memory`).
    OutOfMemory,
}

/// A borrowed look at a stored item, valid while its shard is locked.
#[derive(Debug, Clone, Copy)]
pub struct ItemView<'a> {
    /// The key.
    pub key: &'a [u8],
    /// The value.
    pub value: &'a [u8],
    /// The client's opaque flags.
    pub flags: u32,
    /// The CAS unique.
    pub cas: u64,
    /// Absolute unix expiry second, 0 for never.
    pub exptime: u64,
}

/// An item ready to store: key and value in one buffer (the item's only
/// allocation, moved into the store as is), flags and absolute expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    data: Box<[u8]>,
    key_len: u32,
    flags: u32,
    exptime: u64,
}

impl NewItem {
    /// Copies `key` and `value` into a new item; `None` if the key is not
    /// [valid](is_valid_key). `exptime` is absolute (see [`expiry_deadline`]).
    pub fn new(key: &[u8], value: &[u8], flags: u32, exptime: u64) -> Option<Self> {
        if !is_valid_key(key) {
            return None;
        }
        let mut data = Vec::with_capacity(key.len() + value.len());
        data.extend_from_slice(key);
        data.extend_from_slice(value);
        Some(NewItem {
            data: data.into_boxed_slice(),
            key_len: key.len() as u32,
            flags,
            exptime,
        })
    }

    /// Takes a buffer already holding key then value (as the protocol reads
    /// them straight off the wire). `None` if the first `key_len` bytes are
    /// not a valid key.
    pub fn from_buffer(data: Vec<u8>, key_len: usize, flags: u32, exptime: u64) -> Option<Self> {
        if key_len > data.len() || !is_valid_key(&data[..key_len]) {
            return None;
        }
        Some(NewItem {
            data: data.into_boxed_slice(),
            key_len: key_len as u32,
            flags,
            exptime,
        })
    }

    /// The key.
    pub fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    /// The value.
    pub fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    /// [`item_size`] of this item.
    pub fn size(&self) -> usize {
        item_size(self.key_len as usize, self.flags, self.value().len())
    }

    pub(crate) fn into_parts(self) -> (Box<[u8]>, u32, u32, u64) {
        (self.data, self.key_len, self.flags, self.exptime)
    }
}

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
                let mut s = self.lock_padded(shard);
                s.maintain(now);
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
            let mut s = self.lock_padded(shard);
            s.maintain(now);
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
            let mut s = self.lock_padded(shard);
            s.maintain(now);
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
        let mut guard = self.lock_padded(&self.shards[index]);
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
mod tests {
    use super::*;
    use crate::memcached::clock::ManualClock;

    const T0: u64 = 1_700_000_000;

    fn store_with(config: Config) -> (Store, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(T0));
        (Store::new(&config, clock.clone()), clock)
    }

    fn put(store: &Store, key: &str, value: &str, exptime: u64) -> StoreOutcome {
        let item = NewItem::new(key.as_bytes(), value.as_bytes(), 0, exptime).expect("key");
        store.store(StoreMode::Set, item, store.now())
    }

    fn fetch(store: &Store, key: &str) -> Option<Vec<u8>> {
        store.get(key.as_bytes(), store.now(), |i| i.value.to_vec())
    }

    #[test]
    fn store_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Store>();
    }

    #[test]
    fn keys_are_validated() {
        assert!(is_valid_key(b"a"));
        assert!(is_valid_key("こんにちは".as_bytes()));
        assert!(is_valid_key(&[b'k'; 250]));
        assert!(!is_valid_key(&[b'k'; 251]));
        assert!(!is_valid_key(b""));
        assert!(!is_valid_key(b"a b"));
        assert!(!is_valid_key(b"a\nb"));
        assert!(!is_valid_key(b"a\0b"));
        // memcached takes control characters (memaslap sends 0x10).
        assert!(is_valid_key(b"a\tb"));
        assert!(is_valid_key(b"a\x7f"));
        assert!(is_valid_key(b"\x10\x10k"));
        assert!(NewItem::new(b"bad key", b"v", 0, 0).is_none());
        assert!(NewItem::from_buffer(b"k".to_vec(), 2, 0, 0).is_none());
    }

    #[test]
    fn exptime_conventions() {
        let now = T0;
        assert_eq!(expiry_deadline(0, now), 0);
        assert_eq!(expiry_deadline(1, now), now + 1);
        assert_eq!(expiry_deadline(MAX_RELATIVE_EXPTIME, now), now + 2_592_000);
        assert_eq!(expiry_deadline(MAX_RELATIVE_EXPTIME + 1, now), 2_592_001);
        assert_eq!(expiry_deadline(T0 as i64 + 100, now), T0 + 100);
        assert_eq!(expiry_deadline(-1, now), 1);
        assert_eq!(expiry_deadline(i64::MIN, now), 1);
    }

    #[test]
    fn relative_expiry() {
        let (store, clock) = store_with(Config::default());
        put(&store, "k", "v", expiry_deadline(10, T0));
        clock.advance(9);
        assert!(fetch(&store, "k").is_some());
        clock.advance(1);
        assert!(fetch(&store, "k").is_none());
        assert_eq!(store.item_stats().curr_items, 0);
    }

    #[test]
    fn thirty_days_is_relative_and_one_more_is_absolute() {
        let (store, clock) = store_with(Config::default());
        put(
            &store,
            "rel",
            "v",
            expiry_deadline(MAX_RELATIVE_EXPTIME, T0),
        );
        put(
            &store,
            "abs",
            "v",
            expiry_deadline(MAX_RELATIVE_EXPTIME + 1, T0),
        );
        assert!(fetch(&store, "rel").is_some(), "30 days from now");
        assert!(
            fetch(&store, "abs").is_none(),
            "1970 plus 30 days is long gone"
        );
        clock.advance(MAX_RELATIVE_EXPTIME as u64);
        assert!(fetch(&store, "rel").is_none());
    }

    #[test]
    fn absolute_and_negative_expiry() {
        let (store, clock) = store_with(Config::default());
        put(&store, "future", "v", expiry_deadline(T0 as i64 + 5, T0));
        put(&store, "past", "v", expiry_deadline(T0 as i64 - 5, T0));
        put(&store, "neg", "v", expiry_deadline(-1, T0));
        assert!(fetch(&store, "future").is_some());
        assert!(fetch(&store, "past").is_none());
        assert!(fetch(&store, "neg").is_none());
        clock.advance(5);
        assert!(fetch(&store, "future").is_none());
    }

    #[test]
    fn negative_exptime_set_removes_the_old_value() {
        let (store, _) = store_with(Config::default());
        put(&store, "k", "v", 0);
        assert_eq!(
            put(&store, "k", "w", expiry_deadline(-1, T0)),
            StoreOutcome::Stored
        );
        assert!(fetch(&store, "k").is_none());
    }

    #[test]
    fn touch_moves_expiry() {
        let (store, clock) = store_with(Config::default());
        put(&store, "k", "v", expiry_deadline(2, T0));
        assert!(store.touch(b"k", expiry_deadline(100, T0), T0));
        clock.advance(50);
        assert!(fetch(&store, "k").is_some());
        assert!(store.touch(b"k", expiry_deadline(-1, T0), store.now()));
        assert!(fetch(&store, "k").is_none());
        assert!(!store.touch(b"k", 0, store.now()));
    }

    #[test]
    fn gat_returns_the_value_then_applies_the_new_expiry() {
        let (store, _) = store_with(Config::default());
        put(&store, "k", "v", 0);
        let got = store.get_and_touch(b"k", expiry_deadline(-1, T0), T0, |i| i.value.to_vec());
        assert_eq!(got.as_deref(), Some(&b"v"[..]));
        assert!(fetch(&store, "k").is_none());
    }

    #[test]
    fn storage_modes() {
        let (store, _) = store_with(Config::default());
        let now = T0;
        let item = |v: &str| NewItem::new(b"k", v.as_bytes(), 5, 0).expect("key");
        assert_eq!(
            store.store(StoreMode::Replace, item("r"), now),
            StoreOutcome::NotStored
        );
        assert_eq!(
            store.store(StoreMode::Append, item("a"), now),
            StoreOutcome::NotStored
        );
        assert_eq!(
            store.store(StoreMode::Prepend, item("p"), now),
            StoreOutcome::NotStored
        );
        assert_eq!(
            store.store(StoreMode::Cas(1), item("c"), now),
            StoreOutcome::NotFound
        );
        assert_eq!(
            store.store(StoreMode::Add, item("1"), now),
            StoreOutcome::Stored
        );
        assert_eq!(
            store.store(StoreMode::Add, item("2"), now),
            StoreOutcome::NotStored
        );
        let appended = NewItem::new(b"k", b"<", 9, 0).expect("key");
        assert_eq!(
            store.store(StoreMode::Append, appended, now),
            StoreOutcome::Stored
        );
        let prepended = NewItem::new(b"k", b">", 9, 0).expect("key");
        assert_eq!(
            store.store(StoreMode::Prepend, prepended, now),
            StoreOutcome::Stored
        );
        let (value, flags, cas) = store
            .get(b"k", now, |i| (i.value.to_vec(), i.flags, i.cas))
            .expect("present");
        assert_eq!(value, b">1<");
        assert_eq!(flags, 5, "append/prepend keep the old flags");
        assert_eq!(
            store.store(StoreMode::Cas(cas + 1), item("x"), now),
            StoreOutcome::Exists
        );
        assert_eq!(
            store.store(StoreMode::Cas(cas), item("y"), now),
            StoreOutcome::Stored
        );
        assert_eq!(
            store.store(StoreMode::Cas(cas), item("z"), now),
            StoreOutcome::Exists
        );
        assert_eq!(
            store.store(StoreMode::Replace, item("q"), now),
            StoreOutcome::Stored
        );
        assert_eq!(fetch(&store, "k").as_deref(), Some(&b"q"[..]));
    }

    #[test]
    fn every_mutation_gets_a_new_cas() {
        let (store, _) = store_with(Config::default());
        let cas = |s: &Store| s.get(b"n", T0, |i| i.cas).expect("present");
        put(&store, "n", "1", 0);
        let a = cas(&store);
        store.delta(b"n", true, 1, T0).expect("numeric");
        let b = cas(&store);
        put(&store, "n", "1", 0);
        let c = cas(&store);
        assert!(a != b && b != c && a != c);
    }

    #[test]
    fn append_past_the_size_limit_is_not_stored() {
        let config = Config {
            item_size_max: 200,
            memory_limit: 0,
            ..Config::default()
        };
        let (store, _) = store_with(config);
        put(&store, "k", &"x".repeat(100), 0);
        let more = NewItem::new(b"k", &[b'y'; 100], 0, 0).expect("key");
        assert_eq!(
            store.store(StoreMode::Append, more, T0),
            StoreOutcome::NotStored
        );
        assert_eq!(fetch(&store, "k").map(|v| v.len()), Some(100));
    }

    #[test]
    fn incr_wraps_and_decr_floors() {
        let (store, _) = store_with(Config::default());
        put(&store, "n", "18446744073709551615", 0);
        assert_eq!(store.delta(b"n", true, 1, T0), Ok(0));
        assert_eq!(store.delta(b"n", false, 5, T0), Ok(0));
        assert_eq!(store.delta(b"n", true, 4294967296, T0), Ok(4294967296));
        put(&store, "t", "hi", 0);
        assert_eq!(store.delta(b"t", true, 1, T0), Err(DeltaError::NonNumeric));
        put(&store, "e", "", 0);
        assert_eq!(store.delta(b"e", true, 1, T0), Err(DeltaError::NonNumeric));
        assert_eq!(
            store.delta(b"missing", true, 1, T0),
            Err(DeltaError::NotFound)
        );
    }

    #[test]
    fn lru_eviction_under_a_small_limit() {
        let per_item = item_size(4, 0, 100);
        let config = Config {
            memory_limit: per_item * 10,
            item_size_max: per_item,
            shards: 1,
            ..Config::default()
        };
        let (store, _) = store_with(config);
        for i in 0..10 {
            put(&store, &format!("k{i:03}"), &"v".repeat(100), 0);
        }
        assert_eq!(store.item_stats().evictions, 0);
        // Use k000 so that k001 is the oldest.
        assert!(fetch(&store, "k000").is_some());
        put(&store, "k010", &"v".repeat(100), 0);
        let stats = store.item_stats();
        assert_eq!(stats.evictions, 1);
        assert_eq!(stats.curr_items, 10);
        assert!(stats.bytes <= (per_item * 10) as u64);
        assert!(fetch(&store, "k001").is_none());
        assert!(fetch(&store, "k000").is_some());
        for i in 11..30 {
            put(&store, &format!("k{i:03}"), &"v".repeat(100), 0);
        }
        let stats = store.item_stats();
        assert_eq!(stats.evictions, 20);
        assert_eq!(stats.total_items, 30);
    }

    #[test]
    fn shards_are_lowered_to_fit_two_large_items_each() {
        let config = Config {
            memory_limit: 4 << 20,
            item_size_max: 1 << 20,
            shards: 8,
            ..Config::default()
        };
        let (store, _) = store_with(config);
        assert_eq!(store.shard_count(), 2);
        let (store, _) = store_with(Config {
            shards: 4,
            ..Config::default()
        });
        assert_eq!(store.shard_count(), 4);
        let (store, _) = store_with(Config {
            shards: 0,
            ..Config::default()
        });
        assert_eq!(store.shard_count(), 1);
    }

    #[test]
    fn flush_now_and_later() {
        let (store, clock) = store_with(Config {
            shards: 4,
            ..Config::default()
        });
        for i in 0..100 {
            put(&store, &format!("k{i}"), "v", 0);
        }
        store.flush_all(None, T0);
        assert_eq!(store.item_stats().curr_items, 0);
        put(&store, "after", "v", 0);
        assert!(
            fetch(&store, "after").is_some(),
            "a set after flush survives"
        );

        store.flush_all(Some(T0 + 10), T0);
        clock.advance(9);
        assert!(fetch(&store, "after").is_some());
        clock.advance(1);
        assert!(fetch(&store, "after").is_none());
        put(&store, "later", "v", 0);
        assert!(fetch(&store, "later").is_some());
    }

    #[test]
    fn sharded_store_under_threads() {
        let (store, _) = store_with(Config {
            shards: 4,
            ..Config::default()
        });
        let store = Arc::new(store);
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        let key = format!("t{t}-{i}");
                        put(&store, &key, &key, 0);
                        assert_eq!(fetch(&store, &key), Some(key.into_bytes()));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        assert_eq!(store.item_stats().curr_items, 2000);
    }
}
