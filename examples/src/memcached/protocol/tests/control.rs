//! `flush_all`, `version`, `verbosity`, `quit`, unknown commands and `stats`.

use super::*;

#[test]
fn flush_all_now() {
    let mut c = Conn::new();
    c.send("set foo 0 0 6\r\nfooval\r\n");
    assert_eq!(c.send("flush_all\r\n"), "OK\r\n");
    assert_eq!(c.send("get foo\r\n"), "END\r\n");
    c.send("set foo 0 0 3\r\nnew\r\n");
    assert_eq!(c.send("get foo\r\n"), "VALUE foo 0 3\r\nnew\r\nEND\r\n");
    assert_eq!(c.send("flush_all 0\r\n"), "OK\r\n");
    assert_eq!(c.send("get foo\r\n"), "END\r\n");
    assert_eq!(c.stat("cmd_flush"), 2);
    assert_eq!(c.stat("curr_items"), 0);
}

#[test]
fn flush_all_with_a_delay() {
    let mut c = Conn::new();
    c.send("set foo 0 0 4\r\n1234\r\n");
    assert_eq!(c.send("flush_all 10\r\n"), "OK\r\n");
    c.send("set bar 0 0 4\r\n5678\r\n");
    // memcached's oldest_live is one second before the deadline.
    c.clock.advance(8);
    assert_eq!(
        c.send("get foo bar\r\n"),
        "VALUE foo 0 4\r\n1234\r\nVALUE bar 0 4\r\n5678\r\nEND\r\n"
    );
    c.clock.advance(1);
    assert_eq!(c.send("get foo bar\r\n"), "END\r\n");
    c.send("set foo 0 0 3\r\nnew\r\n");
    assert_eq!(c.send("get foo\r\n"), "VALUE foo 0 3\r\nnew\r\nEND\r\n");
}

#[test]
fn flush_all_with_an_absolute_time_and_a_far_future() {
    let mut c = Conn::new();
    c.send("set foo 0 0 5\r\n12345\r\n");
    assert_eq!(c.send(&format!("flush_all {}\r\n", T0 + 2)), "OK\r\n");
    assert_eq!(c.send("get foo\r\n"), "VALUE foo 0 5\r\n12345\r\nEND\r\n");
    c.clock.advance(5);
    assert_eq!(c.send("get foo\r\n"), "END\r\n");
    c.send("set foo 0 0 5\r\n12345\r\n");
    assert_eq!(c.send("flush_all 86400\r\n"), "OK\r\n");
    c.send("set foo2 0 0 5\r\n54321\r\n");
    assert_eq!(
        c.send("get foo foo2\r\n"),
        "VALUE foo 0 5\r\n12345\r\nVALUE foo2 0 5\r\n54321\r\nEND\r\n"
    );
}

