//! memcached's meta-protocol leases (anti-dogpiling): the `mg` flags `N`
//! (vivify on miss), `R` (recache) and the returned `W`/`Z`/`X`, with
//! `md ... I` and `ms ... I` marking items stale.
//!
//! Each item carries two bits, as in memcached: *token sent* (one client
//! was told `W`, "you win, go recompute this") and *stale* (invalidated
//! but still served, flagged `X`). Whether a client wins is decided under
//! the shard's lock together with the lookup (and the vivifying insert),
//! so of many clients that miss at once exactly one gets `W`; the others
//! see `Z` (someone else is on it) until the winner stores a fresh value,
//! which carries neither bit. Owned by the shard; reached through
//! [`Store::meta_get`](super::super::Store::meta_get) and
//! [`Store::mark_stale`](super::super::Store::mark_stale).

use super::{ItemView, Shard, StoreOutcome};

/// A client was given the win token for this item (memcached's
/// `ITEM_TOKEN_SENT`).
pub(super) const TOKEN_SENT: u8 = 1;
/// The item was invalidated and is served as stale (`ITEM_STALE`).
pub(super) const STALE: u8 = 2;

/// What an `mg` asks of the lease machinery, as absolute unix seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LeaseGet {
    /// `T`: set this expiry before answering (0 = never).
    pub touch: Option<u64>,
    /// `N`: on a miss, create an empty item expiring then and win it.
    pub vivify: Option<u64>,
    /// `R`: win if the item expires before this second and nobody won it yet.
    pub recache: Option<u64>,
}

/// The lease state an `mg` reports with the item.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Lease {
    /// `W`: this client won and should recompute the value.
    pub won: bool,
    /// `Z`: a win token had already gone to another client.
    pub token_sent: bool,
    /// `X`: the item is stale.
    pub stale: bool,
    /// Not a lease bit: whether the item had been read before this request
    /// (memcached's `ITEM_FETCHED`, returned by `mg`'s `h` flag).
    pub fetched: bool,
}

/// Why `Shard::mark_stale` did not mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MarkStale {
    /// `NF`: no such item.
    NotFound,
    /// `EX`: the CAS unique did not match.
    Exists,
}

impl Shard {
    /// `mg` with lease flags (memcached's `process_mget_command`): looks
    /// `key` up, vivifying it on a miss if asked, applies `T`, decides the
    /// lease, and calls `visit` with the item and the lease. `None` on a
    /// miss that was not vivified (or could not be: no memory).
    pub(crate) fn meta_get<R>(
        &mut self,
        hash: u64,
        key: &[u8],
        ask: LeaseGet,
        now: u64,
        visit: impl FnOnce(ItemView<'_>, Lease) -> R,
    ) -> Option<R> {
        let (idx, created) = match self.find(hash, key, now) {
            Some(idx) => (idx, false),
            None => {
                let deadline = ask.vivify?;
                let data: Box<[u8]> = key.into();
                if self.insert(hash, data, key.len() as u32, 0, deadline, now)
                    != StoreOutcome::Stored
                    || self.head == super::NIL
                {
                    return None;
                }
                (self.head, true)
            }
        };
        let e = &mut self.entries[idx as usize];
        if let Some(exptime) = ask.touch {
            e.exptime = exptime;
        }
        let mut won = created;
        if let Some(threshold) = ask.recache {
            won |= e.lease & TOKEN_SENT == 0 && !created && e.exptime != 0 && e.exptime < threshold;
        }
        let lease = Lease {
            won: false,
            token_sent: e.lease & TOKEN_SENT != 0,
            stale: e.lease & STALE != 0,
            fetched: e.fetched,
        };
        won |= lease.stale && !lease.token_sent;
        if won {
            e.lease |= TOKEN_SENT;
        }
        e.fetched = true;
        self.lru_to_front(idx);
        let e = &self.entries[idx as usize];
        let result = visit(
            ItemView {
                key: e.key(),
                value: e.value(),
                flags: e.flags,
                cas: e.cas,
                exptime: e.exptime,
            },
            Lease { won, ..lease },
        );
        if self.entries[idx as usize].is_expired(now) {
            self.unlink(idx);
        }
        Some(result)
    }

    /// `md <key> I` (memcached's `set_stale`): instead of deleting, marks
    /// the item stale, clears its win token so the next reader wins, gives
    /// it a new CAS unique and, with `T`, a new expiry. `cas` must match if
    /// given.
    pub(crate) fn mark_stale(
        &mut self,
        hash: u64,
        key: &[u8],
        cas: Option<u64>,
        exptime: Option<u64>,
        now: u64,
    ) -> Result<(), MarkStale> {
        let idx = self.find(hash, key, now).ok_or(MarkStale::NotFound)?;
        if cas.is_some_and(|c| c != self.entries[idx as usize].cas) {
            return Err(MarkStale::Exists);
        }
        let unique = self.next_cas();
        let e = &mut self.entries[idx as usize];
        if let Some(exptime) = exptime {
            e.exptime = exptime;
        }
        e.lease = (e.lease | STALE) & !TOKEN_SENT;
        e.cas = unique;
        Ok(())
    }

    /// Sets lease bits on the item just linked at the LRU head (a stale
    /// store keeps the replaced item's).
    pub(super) fn set_head_lease(&mut self, bits: u8) {
        if self.head != super::NIL {
            self.entries[self.head as usize].lease = bits;
        }
    }
}
