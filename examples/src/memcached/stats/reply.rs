//! The replies to `stats` and its subcommands (`settings`, `slabs`,
//! `items`, `sizes`, `conns`, `cachedump`, `detail`, `reset`), written
//! from the shared counters, the store's item counts and the registered
//! connections, in memcached 1.6.18's order and wording.

use super::*;
use crate::memcached::protocol::VERSION;
use crate::memcached::sizes::SizeHistogram;
use crate::memcached::store::Store;
use crate::memcached::text::{parse_u32, Args};

const OK: &[u8] = b"OK\r\n";
const RESET: &[u8] = b"RESET\r\n";
const ERROR: &[u8] = b"ERROR\r\n";

/// memcached's `MAX_NUMBER_OF_SLAB_CLASSES`: `stats cachedump` refuses
/// class ids from here on.
const MAX_SLAB_CLASSES: u32 = 64;

/// The one slab class this store reports: it has no slab allocator, so
/// every item is shown in class 1.
const CLASS: u32 = 1;

/// Answers `stats [<subcommand> ...]` (memcached 1.6's `process_stat`).
/// The caller has already folded its own pending counts into the store.
/// `me` is the asking connection's entry in the `stats conns` registry.
pub(crate) fn command(
    store: &Store,
    args: &Args<'_>,
    me: Option<&ConnTicket>,
    now: u64,
    out: &mut Vec<u8>,
) {
    if args.len() == 0 {
        write_general(store, now, out);
        return;
    }
    match args.get(0) {
        b"reset" => {
            store.reset_stats();
            out.extend_from_slice(RESET);
        }
        b"settings" => write_settings(store, out),
        b"detail" => detail(store, args, out),
        b"cachedump" => cachedump(store, args, out),
        b"conns" => write_conns(store, me, now, out),
        b"slabs" => write_slabs(store, out),
        b"items" => write_items(store, out),
        b"sizes" => {
            match store.size_histogram() {
                Some(total) => SizeHistogram::write(&total, out),
                None => stat_str(out, "sizes_status", "disabled"),
            }
            out.extend_from_slice(END);
        }
        // memcached 1.6.18 ends these two with no END line.
        b"sizes_enable" => {
            store.set_size_tracking(true);
            stat_str(out, "sizes_status", "enabled");
        }
        b"sizes_disable" => {
            store.set_size_tracking(false);
            stat_str(out, "sizes_status", "disabled");
        }
        _ => out.extend_from_slice(ERROR),
    }
}

fn stat_u64(out: &mut Vec<u8>, name: &str, value: u64) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

