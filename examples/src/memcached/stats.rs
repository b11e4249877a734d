//! The command counters behind `stats`, cheap enough to keep on every
//! request, and (in `reply`) the replies to `stats` and its subcommands.
//!
//! Replies follow memcached 1.6.18 (`server_stats`, `process_stat_settings`,
//! `item_stats`, `slabs_stats`, `item_cachedump`, `process_stats_conns`,
//! `stats_prefix_dump`): same keys, same order, same error lines. This store
//! has no slab allocator, so `stats slabs`, `stats items` and
//! `stats cachedump` show one synthetic class (1) holding every item;
//! `stats sizes` keeps memcached's histogram once `stats sizes_enable` (or
//! `-o track_sizes`) turns it on; counters
//! of features this server lacks (slab mover, LRU crawler, logger,
//! authentication, extstore) read 0, the values an idle memcached shows.
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

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::text::push_u64;

mod reply;
pub(crate) use reply::command;

/// The last line of every multi-line stats reply.
const END: &[u8] = b"END\r\n";

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
    /// What memcached 1.6.18 counts as `cmd_meta`: `me` commands whose key
    /// passed its checks (hit or miss). Its other meta commands count
    /// under the classic counters (`cmd_get`, `cmd_set`, ...), as here.
    CmdMeta,
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
        Counter::CmdMeta,
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
            Counter::CmdMeta => "cmd_meta",
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
pub const COUNTERS: usize = 24;

/// The process-wide counters, shared by all threads.
#[derive(Debug, Default)]
pub struct Counters {
    values: [AtomicU64; COUNTERS],
    curr_connections: AtomicU64,
    /// `stats detail on|off` and the per-prefix counts it collects.
    detail: Detail,
    /// The TCP port the server listens on (`stats settings` `tcpport`).
    tcp_port: AtomicU32,
    /// Listeners and open connections, for `stats conns`.
    conns: Mutex<BTreeMap<u64, ConnEntry>>,
    next_conn_id: AtomicU64,
}

/// One end of a socket as `stats conns` shows it (memcached's
/// `get_conn_text`).
#[derive(Debug, Clone)]
pub enum Endpoint {
    /// A TCP address: `tcp:1.2.3.4:5` or `tcp6:[::1]:5`.
    Inet(SocketAddr),
    /// A Unix-domain socket's path: `unix:/path`.
    Unix(Arc<Path>),
    /// A Unix-domain client, which has no address: memcached records none
    /// for it and prints the empty address family, `?:<AF 0>`.
    UnnamedUnix,
}

/// One line group of `stats conns`.
#[derive(Debug)]
struct ConnEntry {
    /// The peer (or, for a listener, the bound address).
    addr: Endpoint,
    /// The local address of an accepted connection; `None` for a listener.
    local: Option<Endpoint>,
    /// Unix second of the last command (or of creation).
    last_cmd: Arc<AtomicU64>,
}

/// A connection's entry in the `stats conns` registry: its id, and the
/// second of its last command, which its session keeps current.
#[derive(Debug, Clone)]
pub struct ConnTicket {
    id: u64,
    last_cmd: Arc<AtomicU64>,
}

impl ConnTicket {
    /// The id `stats conns` prints for the connection.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Records a command at unix second `now` (one relaxed store).
    pub fn touch(&self, now: u64) {
        self.last_cmd.store(now, Ordering::Relaxed);
    }
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
    /// state, not a counter, and is kept. Like memcached, the `stats detail`
    /// prefix counts are cleared too.
    pub fn reset(&self) {
        for value in &self.values {
            value.store(0, Ordering::Relaxed);
        }
        self.detail.clear();
    }

    fn register(&self, addr: Endpoint, local: Option<Endpoint>, now: u64) -> ConnTicket {
        // Ids start at 1 and are never reused, as memcached's fds would be.
        let id = self.next_conn_id.fetch_add(1, Ordering::Relaxed) + 1;
        let last_cmd = Arc::new(AtomicU64::new(now));
        let entry = ConnEntry {
            addr,
            local,
            last_cmd: last_cmd.clone(),
        };
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, entry);
        ConnTicket { id, last_cmd }
    }

    /// Lists a listening socket in `stats conns`.
    pub fn register_listener(&self, addr: Endpoint, now: u64) {
        self.register(addr, None, now);
    }

    /// Lists an accepted connection in `stats conns` until
    /// [`unregister_conn`](Self::unregister_conn).
    pub fn register_conn(&self, peer: Endpoint, local: Endpoint, now: u64) -> ConnTicket {
        self.register(peer, Some(local), now)
    }

    /// Removes a closed connection from `stats conns`.
    pub fn unregister_conn(&self, ticket: &ConnTicket) {
        self.conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ticket.id);
    }

    /// Records the TCP port the server listens on, for `stats settings`.
    pub fn set_tcp_port(&self, port: u16) {
        self.tcp_port.store(u32::from(port), Ordering::Relaxed);
    }

    /// Whether `stats detail on` is in effect.
    pub fn detail_enabled(&self) -> bool {
        self.detail.enabled.load(Ordering::Relaxed)
    }

    /// Records one key access for `stats detail dump` if detail collection
    /// is on (memcached's `stats_prefix_record_*`). Keys without the `:`
    /// delimiter have no prefix and are not recorded. Costs one relaxed load
    /// when collection is off.
    pub fn record_detail(&self, key: &[u8], op: DetailOp) {
        if self.detail_enabled() {
            self.detail.record(key, op);
        }
    }
}

/// What a [`Counters::record_detail`] call counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetailOp {
    /// A get of a missing key.
    GetMiss,
    /// A get that found its key.
    GetHit,
    /// A storage command.
    Set,
    /// A delete.
    Delete,
}

/// memcached's prefix delimiter (`-D`, default `:`).
const PREFIX_DELIMITER: u8 = b':';

/// `stats detail` state: off by default, as in memcached.
#[derive(Debug, Default)]
struct Detail {
    enabled: AtomicBool,
    /// prefix -> [gets, hits, sets, deletes].
    prefixes: Mutex<BTreeMap<Vec<u8>, [u64; 4]>>,
}

impl Detail {
    fn record(&self, key: &[u8], op: DetailOp) {
        let Some(end) = key.iter().position(|&b| b == PREFIX_DELIMITER) else {
            return;
        };
        let prefix = &key[..end];
        let mut map = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        let counts = match map.get_mut(prefix) {
            Some(counts) => counts,
            None => map.entry(prefix.to_vec()).or_default(),
        };
        match op {
            DetailOp::GetMiss => counts[0] += 1,
            DetailOp::GetHit => {
                counts[0] += 1;
                counts[1] += 1;
            }
            DetailOp::Set => counts[2] += 1,
            DetailOp::Delete => counts[3] += 1,
        }
    }

    fn clear(&self) {
        self.prefixes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// `stats detail dump`: `PREFIX <p> get <n> hit <n> set <n> del <n>`
    /// lines (sorted by prefix here; memcached's order is its hash table's)
    /// then `END`.
    fn dump(&self, out: &mut Vec<u8>) {
        let map = self.prefixes.lock().unwrap_or_else(|e| e.into_inner());
        for (prefix, [get, hit, set, del]) in map.iter() {
            out.extend_from_slice(b"PREFIX ");
            out.extend_from_slice(prefix);
            for (name, n) in [
                (" get ", get),
                (" hit ", hit),
                (" set ", set),
                (" del ", del),
            ] {
                out.extend_from_slice(name.as_bytes());
                push_u64(out, *n);
            }
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(END);
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
