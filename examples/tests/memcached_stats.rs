//! `stats` and its subcommands over loopback, as memcached 1.6.18 answers
//! them: every subcommand ends with `END` except `sizes_enable` and
//! `sizes_disable`, whose one line memcached sends alone (a client written
//! against it reads one line; an extra `END` would be taken as the reply to
//! its next command), deterministic replies are compared byte for byte, and the
//! counters that must be live (`get_expired`, `get_flushed`, `bytes_read`,
//! `bytes_written`) are checked to move. Each test starts its own server.

mod memcached_common;

use memcached_common::{ServerProcess, TextClient};
use std::time::Duration;

/// Sends `request` and reads lines up to and including the `END` line (or
/// a single error/OK line).
fn ask(c: &mut TextClient, request: &str) -> Vec<String> {
    c.send(request.as_bytes());
    let mut lines = Vec::new();
    loop {
        let line = c.line();
        assert!(!line.is_empty(), "connection closed during {request:?}");
        let last = line == "END\r\n"
            || line == "OK\r\n"
            || line == "RESET\r\n"
            || line.starts_with("ERROR")
            || line.starts_with("CLIENT_ERROR");
        lines.push(line);
        if last {
            return lines;
        }
    }
}

/// The `STAT name value` lines as (name, value) pairs.
fn stats(c: &mut TextClient, request: &str) -> Vec<(String, String)> {
    let lines = ask(c, request);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("END\r\n"),
        "{lines:?}"
    );
    lines[..lines.len() - 1]
        .iter()
        .map(|l| {
            let rest = l
                .strip_prefix("STAT ")
                .and_then(|r| r.strip_suffix("\r\n"))
                .unwrap_or_else(|| panic!("not a STAT line: {l:?}"));
            let (name, value) = rest.split_once(' ').unwrap_or((rest, ""));
            (name.to_string(), value.to_string())
        })
        .collect()
}

fn value(stats: &[(String, String)], name: &str) -> String {
    stats
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no stat {name} in {stats:?}"))
}

/// `stats sizes_enable` starts memcached's histogram: items stored from
/// then on, by 32-byte bucket of their memcached size, live until deleted
/// or flushed. Replies compared with memcached 1.6.18's for the same script.
#[test]
fn sizes_histogram_tracks_items_stored_after_enabling() {
    let server = ServerProcess::start(&["-t", "2"]);
    let mut c = TextClient::connect(server.addr);
    c.set("pre", b"0123456789");
    for _ in 0..2 {
        c.send(b"stats sizes_enable\r\n");
        assert_eq!(c.line(), "STAT sizes_status enabled\r\n");
    }
    c.set("a", b"hello");
    c.set("c", b"abc");
    c.send(&[&b"set b 5 0 100\r\n"[..], &[b'x'; 100], b"\r\n"].concat());
    assert_eq!(c.line(), "STORED\r\n");
    assert_eq!(
        ask(&mut c, "stats sizes\r\n"),
        [
            "STAT 64 1\r\n",
            "STAT 96 1\r\n",
            "STAT 192 1\r\n",
            "END\r\n"
        ]
    );
    let settings = stats(&mut c, "stats settings\r\n");
    assert_eq!(value(&settings, "track_sizes"), "yes");
    // "pre" was stored before: removing it changes nothing.
    for key in ["pre", "a"] {
        c.send(format!("delete {key}\r\n").as_bytes());
        assert_eq!(c.line(), "DELETED\r\n");
    }
    assert_eq!(
        ask(&mut c, "stats sizes\r\n"),
        ["STAT 64 1\r\n", "STAT 192 1\r\n", "END\r\n"]
    );
    assert_eq!(ask(&mut c, "flush_all\r\n"), ["OK\r\n"]);
    assert_eq!(ask(&mut c, "stats sizes\r\n"), ["END\r\n"]);
    c.set("d", b"1");
    assert_eq!(ask(&mut c, "stats sizes\r\n"), ["STAT 64 1\r\n", "END\r\n"]);
    c.send(b"stats sizes_disable\r\n");
    assert_eq!(c.line(), "STAT sizes_status disabled\r\n");
    assert_eq!(
        ask(&mut c, "stats sizes\r\n"),
        ["STAT sizes_status disabled\r\n", "END\r\n"]
    );

    // -o track_sizes: on from the start.
    let server = ServerProcess::start(&["-o", "track_sizes"]);
    let mut c = TextClient::connect(server.addr);
    assert_eq!(ask(&mut c, "stats sizes\r\n"), ["END\r\n"]);
    c.set("k", b"v");
    assert_eq!(ask(&mut c, "stats sizes\r\n"), ["STAT 64 1\r\n", "END\r\n"]);
}