fn stat_str(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `STAT <prefix>:<class>:<name> <value>` (items) or
/// `STAT <class>:<name> <value>` (slabs, with an empty prefix).
fn stat_class(out: &mut Vec<u8>, prefix: &str, name: &str, value: u64) {
    out.extend_from_slice(b"STAT ");
    out.extend_from_slice(prefix.as_bytes());
    push_u64(out, u64::from(CLASS));
    out.push(b':');
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    push_u64(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Process CPU time as memcached prints it: `seconds.microseconds`.
fn push_timeval(out: &mut Vec<u8>, tv: libc::timeval) {
    push_u64(out, tv.tv_sec.max(0) as u64);
    out.push(b'.');
    let micros = tv.tv_usec.clamp(0, 999_999) as u64;
    let mut buf = [b'0'; 6];
    let mut m = micros;
    for b in buf.iter_mut().rev() {
        *b = b'0' + (m % 10) as u8;
        m /= 10;
    }
    out.extend_from_slice(&buf);
}

fn write_rusage(out: &mut Vec<u8>) {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0;
    for (name, tv) in [
        ("rusage_user", usage.ru_utime),
        ("rusage_system", usage.ru_stime),
    ] {
        out.extend_from_slice(b"STAT ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        if ok {
            push_timeval(out, tv);
        } else {
            out.extend_from_slice(b"0.000000");
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The reply to `stats`, in memcached 1.6.18's order (`server_stats` then
/// the item totals). Features this server lacks (slab rebalancing, the LRU
/// crawler, logging watchers, authentication, ...) report the values an
/// idle memcached reports: 0, or 1 for `accepting_conns`.
pub(crate) fn write_general(store: &Store, now: u64, out: &mut Vec<u8>) {
    let config = store.config();
    let c = store.counters();
    let items = store.item_stats();
    let counter = |counter: Counter| c.get(counter);
    stat_u64(out, "pid", u64::from(std::process::id()));
    stat_u64(out, "uptime", now.saturating_sub(store.started()));
    stat_u64(out, "time", now);
    stat_str(out, "version", VERSION);
    stat_u64(out, "pointer_size", u64::from(usize::BITS));
    write_rusage(out);
    stat_u64(out, "max_connections", config.max_connections as u64);
    stat_u64(out, "curr_connections", c.curr_connections());
    stat_u64(out, "total_connections", counter(Counter::TotalConnections));
    stat_u64(
        out,
        "rejected_connections",
        counter(Counter::RejectedConnections),
    );
    // memcached counts the listening socket among its connection structures.
    stat_u64(out, "connection_structures", c.curr_connections() + 1);
    for name in [
        "response_obj_oom",
        "response_obj_count",
        "response_obj_bytes",
        "read_buf_count",
        "read_buf_bytes",
        "read_buf_bytes_free",
        "read_buf_oom",
    ] {
        stat_u64(out, name, 0);
    }
    stat_u64(out, "reserved_fds", 20);
    for k in [
        Counter::CmdGet,
        Counter::CmdSet,
        Counter::CmdFlush,
        Counter::CmdTouch,
        Counter::CmdMeta,
    ] {
        stat_u64(out, k.name(), counter(k));
    }
    stat_u64(out, "get_hits", counter(Counter::GetHits));
    stat_u64(out, "get_misses", counter(Counter::GetMisses));
    stat_u64(out, "get_expired", items.get_expired);
    stat_u64(out, "get_flushed", items.get_flushed);
    for k in [
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
    ] {
        stat_u64(out, k.name(), counter(k));
    }
    stat_u64(out, "auth_cmds", 0);
    stat_u64(out, "auth_errors", 0);
    stat_u64(out, "bytes_read", counter(Counter::BytesRead));
    stat_u64(out, "bytes_written", counter(Counter::BytesWritten));
    stat_u64(out, "limit_maxbytes", store.memory_limit() as u64);
    stat_u64(out, "accepting_conns", 1);
    stat_u64(out, "listen_disabled_num", 0);
    stat_u64(out, "time_in_listen_disabled_us", 0);
    stat_u64(out, "threads", config.threads as u64);
    stat_u64(out, "conn_yields", 0);
    let buckets = items.hash_buckets.max(1);
    stat_u64(out, "hash_power_level", u64::from(buckets.ilog2()));
    stat_u64(
        out,
        "hash_bytes",
        buckets.saturating_mul(std::mem::size_of::<u32>() as u64),
    );
    stat_u64(out, "hash_is_expanding", 0);
    for name in [
        "slab_reassign_rescues",
        "slab_reassign_chunk_rescues",
        "slab_reassign_evictions_nomem",
        "slab_reassign_inline_reclaim",
        "slab_reassign_busy_items",
        "slab_reassign_busy_deletes",
        "slab_reassign_running",
        "slabs_moved",
        "lru_crawler_running",
        "lru_crawler_starts",
        "lru_maintainer_juggles",
        "malloc_fails",
        "log_worker_dropped",
        "log_worker_written",
        "log_watcher_skipped",
        "log_watcher_sent",
        "log_watchers",
        "unexpected_napi_ids",
        "round_robin_fallback",
    ] {
        stat_u64(out, name, 0);
    }
    stat_u64(out, "bytes", items.bytes);
    stat_u64(out, "curr_items", items.curr_items);
    stat_u64(out, "total_items", items.total_items);
    stat_u64(out, "slab_global_page_pool", 0);
    stat_u64(out, "expired_unfetched", items.expired_unfetched);
    stat_u64(out, "evicted_unfetched", items.evicted_unfetched);
    stat_u64(out, "evicted_active", 0);
    stat_u64(out, "evictions", items.evictions);
    stat_u64(out, "reclaimed", items.reclaimed);
    for name in [
        "crawler_reclaimed",
        "crawler_items_checked",
        "lrutail_reflocked",
        "moves_to_cold",
        "moves_to_warm",
        "moves_within_lru",
        "direct_reclaims",
        "lru_bumps_dropped",
    ] {
        stat_u64(out, name, 0);
    }
    out.extend_from_slice(END);
}

/// The reply to `stats settings`: memcached 1.6.18's keys in its order
/// (without the extstore, TLS and proxy ones), from this server's
/// configuration, or what a default memcached reports for what it does not
/// have (the slab mover, LRU crawler and maintainer show as on, matching
/// the zeroed counters `stats` prints for them, as memcached prints those
/// only when the feature is on); then `shards`, which memcached has not.
pub(crate) fn write_settings(store: &Store, out: &mut Vec<u8>) {
    let config = store.config();
    let c = store.counters();
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    stat_u64(out, "maxbytes", store.memory_limit() as u64);
    stat_u64(out, "maxconns", config.max_connections as u64);
    let port = c.tcp_port.load(Ordering::Relaxed);
    stat_u64(out, "tcpport", u64::from(port));
    stat_u64(out, "udpport", 0);
    stat_str(out, "inter", "NULL");
    stat_u64(out, "verbosity", u64::from(store.verbosity()));
    stat_u64(out, "oldest", 0);
    stat_str(out, "evictions", if config.evict { "on" } else { "off" });
    match &config.domain_socket {
        Some(path) => stat_str(out, "domain_socket", &path.to_string_lossy()),
        None => stat_str(out, "domain_socket", "NULL"),
    }
    stat_str(out, "umask", &format!("{:o}", config.unix_mask));
    stat_str(out, "shutdown_command", yes_no(config.shutdown_enabled));
    stat_str(out, "growth_factor", "1.25");
    stat_u64(out, "chunk_size", 48);
    stat_u64(out, "num_threads", config.threads as u64);
    stat_u64(out, "num_threads_per_udp", config.threads as u64);
    stat_str(out, "stat_key_prefix", ":");
    stat_str(out, "detail_enabled", yes_no(c.detail_enabled()));
    stat_u64(out, "reqs_per_event", u64::from(config.reqs_per_event));
    stat_str(out, "cas_enabled", "yes");
    stat_u64(out, "tcp_backlog", u64::from(config.backlog));
    let binding = if config.binding_auto {
        "auto-negotiate"
    } else {
        "ascii"
    };
    stat_str(out, "binding_protocol", binding);
    stat_str(out, "auth_enabled_sasl", "no");
    stat_str(out, "auth_enabled_ascii", "no");
    stat_u64(out, "item_size_max", config.item_size_max as u64);
    stat_str(out, "maxconns_fast", "yes");
    stat_u64(out, "hashpower_init", 0);
    stat_str(out, "slab_reassign", "yes");
    stat_u64(out, "slab_automove", 1);
    stat_str(out, "slab_automove_ratio", "0.80");
    stat_u64(out, "slab_automove_window", 30);
    stat_u64(out, "slab_chunk_max", (config.item_size_max / 2) as u64);
    stat_str(out, "lru_crawler", yes_no(store.crawler_enabled()));
    stat_u64(out, "lru_crawler_sleep", 100);
    stat_u64(out, "lru_crawler_tocrawl", 0);
    stat_u64(out, "tail_repair_time", 0);
    stat_str(out, "flush_enabled", yes_no(config.flush_enabled));
    stat_str(out, "dump_enabled", "no"); // metadump answers as with -X
    stat_str(out, "hash_algorithm", "siphash");
    stat_str(out, "lru_maintainer_thread", "yes");
    stat_str(out, "lru_segmented", "yes");
    stat_u64(out, "hot_lru_pct", 20);
    stat_u64(out, "warm_lru_pct", 40);
    stat_str(out, "hot_max_factor", "0.20");
    stat_str(out, "warm_max_factor", "2.00");
    stat_str(out, "temp_lru", "no");
    stat_u64(out, "temporary_ttl", 61);
    stat_u64(
        out,
        "idle_timeout",
        config.idle_timeout.map_or(0, |d| d.as_secs()),
    );
    stat_u64(out, "watcher_logbuf_size", 262_144);
    stat_u64(out, "worker_logbuf_size", 65_536);
    stat_u64(out, "read_buf_mem_limit", 0);
    let tracking = store.size_histogram().is_some();
    stat_str(out, "track_sizes", if tracking { "yes" } else { "no" });
    stat_str(out, "inline_ascii_response", "no");
    stat_str(out, "drop_privileges", "no");
    // memcached prints both with %s of a zero / NULL: glibc's "(null)".
    stat_str(out, "num_napi_ids", "(null)");
    stat_str(out, "memory_file", "(null)");
    stat_u64(out, "shards", store.shard_count() as u64);
    out.extend_from_slice(END);
}

/// memcached's `conn_to_str` form of an endpoint: `tcp:1.2.3.4:5`,
/// `tcp6:[::1]:5`, `unix:/path`, or `?:<AF 0>` for a Unix-domain client.
fn push_addr(out: &mut Vec<u8>, addr: &Endpoint) {
    use std::io::Write;
    let _ = match addr {
        Endpoint::Inet(addr) => {
            let proto = if addr.is_ipv4() { "tcp" } else { "tcp6" };
            write!(out, "{proto}:{addr}")
        }
        Endpoint::Unix(path) => {
            out.extend_from_slice(b"unix:");
            out.write_all(path.as_os_str().as_encoded_bytes())
        }
        Endpoint::UnnamedUnix => out.write_all(b"?:<AF 0>"),
    };
}

/// `stats conns` (memcached's `process_stats_conns`): for each listener
/// and connection, `addr`, `listen_addr` (connections only), `state` and
/// `secs_since_last_cmd`, keyed by an id where memcached uses the fd. The
/// asking connection is in `conn_parse_cmd`, the others `conn_waiting`.
fn write_conns(store: &Store, me: Option<&ConnTicket>, now: u64, out: &mut Vec<u8>) {
    let conns = store
        .counters()
        .conns
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let line = |out: &mut Vec<u8>, id: u64, name: &str| {
        out.extend_from_slice(b"STAT ");
        push_u64(out, id);
        out.push(b':');
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
    };
    for (&id, entry) in conns.iter() {
        line(out, id, "addr");
        push_addr(out, &entry.addr);
        out.extend_from_slice(b"\r\n");
        let state = match &entry.local {
            Some(local) => {
                line(out, id, "listen_addr");
                push_addr(out, local);
                out.extend_from_slice(b"\r\n");
                if me.map(ConnTicket::id) == Some(id) {
                    "conn_parse_cmd"
                } else {
                    "conn_waiting"
                }
            }
            None => "conn_listening",
        };
        line(out, id, "state");
        out.extend_from_slice(state.as_bytes());
        out.extend_from_slice(b"\r\n");
        line(out, id, "secs_since_last_cmd");
        push_u64(
            out,
            now.saturating_sub(entry.last_cmd.load(Ordering::Relaxed)),
        );
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(END);
}

/// `stats detail on|off|dump` (memcached's `process_stats_detail`).
fn detail(store: &Store, args: &Args<'_>, out: &mut Vec<u8>) {
    let c = store.counters();
    let sub: &[u8] = if args.len() < 2 { b"" } else { args.get(1) };
    match sub {
        b"on" => {
            c.detail.enabled.store(true, Ordering::Relaxed);
            out.extend_from_slice(OK);
        }
        b"off" => {
            c.detail.enabled.store(false, Ordering::Relaxed);
            out.extend_from_slice(OK);
        }
        b"dump" => c.detail.dump(out),
        _ => out.extend_from_slice(b"CLIENT_ERROR usage: stats detail on|off|dump\r\n"),
    }
}

/// `stats cachedump <class> <limit>`: `ITEM <key> [<bytes> b; <exptime> s]`
/// for up to `limit` items (0: all) of the class, then `END`. Every item is
/// in class 1 here; other valid classes are empty.
fn cachedump(store: &Store, args: &Args<'_>, out: &mut Vec<u8>) {
    if args.len() < 3 {
        out.extend_from_slice(b"CLIENT_ERROR bad command line\r\n");
        return;
    }
    let (Some(id), Some(limit)) = (parse_u32(args.get(1)), parse_u32(args.get(2))) else {
        out.extend_from_slice(b"CLIENT_ERROR bad command line format\r\n");
        return;
    };
    if id >= MAX_SLAB_CLASSES {
        out.extend_from_slice(b"CLIENT_ERROR Illegal slab id\r\n");
        return;
    }
    if id == CLASS {
        // memcached caps a dump at 2 MB of text.
        const MAX_DUMP: usize = 2 * 1024 * 1024;
        let start = out.len();
        store.for_each_item(limit as usize, |key, len, exptime| {
            if out.len() - start + key.len() + 64 > MAX_DUMP {
                return;
            }
            out.extend_from_slice(b"ITEM ");
            out.extend_from_slice(key);
            out.extend_from_slice(b" [");
            push_u64(out, len as u64);
            out.extend_from_slice(b" b; ");
            push_u64(out, exptime);
            out.extend_from_slice(b" s]\r\n");
        });
    }
    out.extend_from_slice(END);
}

/// `stats slabs`: one synthetic class holding every item (chunk size the
/// item size limit, one chunk per page), or no class when the store is
/// empty, then `active_slabs` and `total_malloced` (the item bytes).
fn write_slabs(store: &Store, out: &mut Vec<u8>) {
    let items = store.item_stats();
    let c = store.counters();
    let n = items.curr_items;
    if n > 0 {
        let p = "";
        stat_class(out, p, "chunk_size", store.config().item_size_max as u64);
        stat_class(out, p, "chunks_per_page", 1);
        stat_class(out, p, "total_pages", n);
        stat_class(out, p, "total_chunks", n);
        stat_class(out, p, "used_chunks", n);
        stat_class(out, p, "free_chunks", 0);
        stat_class(out, p, "free_chunks_end", 0);
        for (name, k) in [
            ("get_hits", Counter::GetHits),
            ("cmd_set", Counter::CmdSet),
            ("delete_hits", Counter::DeleteHits),
            ("incr_hits", Counter::IncrHits),
            ("decr_hits", Counter::DecrHits),
            ("cas_hits", Counter::CasHits),
            ("cas_badval", Counter::CasBadval),
            ("touch_hits", Counter::TouchHits),
        ] {
            stat_class(out, p, name, c.get(k));
        }
    }
    stat_u64(out, "active_slabs", u64::from(n > 0));
    stat_u64(out, "total_malloced", items.bytes);
    out.extend_from_slice(END);
}

/// `stats items`: memcached 1.6's per-class lines for the one class, or
/// only `END` when the store is empty. The store has one LRU, reported as
/// the cold one.
fn write_items(store: &Store, out: &mut Vec<u8>) {
    let items = store.item_stats();
    let n = items.curr_items;
    if n > 0 {
        let p = "items:";
        stat_class(out, p, "number", n);
        stat_class(out, p, "number_hot", 0);
        stat_class(out, p, "number_warm", 0);
        stat_class(out, p, "number_cold", n);
        stat_class(out, p, "age_hot", 0);
        stat_class(out, p, "age_warm", 0);
        stat_class(out, p, "age", items.oldest_age);
        stat_class(out, p, "mem_requested", items.bytes);
        stat_class(out, p, "evicted", items.evictions);
        stat_class(out, p, "evicted_nonzero", items.evicted_nonzero);
        stat_class(out, p, "evicted_time", items.evicted_time);
        stat_class(
            out,
            p,
            "outofmemory",
            store.counters().get(Counter::StoreNoMemory),
        );
        stat_class(out, p, "tailrepairs", 0);
        stat_class(out, p, "reclaimed", items.reclaimed);
        stat_class(out, p, "expired_unfetched", items.expired_unfetched);
        stat_class(out, p, "evicted_unfetched", items.evicted_unfetched);
        for name in [
            "evicted_active",
            "crawler_reclaimed",
            "crawler_items_checked",
            "lrutail_reflocked",
            "moves_to_cold",
            "moves_to_warm",
            "moves_within_lru",
            "direct_reclaims",
            "hits_to_hot",
            "hits_to_warm",
            "hits_to_cold",
            "hits_to_temp",
        ] {
            stat_class(out, p, name, 0);
        }
    }
    out.extend_from_slice(END);
}
