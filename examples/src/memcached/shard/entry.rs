//! A slot of the shard's slab ([`Entry`]: one item's data and links) and
//! the counts a shard keeps for `stats` ([`ShardCounts`]).

use super::item_size;

/// One slot: a live item, or a free slot on the free list (`key_len == 0`).
#[derive(Debug)]
pub(super) struct Entry {
    /// Key bytes then value bytes: the item's only allocation.
    pub(super) data: Box<[u8]>,
    pub(super) key_len: u32,
    pub(super) flags: u32,
    pub(super) hash: u64,
    pub(super) cas: u64,
    /// Absolute unix second at which the item dies; 0 = never.
    pub(super) exptime: u64,
    /// Unix second of the last store or modification (for delayed flush).
    pub(super) time: u64,
    /// Whether a get/touch has found the item since it was stored
    /// (memcached's `ITEM_FETCHED`, for the `*_unfetched` stats).
    pub(super) fetched: bool,
    /// Meta-protocol lease bits ([`super::lease::TOKEN_SENT`], [`super::lease::STALE`]).
    pub(super) lease: u8,
    /// Next slot in the same bucket, or in the free list.
    pub(super) chain: u32,
    /// LRU neighbours: `prev` is more recently used.
    pub(super) prev: u32,
    pub(super) next: u32,
}

impl Entry {
    pub(super) fn key(&self) -> &[u8] {
        &self.data[..self.key_len as usize]
    }

    pub(super) fn value(&self) -> &[u8] {
        &self.data[self.key_len as usize..]
    }

    /// This entry's key followed by `parts` concatenated: the data of an
    /// item that replaces this one's value.
    pub(super) fn data_with_value(&self, parts: &[&[u8]]) -> Box<[u8]> {
        let value_len: usize = parts.iter().map(|p| p.len()).sum();
        let mut data = Vec::with_capacity(self.key_len as usize + value_len);
        data.extend_from_slice(self.key());
        for part in parts {
            data.extend_from_slice(part);
        }
        data.into_boxed_slice()
    }

    pub(super) fn is_live(&self) -> bool {
        self.key_len != 0
    }

    pub(super) fn size(&self) -> usize {
        item_size(
            self.key_len as usize,
            self.flags,
            self.data.len() - self.key_len as usize,
        )
    }

    pub(super) fn is_expired(&self, now: u64) -> bool {
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