#[test]
fn subcommands_answer_like_memcached() {
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);

    // Empty store.
    assert_eq!(ask(&mut c, "stats items\r\n"), ["END\r\n"]);
    assert_eq!(
        ask(&mut c, "stats slabs\r\n"),
        [
            "STAT active_slabs 0\r\n",
            "STAT total_malloced 0\r\n",
            "END\r\n"
        ]
    );
    assert_eq!(
        ask(&mut c, "stats sizes\r\n"),
        ["STAT sizes_status disabled\r\n", "END\r\n"]
    );
    assert_eq!(ask(&mut c, "stats cachedump 1 0\r\n"), ["END\r\n"]);
    c.send(b"stats sizes_disable\r\n");
    assert_eq!(c.line(), "STAT sizes_status disabled\r\n");

    c.set("alpha", b"12345");
    c.set("beta", b"xy");

    // One synthetic slab class with both items.
    let slabs = stats(&mut c, "stats slabs\r\n");
    assert_eq!(value(&slabs, "1:used_chunks"), "2");
    assert_eq!(value(&slabs, "1:cmd_set"), "2");
    assert_eq!(value(&slabs, "active_slabs"), "1");
    let names: Vec<&str> = slabs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "1:chunk_size",
            "1:chunks_per_page",
            "1:total_pages",
            "1:total_chunks",
            "1:used_chunks",
            "1:free_chunks",
            "1:free_chunks_end",
            "1:get_hits",
            "1:cmd_set",
            "1:delete_hits",
            "1:incr_hits",
            "1:decr_hits",
            "1:cas_hits",
            "1:cas_badval",
            "1:touch_hits",
            "active_slabs",
            "total_malloced",
        ]
    );

    let items = stats(&mut c, "stats items\r\n");
    assert_eq!(value(&items, "items:1:number"), "2");
    assert_eq!(value(&items, "items:1:number_cold"), "2");
    assert_eq!(items[0].0, "items:1:number");
    assert_eq!(items.last().unwrap().0, "items:1:hits_to_temp");
    assert!(items.iter().all(|(n, _)| n.starts_with("items:1:")));

    // cachedump: most recently used first; limit honoured; other classes
    // empty; bad arguments as memcached words them.
    assert_eq!(
        ask(&mut c, "stats cachedump 1 0\r\n"),
        [
            "ITEM beta [2 b; 0 s]\r\n",
            "ITEM alpha [5 b; 0 s]\r\n",
            "END\r\n"
        ]
    );
    assert_eq!(
        ask(&mut c, "stats cachedump 1 1\r\n"),
        ["ITEM beta [2 b; 0 s]\r\n", "END\r\n"]
    );
    assert_eq!(ask(&mut c, "stats cachedump 2 0\r\n"), ["END\r\n"]);
    assert_eq!(
        ask(&mut c, "stats cachedump 64 0\r\n"),
        ["CLIENT_ERROR Illegal slab id\r\n"]
    );
    assert_eq!(
        ask(&mut c, "stats cachedump 1\r\n"),
        ["CLIENT_ERROR bad command line\r\n"]
    );
    assert_eq!(
        ask(&mut c, "stats cachedump x 1\r\n"),
        ["CLIENT_ERROR bad command line format\r\n"]
    );

    // detail: off by default, on/off answer OK, dump lists prefixes.
    assert_eq!(ask(&mut c, "stats detail dump\r\n"), ["END\r\n"]);
    assert_eq!(
        ask(&mut c, "stats detail\r\n"),
        ["CLIENT_ERROR usage: stats detail on|off|dump\r\n"]
    );
    assert_eq!(ask(&mut c, "stats detail on\r\n"), ["OK\r\n"]);
    assert_eq!(
        value(&stats(&mut c, "stats settings\r\n"), "detail_enabled"),
        "yes"
    );
    c.set("user:1", b"a");
    assert_eq!(c.get("user:1"), Some(b"a".to_vec()));
    assert_eq!(c.get("user:2"), None);
    c.send(b"delete user:1\r\n");
    assert_eq!(c.line(), "DELETED\r\n");
    assert_eq!(c.get("nocolon"), None);
    assert_eq!(
        ask(&mut c, "stats detail dump\r\n"),
        ["PREFIX user get 2 hit 1 set 1 del 1\r\n", "END\r\n"]
    );
    assert_eq!(ask(&mut c, "stats detail off\r\n"), ["OK\r\n"]);
    assert_eq!(
        value(&stats(&mut c, "stats settings\r\n"), "detail_enabled"),
        "no"
    );

    // conns: the listener, and this connection in conn_parse_cmd.
    let conns = stats(&mut c, "stats conns\r\n");
    let me = c.stream().local_addr().unwrap();
    let listen = format!("tcp:{}", server.addr);
    let mine = conns
        .iter()
        .find(|(n, v)| n.ends_with(":addr") && *v == format!("tcp:{me}"))
        .unwrap_or_else(|| panic!("{conns:?}"));
    let id = mine.0.trim_end_matches(":addr").to_string();
    assert_eq!(value(&conns, &format!("{id}:listen_addr")), listen);
    assert_eq!(value(&conns, &format!("{id}:state")), "conn_parse_cmd");
    assert_eq!(value(&conns, &format!("{id}:secs_since_last_cmd")), "0");
    assert!(
        conns
            .iter()
            .any(|(n, v)| n.ends_with(":addr") && *v == listen),
        "{conns:?}"
    );
    assert!(
        conns.iter().any(|(_, v)| v == "conn_listening"),
        "{conns:?}"
    );

    // Unknown subcommands stay errors.
    assert_eq!(ask(&mut c, "stats bogus\r\n"), ["ERROR\r\n"]);
}