#[test]
fn flush_all_arguments() {
    let mut c = Conn::new();
    assert_eq!(
        c.send("flush_all foo\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(c.send("flush_all 1 2 3\r\n"), "ERROR\r\n");
    assert_eq!(c.send("flush_all -5\r\n"), "OK\r\n");
}

// ---- misc commands -----------------------------------------------------------------

#[test]
fn version_and_verbosity_as_memcached_1_6_and_memcapable_expect() {
    let mut c = Conn::new();
    let version = format!("VERSION {VERSION}\r\n");
    assert_eq!(c.send("version\r\n"), version);
    assert_eq!(c.send("version foo bar\r\n"), version);
    assert_eq!(c.send("version noreply\r\n"), version);
    assert_eq!(c.send("verbosity foo bar my\r\n"), "ERROR\r\n");
    assert_eq!(c.send("verbosity 1 2 3\r\n"), "ERROR\r\n");
    assert_eq!(c.send("verbosity noreply\r\n"), "");
    assert_eq!(
        c.send("verbosity x\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
    assert_eq!(c.send("verbosity 0 noreply\r\n"), "");
    assert_eq!(c.send("verbosity\r\n"), "ERROR\r\n");
    assert_eq!(c.send("verbosity 1\r\n"), "OK\r\n");
    assert_eq!(c.store.verbosity(), 1);
    assert_eq!(c.send("verbosity 9\r\n"), "OK\r\n");
    assert_eq!(c.store.verbosity(), 2);
    assert_eq!(c.send("verbosity 0\r\n"), "OK\r\n");
}

#[test]
fn quit_closes_after_earlier_replies() {
    let mut c = Conn::new();
    assert_eq!(
        c.send("version\r\nquit\r\nversion\r\n"),
        format!("VERSION {VERSION}\r\n")
    );
    assert_eq!(c.closed, Some(CloseReason::Quit));
    let mut out = Vec::new();
    let (used, progress) = c.session.process(&c.store, b"version\r\n", &mut out);
    assert_eq!((used, progress), (0, Progress::Close(CloseReason::Quit)));
    assert!(out.is_empty());
}

#[test]
fn quit_ignores_arguments_like_memcached_1_6() {
    let mut c = Conn::new();
    assert_eq!(c.send("quit noreply\r\nversion\r\n"), "");
    assert_eq!(c.closed, Some(CloseReason::Quit));
}

#[test]
fn unknown_commands_get_error_and_the_connection_lives_on() {
    let mut c = Conn::new();
    for line in [
        "bogus\r\n",
        "\r\n",
        "\n",
        "x\r\n",
        "GET k\r\n",
        "mz k v\r\n",
        "g k\r\n",
    ] {
        assert_eq!(c.send(line), "ERROR\r\n", "{line:?}");
    }
    assert_eq!(c.send("shutdown\r\n"), "ERROR: shutdown not enabled\r\n");
    assert_eq!(c.send("set k 0 0 1\r\n1\r\n"), "STORED\r\n");
    assert_eq!(c.closed, None);
}

#[test]
fn stats_reports_the_required_fields() {
    let mut c = Conn::new();
    c.store.counters().connection_opened();
    c.send("set a 0 0 1\r\n1\r\nget a\r\nget b\r\n");
    c.clock.advance(7);
    let reply = c.send("stats\r\n");
    assert!(reply.ends_with("END\r\n"));
    for name in [
        "pid",
        "uptime",
        "time",
        "version",
        "curr_connections",
        "total_connections",
        "cmd_get",
        "cmd_set",
        "get_hits",
        "get_misses",
        "curr_items",
        "total_items",
        "bytes",
        "evictions",
        "limit_maxbytes",
    ] {
        assert!(
            reply.contains(&format!("\r\nSTAT {name} "))
                || reply.starts_with(&format!("STAT {name} ")),
            "{name}"
        );
    }
    for line in reply.split("\r\n").filter(|l| !l.is_empty()) {
        assert!(line == "END" || line.starts_with("STAT "), "{line}");
        assert!(line.len() < 80, "memcapable reads stats into small buffers");
    }
    assert!(reply.contains(&format!("STAT version {VERSION}\r\n")));
    assert_eq!(c.stat("uptime"), 7);
    assert_eq!(c.stat("time"), T0 + 7);
    assert_eq!(c.stat("cmd_get"), 2);
    assert_eq!(c.stat("cmd_set"), 1);
    assert_eq!(c.stat("get_hits"), 1);
    assert_eq!(c.stat("get_misses"), 1);
    assert_eq!(c.stat("curr_items"), 1);
    assert_eq!(c.stat("total_items"), 1);
    assert_eq!(c.stat("bytes"), item_size(1, 0, 1) as u64);
    assert_eq!(c.stat("curr_connections"), 1);
    assert_eq!(c.stat("total_connections"), 1);
    assert_eq!(c.stat("limit_maxbytes"), 64 * 1024 * 1024);
    assert!(c.stat("bytes_read") > 0);
    assert!(c.stat("bytes_written") > 0);
}

#[test]
fn stats_subcommands() {
    let mut c = Conn::new();
    assert_eq!(c.send("stats noreply\r\n"), "ERROR\r\n");
    assert_eq!(c.send("stats bogus\r\n"), "ERROR\r\n");
    let settings = c.send("stats settings\r\n");
    assert!(
        settings.contains("STAT maxbytes 67108864\r\n"),
        "{settings}"
    );
    assert!(
        settings.contains("STAT item_size_max 1048576\r\n"),
        "{settings}"
    );
    assert!(settings.ends_with("END\r\n"));
    c.send("set a 0 0 1\r\n1\r\nget a\r\n");
    assert_eq!(c.send("stats reset\r\n"), "RESET\r\n");
    assert_eq!(c.stat("cmd_get"), 0);
    assert_eq!(c.stat("total_items"), 0);
    assert_eq!(c.stat("curr_items"), 1, "a gauge, not a counter");
}
