//! Malformed input, line and item size limits, output bounds and the memory limit.

use super::*;

#[test]
fn key_length_limit() {
    let mut c = Conn::new();
    let ok = "k".repeat(250);
    let long = "k".repeat(251);
    assert_eq!(c.send(&format!("set {ok} 0 0 1\r\n1\r\n")), "STORED\r\n");
    assert_eq!(
        c.send(&format!("get {ok}\r\n")),
        format!("VALUE {ok} 0 1\r\n1\r\nEND\r\n")
    );
    // memcached does not swallow the data of a refused line: it is read as a
    // command of its own.
    assert_eq!(
        c.send(&format!("set {long} 0 0 1\r\n1\r\n")),
        "CLIENT_ERROR bad command line format\r\nERROR\r\n"
    );
    // A bad key drops the values already found for the same get.
    assert_eq!(
        c.send(&format!("get {ok} {long}\r\n")),
        "CLIENT_ERROR bad command line format\r\n"
    );
    for line in [
        format!("delete {long}\r\n"),
        format!("incr {long} 1\r\n"),
        format!("touch {long} 1\r\n"),
    ] {
        assert_eq!(
            c.send(&line),
            "CLIENT_ERROR bad command line format\r\n",
            "{line}"
        );
    }
}

#[test]
fn keys_with_control_characters_work_as_in_memcached() {
    // memaslap's keys start with 0x10 bytes; memcached stores them.
    let mut c = Conn::new();
    assert_eq!(c.send("set a\tb 0 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(c.send("get a\tb\r\n"), "VALUE a\tb 0 1\r\nx\r\nEND\r\n");
    assert_eq!(c.send("set \x10\x10k 0 0 1\r\ny\r\n"), "STORED\r\n");
    assert_eq!(
        c.send("get \x10\x10k\r\n"),
        "VALUE \x10\x10k 0 1\r\ny\r\nEND\r\n"
    );
    assert_eq!(
        c.send("get a\x00b\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(c.send("set こんにちは 0 0 1\r\n1\r\n"), "STORED\r\n");
}

#[test]
fn bad_numbers_on_storage_lines() {
    let mut c = Conn::new();
    for line in [
        "set k abc 0 1\r\n",
        "set k 0 abc 1\r\n",
        "set k 0 0 abc\r\n",
        "set k 0 0 -1\r\n",
        // memcached's t/issue_70.t: these truncate to negative lengths.
        "set k 0 0 4294967295\r\n",
        "set k 0 0 2147483647\r\n",
        "cas k 0 0 1 abc\r\n",
        "cas k 0 0 1 -1\r\n",
    ] {
        assert_eq!(
            c.send(line),
            "CLIENT_ERROR bad command line format\r\n",
            "{line:?}"
        );
    }
    assert_eq!(c.send("set k 0 0\r\n"), "ERROR\r\n");
    assert_eq!(c.send("set k 0 0 1 noreply x\r\n"), "ERROR\r\n");
    assert_eq!(c.send("set issue70 0 0 0\r\n\r\n"), "STORED\r\n");
}

#[test]
fn bad_data_chunk() {
    let mut c = Conn::new();
    // 3 value bytes then "de" where "\r\n" belongs; the real "\r\n" that
    // follows is then an empty command line, exactly as in memcached.
    assert_eq!(
        c.send("set k 0 0 3\r\nabcde\r\n"),
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    );
    assert_eq!(c.send("get k\r\n"), "END\r\n");
    assert_eq!(
        c.send("set k 0 0 3\r\nabc\n\r\n"),
        "CLIENT_ERROR bad data chunk\r\nERROR\r\n"
    );
    assert_eq!(c.send("set k 0 0 3\r\nabc\r\n"), "STORED\r\n");
}

#[test]
fn too_large_values_are_swallowed_without_buffering() {
    let config = Config::default();
    let mut c = Conn::with_config(config.clone());
    c.send("set big 0 0 1\r\nx\r\n");
    let length = config.item_size_max; // the header pushes it over
    let header = format!("set big 0 0 {length}\r\n");
    let mut out = Vec::new();
    let (used, progress) = c.session.process(&c.store, header.as_bytes(), &mut out);
    assert_eq!((used, progress), (header.len(), Progress::Continue));
    assert_eq!(out, b"SERVER_ERROR object too large for cache\r\n");
    // The data is consumed as it arrives: nothing is left for the caller to
    // hold, and the session keeps only a count.
    let chunk = vec![b'z'; 64 * 1024];
    let mut remaining = length + 2;
    while remaining > 0 {
        let n = remaining.min(chunk.len());
        out.clear();
        let (used, progress) = c.session.process(&c.store, &chunk[..n], &mut out);
        assert_eq!((used, progress), (n, Progress::Continue));
        assert!(out.is_empty());
        remaining -= n;
    }
    assert!(matches!(c.session.state, State::Line));
    assert_eq!(
        c.send("get big\r\n"),
        "END\r\n",
        "a refused set removes the old value"
    );
    assert_eq!(c.stat("store_too_large"), 1);
}

#[test]
fn item_size_boundary_matches_memcached() {
    let mut c = Conn::new();
    let max = DEFAULT_ITEM_SIZE_MAX;
    // 48 header + "k\0" + "\r\n" + 8 CAS = 60 bytes of overhead.
    let fits = max - 60;
    let value = "v".repeat(fits);
    assert_eq!(
        c.send(&format!("set k 0 0 {fits}\r\n{value}\r\n")),
        "STORED\r\n"
    );
    let value = "v".repeat(fits + 1);
    assert_eq!(
        c.send(&format!("set k 0 0 {}\r\n{value}\r\n", fits + 1)),
        "SERVER_ERROR object too large for cache\r\n"
    );
    assert_eq!(
        c.send(&format!(
            "set k 0 0 {} noreply\r\n{value}\r\nversion\r\n",
            fits + 1
        )),
        format!("VERSION {VERSION}\r\n"),
        "noreply silences it and the data is still swallowed"
    );
}

#[test]
fn overlong_line_closes_with_bounded_memory() {
    let config = Config::default();
    let mut c = Conn::with_config(config.clone());
    let junk = vec![b'a'; config.max_line];
    let mut out = Vec::new();
    let (used, progress) = c.session.process(&c.store, &junk, &mut out);
    assert_eq!(
        (used, progress),
        (0, Progress::Continue),
        "2048 bytes may still end"
    );
    let mut longer = junk.clone();
    longer.push(b'a');
    let (_, progress) = c.session.process(&c.store, &longer, &mut out);
    assert_eq!(progress, Progress::Close(CloseReason::LineTooLong));
    assert!(out.is_empty());

    // Even a huge burst is rejected after looking at max_line + 1 bytes.
    let mut c = Conn::with_config(config.clone());
    let flood = vec![b'a'; 10 * 1024 * 1024];
    let (_, progress) = c.session.process(&c.store, &flood, &mut out);
    assert_eq!(progress, Progress::Close(CloseReason::LineTooLong));

    // A line that does end, but too late, is refused the same way, so the
    // outcome does not depend on how the bytes were split into reads.
    let mut line = vec![b'a'; config.max_line + 10];
    line.extend_from_slice(b"\r\n");
    let (whole, closed) = run_chunked(&config, &line, &[usize::MAX]);
    assert_eq!((whole.len(), closed), (0, Some(CloseReason::LineTooLong)));
    let (bytes, closed) = run_chunked(&config, &line, &[1]);
    assert_eq!((bytes.len(), closed), (0, Some(CloseReason::LineTooLong)));
}

#[test]
fn long_multiget_lines_are_allowed() {
    let mut c = Conn::new();
    c.send("set k0 0 0 1\r\n0\r\n");
    let keys: Vec<String> = (0..500).map(|i| format!("k{i}")).collect();
    let line = format!("get {}\r\n", keys.join(" "));
    assert!(line.len() > DEFAULT_MAX_LINE);
    assert_eq!(c.send(&line), "VALUE k0 0 1\r\n0\r\nEND\r\n");
    assert_eq!(c.closed, None);
    // Not for other commands.
    let line = format!("delete {}\r\n", keys.join(" "));
    c.send(&line);
    assert_eq!(c.closed, Some(CloseReason::LineTooLong));
}

#[test]
fn multiget_line_has_its_own_bound() {
    let config = Config {
        max_multiget_line: 4096,
        ..Config::default()
    };
    let mut line = b"get ".to_vec();
    line.resize(5000, b'k');
    let (_, closed) = run_chunked(&config, &line, &[100]);
    assert_eq!(closed, Some(CloseReason::LineTooLong));
}

// ---- output bounds -------------------------------------------------------------------

#[test]
fn output_high_water_pauses_pipelined_commands() {
    let config = Config {
        output_high_water: 1000,
        ..Config::default()
    };
    let mut c = Conn::with_config(config.clone());
    let value = "v".repeat(400);
    c.send(&format!("set k 0 0 400\r\n{value}\r\n"));
    let burst = "get k\r\n".repeat(10);
    let mut out = Vec::new();
    let (used, progress) = c.session.process(&c.store, burst.as_bytes(), &mut out);
    assert_eq!(progress, Progress::OutputFull);
    assert_eq!(
        used,
        "get k\r\n".len() * 3,
        "stopped once 1000 bytes were pending"
    );
    assert!(out.len() < 1000 + 500);
    // The Conn helper drains and resumes; the total is every reply.
    let all = c.send(&burst);
    assert_eq!(all.matches("VALUE k 0 400\r\n").count(), 10);
}

#[test]
fn oversized_get_reply_becomes_a_server_error() {
    let config = Config {
        max_get_response: 1000,
        ..Config::default()
    };
    let mut c = Conn::with_config(config);
    let value = "v".repeat(400);
    c.send(&format!("set k 0 0 400\r\n{value}\r\n"));
    assert_eq!(c.send("get k k\r\n").matches("VALUE").count(), 2);
    assert_eq!(
        c.send("get k k k\r\n"),
        "SERVER_ERROR out of memory writing get response\r\n"
    );
    assert_eq!(c.send("version\r\n"), format!("VERSION {VERSION}\r\n"));
}

// ---- memory limit ----------------------------------------------------------------------

#[test]
fn lru_eviction_is_counted() {
    let per_item = item_size(4, 0, 100);
    let config = Config {
        memory_limit: per_item * 5,
        item_size_max: per_item,
        ..Config::default()
    };
    let mut c = Conn::with_config(config);
    let value = "v".repeat(100);
    for i in 0..5 {
        assert_eq!(
            c.send(&format!("set k{i:03} 0 0 100\r\n{value}\r\n")),
            "STORED\r\n"
        );
    }
    c.send("get k000\r\n");
    c.send(&format!("set k005 0 0 100\r\n{value}\r\n"));
    assert_eq!(c.stat("evictions"), 1);
    assert_eq!(
        c.send("get k001\r\n"),
        "END\r\n",
        "least recently used went first"
    );
    assert!(c.send("get k000\r\n").starts_with("VALUE"));
    assert_eq!(c.stat("curr_items"), 5);
    assert!(c.stat("bytes") <= c.stat("limit_maxbytes"));
}

#[test]
fn value_larger_than_the_whole_memory_limit() {
    let config = Config {
        memory_limit: 1000,
        ..Config::default()
    };
    let mut c = Conn::with_config(config);
    let value = "v".repeat(2000);
    assert_eq!(
        c.send(&format!("set k 0 0 2000\r\n{value}\r\nversion\r\n")),
        format!("SERVER_ERROR out of memory storing object\r\nVERSION {VERSION}\r\n")
    );
    assert_eq!(c.stat("store_no_memory"), 1);
}