#[test]
fn general_stats_and_settings_have_memcached_keys() {
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    let general = stats(&mut c, "stats\r\n");
    let names: Vec<&str> = general.iter().map(|(n, _)| n.as_str()).collect();
    // A memcached 1.6.18 `stats` (without libevent and extstore keys), in
    // its order.
    let expected = [
        "pid",
        "uptime",
        "time",
        "version",
        "pointer_size",
        "rusage_user",
        "rusage_system",
        "max_connections",
        "curr_connections",
        "total_connections",
        "rejected_connections",
        "connection_structures",
        "response_obj_oom",
        "response_obj_count",
        "response_obj_bytes",
        "read_buf_count",
        "read_buf_bytes",
        "read_buf_bytes_free",
        "read_buf_oom",
        "reserved_fds",
        "cmd_get",
        "cmd_set",
        "cmd_flush",
        "cmd_touch",
        "cmd_meta",
        "get_hits",
        "get_misses",
        "get_expired",
        "get_flushed",
        "delete_misses",
        "delete_hits",
        "incr_misses",
        "incr_hits",
        "decr_misses",
        "decr_hits",
        "cas_misses",
        "cas_hits",
        "cas_badval",
        "touch_hits",
        "touch_misses",
        "store_too_large",
        "store_no_memory",
        "auth_cmds",
        "auth_errors",
        "bytes_read",
        "bytes_written",
        "limit_maxbytes",
        "accepting_conns",
        "listen_disabled_num",
        "time_in_listen_disabled_us",
        "threads",
        "conn_yields",
        "hash_power_level",
        "hash_bytes",
        "hash_is_expanding",
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
        "bytes",
        "curr_items",
        "total_items",
        "slab_global_page_pool",
        "expired_unfetched",
        "evicted_unfetched",
        "evicted_active",
        "evictions",
        "reclaimed",
        "crawler_reclaimed",
        "crawler_items_checked",
        "lrutail_reflocked",
        "moves_to_cold",
        "moves_to_warm",
        "moves_within_lru",
        "direct_reclaims",
        "lru_bumps_dropped",
    ];
    assert_eq!(names, expected);
    let rusage = value(&general, "rusage_user");
    let (secs, micros) = rusage.split_once('.').expect("seconds.micros");
    assert!(secs.parse::<u64>().is_ok() && micros.len() == 6, "{rusage}");
    assert_eq!(value(&general, "accepting_conns"), "1");
    let power: u32 = value(&general, "hash_power_level").parse().unwrap();
    let bytes: u64 = value(&general, "hash_bytes").parse().unwrap();
    assert!(bytes >= 4 << power, "{power} {bytes}");

    let settings = stats(&mut c, "stats settings\r\n");
    let names: Vec<&str> = settings.iter().map(|(n, _)| n.as_str()).collect();
    // memcached 1.6.18's `process_stat_settings` without the extstore, TLS
    // and proxy keys, then this server's `shards`.
    let expected = [
        "maxbytes",
        "maxconns",
        "tcpport",
        "udpport",
        "inter",
        "verbosity",
        "oldest",
        "evictions",
        "domain_socket",
        "umask",
        "shutdown_command",
        "growth_factor",
        "chunk_size",
        "num_threads",
        "num_threads_per_udp",
        "stat_key_prefix",
        "detail_enabled",
        "reqs_per_event",
        "cas_enabled",
        "tcp_backlog",
        "binding_protocol",
        "auth_enabled_sasl",
        "auth_enabled_ascii",
        "item_size_max",
        "maxconns_fast",
        "hashpower_init",
        "slab_reassign",
        "slab_automove",
        "slab_automove_ratio",
        "slab_automove_window",
        "slab_chunk_max",
        "lru_crawler",
        "lru_crawler_sleep",
        "lru_crawler_tocrawl",
        "tail_repair_time",
        "flush_enabled",
        "dump_enabled",
        "hash_algorithm",
        "lru_maintainer_thread",
        "lru_segmented",
        "hot_lru_pct",
        "warm_lru_pct",
        "hot_max_factor",
        "warm_max_factor",
        "temp_lru",
        "temporary_ttl",
        "idle_timeout",
        "watcher_logbuf_size",
        "worker_logbuf_size",
        "read_buf_mem_limit",
        "track_sizes",
        "inline_ascii_response",
        "drop_privileges",
        "num_napi_ids",
        "memory_file",
        "shards",
    ];
    assert_eq!(names, expected);
    assert_eq!(settings[0], ("maxbytes".into(), (64u64 << 20).to_string()));
    assert_eq!(value(&settings, "maxconns"), "1024");
    assert_eq!(value(&settings, "tcpport"), server.addr.port().to_string());
    assert_eq!(value(&settings, "item_size_max"), "1048576");
    assert_eq!(value(&settings, "evictions"), "on");
    assert_eq!(value(&settings, "cas_enabled"), "yes");
    assert_eq!(value(&settings, "growth_factor"), "1.25");
    assert_eq!(value(&settings, "stat_key_prefix"), ":");
    assert_eq!(value(&settings, "track_sizes"), "no");
}

#[test]
fn get_expired_and_get_flushed_count() {
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    assert_eq!(c.stat("get_expired"), "0");
    assert_eq!(c.stat("get_flushed"), "0");

    // The background reclaimer would remove the item before the get finds
    // it expired (memcached's LRU crawler too): switch it off.
    c.send(b"lru_crawler disable\r\n");
    assert_eq!(c.line(), "OK\r\n");
    // An item stored already expired is linked, as memcached links it
    // (memcached's t/stats.t: an absolute exptime of 31 days after the
    // epoch), so the lookup counts it.
    c.send(b"set should_expire 0 2678400 6\r\nfooval\r\n");
    assert_eq!(c.line(), "STORED\r\n");
    assert_eq!(c.get("should_expire"), None);
    assert_eq!(c.stat("get_expired"), "1");
    c.send(b"set negative 0 -1 1\r\nx\r\n");
    assert_eq!(c.line(), "STORED\r\n");
    assert_eq!(c.get("negative"), None);
    assert_eq!(c.stat("get_expired"), "2");
    // And one that expires for real: exptime 1 second.
    c.send(b"set soon 0 1 1\r\nx\r\n");
    assert_eq!(c.line(), "STORED\r\n");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(c.get("soon"), None);
    assert_eq!(c.stat("get_expired"), "3");
    assert_eq!(
        c.get("soon"),
        None,
        "an expired item is gone after one look"
    );
    assert_eq!(c.stat("get_expired"), "3");

    c.set("a", b"1");
    c.set("b", b"2");
    assert_eq!(ask(&mut c, "flush_all\r\n"), ["OK\r\n"]);
    assert_eq!(c.get("a"), None);
    assert_eq!(c.stat("get_flushed"), "1");
    assert_eq!(c.get("a"), None);
    assert_eq!(c.get("never"), None);
    assert_eq!(c.stat("get_flushed"), "1");
    assert_eq!(c.stat("get_misses"), "7");
    assert_eq!(c.stat("curr_items"), "0");
    assert_eq!(ask(&mut c, "stats reset\r\n"), ["RESET\r\n"]);
    assert_eq!(c.stat("get_expired"), "0");
    assert_eq!(c.stat("get_flushed"), "0");
}

#[test]
fn bytes_read_and_written_are_live() {
    let server = ServerProcess::start(&[]);
    let mut c = TextClient::connect(server.addr);
    c.set("k", b"value");
    assert_eq!(c.get("k"), Some(b"value".to_vec()));
    let general = stats(&mut c, "stats\r\n");
    // set (20 bytes) + get (7) read; STORED (8) + VALUE/END (25) written.
    // Like memcached, the stats request (7) counts itself.
    let read: u64 = value(&general, "bytes_read").parse().unwrap();
    assert_eq!(read, 34);
    let written: u64 = value(&general, "bytes_written").parse().unwrap();
    assert!(read >= 27, "bytes_read {read}");
    assert!(written >= 33, "bytes_written {written}");
    // A second look counts the first stats request and its reply.
    let again = stats(&mut c, "stats\r\n");
    let read2: u64 = value(&again, "bytes_read").parse().unwrap();
    let written2: u64 = value(&again, "bytes_written").parse().unwrap();
    assert!(read2 >= read + 7, "{read} -> {read2}");
    assert!(written2 > written + 1000, "{written} -> {written2}");
}
