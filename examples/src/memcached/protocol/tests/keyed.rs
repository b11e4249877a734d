//! Commands on one existing item (`incr`/`decr`, `delete`, `touch`, `gat`/`gats`) and expiry times.

use super::*;

#[test]
fn incr_decr_follow_memcached() {
    // memcached's t/incrdecr.t, with 1.6's non-numeric error.
    let mut c = Conn::new();
    c.send("set num 0 0 1\r\n1\r\n");
    assert_eq!(c.send("incr num 1\r\n"), "2\r\n");
    assert_eq!(c.send("incr num 8\r\n"), "10\r\n");
    assert_eq!(c.send("get num\r\n"), "VALUE num 0 2\r\n10\r\nEND\r\n");
    assert_eq!(c.send("decr num 1\r\n"), "9\r\n");
    // Shrunk in place, padded with a space, as memcached does.
    assert_eq!(c.send("get num\r\n"), "VALUE num 0 2\r\n9 \r\nEND\r\n");
    assert_eq!(c.send("decr num 9\r\n"), "0\r\n");
    assert_eq!(c.send("decr num 5\r\n"), "0\r\n");
    c.send("set num 0 0 10\r\n4294967296\r\n");
    assert_eq!(c.send("incr num 1\r\n"), "4294967297\r\n");
    c.send("set num 0 0 20\r\n18446744073709551615\r\n");
    assert_eq!(c.send("incr num 1\r\n"), "0\r\n");
    assert_eq!(c.send("decr bogus 5\r\n"), "NOT_FOUND\r\n");
    assert_eq!(c.send("incr bogus 5\r\n"), "NOT_FOUND\r\n");
    c.send("set text 0 0 2\r\nhi\r\n");
    assert_eq!(
        c.send("incr text 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
    c.send("set empty 0 0 0\r\n\r\n");
    assert_eq!(
        c.send("decr empty 1\r\n"),
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n"
    );
}

#[test]
fn incr_keeps_flags_and_expiry_when_it_grows() {
    let mut c = Conn::new();
    c.send("set n 42 100 1\r\n9\r\n");
    assert_eq!(c.send("incr n 1\r\n"), "10\r\n");
    assert_eq!(c.send("get n\r\n"), "VALUE n 42 2\r\n10\r\nEND\r\n");
    c.clock.advance(100);
    assert_eq!(c.send("get n\r\n"), "END\r\n");
}

#[test]
fn incr_delta_must_be_an_unsigned_64_bit_number() {
    let mut c = Conn::new();
    c.send("set n 0 0 1\r\n0\r\n");
    for delta in ["-1", "abc", "18446744073709551616", "1x"] {
        assert_eq!(
            c.send(&format!("incr n {delta}\r\n")),
            "CLIENT_ERROR invalid numeric delta argument\r\n",
            "{delta}"
        );
    }
    assert_eq!(
        c.send("incr n 18446744073709551615\r\n"),
        "18446744073709551615\r\n"
    );
    assert_eq!(c.send("incr n\r\n"), "ERROR\r\n");
    assert_eq!(c.send("incr n 1 noreply extra\r\n"), "ERROR\r\n");
}

#[test]
fn incr_decr_hit_and_miss_counters() {
    let mut c = Conn::new();
    c.send("set n 0 0 1\r\n5\r\nincr n 1\r\ndecr n 1\r\nincr x 1\r\ndecr x 1\r\ndecr x 1\r\n");
    assert_eq!(c.stat("incr_hits"), 1);
    assert_eq!(c.stat("decr_hits"), 1);
    assert_eq!(c.stat("incr_misses"), 1);
    assert_eq!(c.stat("decr_misses"), 2);
}

// ---- delete -----------------------------------------------------------------

#[test]
fn delete_forms() {
    let mut c = Conn::new();
    c.send("set k 0 0 1\r\n1\r\n");
    assert_eq!(c.send("delete\r\n"), "ERROR\r\n");
    assert_eq!(c.send("delete a b c d e\r\n"), "ERROR\r\n");
    assert_eq!(
        c.send("delete k 10\r\n"),
        "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]\r\n"
    );
    assert_eq!(
        c.send("delete k 1 noreply\r\n"),
        "",
        "memcached silences this usage error too"
    );
    assert_eq!(c.send("delete k 0\r\n"), "DELETED\r\n");
    assert_eq!(c.send("delete k\r\n"), "NOT_FOUND\r\n");
    assert_eq!(c.stat("delete_hits"), 1);
    assert_eq!(c.stat("delete_misses"), 1);
}

// ---- touch, gat, gats ---------------------------------------------------------

#[test]
fn touch_extends_life() {
    let mut c = Conn::new();
    assert_eq!(c.send("touch k 10\r\n"), "NOT_FOUND\r\n");
    c.send("set k 0 2 1\r\nv\r\n");
    assert_eq!(c.send("touch k 10\r\n"), "TOUCHED\r\n");
    c.clock.advance(5);
    assert_eq!(c.send("get k\r\n"), "VALUE k 0 1\r\nv\r\nEND\r\n");
    c.clock.advance(5);
    assert_eq!(c.send("get k\r\n"), "END\r\n");
    assert_eq!(
        c.send("touch k x\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(c.send("touch k\r\n"), "ERROR\r\n");
    assert_eq!(c.stat("touch_hits"), 1);
    assert_eq!(c.stat("touch_misses"), 1);
    assert_eq!(c.stat("cmd_touch"), 2);
}

#[test]
fn gat_and_gats_take_exptime_then_keys() {
    // memcached's t/getandtouch.t.
    let mut c = Conn::new();
    assert_eq!(c.send("gat 10 foo1\r\n"), "END\r\n");
    c.send("set foo1 0 2 7\r\nfooval1\r\nset foo2 0 2 7\r\nfooval2\r\n");
    let reply = c.send("gats 10 foo1 foo2\r\n");
    let lines: Vec<&str> = reply.split("\r\n").collect();
    assert!(lines[0].starts_with("VALUE foo1 0 7 "), "{reply}");
    assert_eq!(lines[1], "fooval1");
    assert!(lines[2].starts_with("VALUE foo2 0 7 "), "{reply}");
    assert_eq!(lines[3], "fooval2");
    assert_eq!(lines[4], "END");
    assert_eq!(
        c.send("gat 10 foo1 foo2\r\n"),
        "VALUE foo1 0 7\r\nfooval1\r\nVALUE foo2 0 7\r\nfooval2\r\nEND\r\n"
    );
    c.clock.advance(3);
    assert_eq!(
        c.send("get foo1\r\n"),
        "VALUE foo1 0 7\r\nfooval1\r\nEND\r\n"
    );
    assert_eq!(
        c.send("gat foo1\r\n"),
        "CLIENT_ERROR invalid exptime argument\r\n"
    );
    assert_eq!(
        c.send("gat 10\r\n"),
        "END\r\n",
        "memcached answers END with no keys"
    );
    assert_eq!(
        c.send("gat -1 foo2\r\n"),
        "VALUE foo2 0 7\r\nfooval2\r\nEND\r\n"
    );
    assert_eq!(
        c.send("get foo2\r\n"),
        "END\r\n",
        "the negative exptime took effect"
    );
}

// ---- expiry ------------------------------------------------------------------

#[test]
fn relative_absolute_and_negative_exptime() {
    let mut c = Conn::new();
    let absolute = T0 + 20;
    c.send("set rel 0 10 1\r\nr\r\n");
    c.send(&format!("set abs 0 {absolute} 1\r\na\r\n"));
    assert_eq!(c.send("set neg 0 -1 1\r\nn\r\n"), "STORED\r\n");
    assert_eq!(c.send("get neg\r\n"), "END\r\n");
    c.clock.advance(9);
    assert_eq!(
        c.send("get rel abs\r\n"),
        "VALUE rel 0 1\r\nr\r\nVALUE abs 0 1\r\na\r\nEND\r\n"
    );
    c.clock.advance(1);
    assert_eq!(c.send("get rel abs\r\n"), "VALUE abs 0 1\r\na\r\nEND\r\n");
    c.clock.advance(10);
    assert_eq!(c.send("get rel abs\r\n"), "END\r\n");
}

#[test]
fn thirty_days_boundary() {
    let mut c = Conn::new();
    c.send("set rel 0 2592000 1\r\nr\r\n");
    c.send("set abs 0 2592001 1\r\na\r\n");
    assert_eq!(c.send("get rel abs\r\n"), "VALUE rel 0 1\r\nr\r\nEND\r\n");
    c.clock.advance(2_592_000 - 1);
    assert_eq!(c.send("get rel\r\n"), "VALUE rel 0 1\r\nr\r\nEND\r\n");
    c.clock.advance(1);
    assert_eq!(c.send("get rel\r\n"), "END\r\n");
}

#[test]
fn negative_exptime_replaces_and_hides_the_old_value() {
    let mut c = Conn::new();
    c.send("set k 0 0 1\r\n1\r\n");
    assert_eq!(c.send("set k 0 -1 1\r\n2\r\n"), "STORED\r\n");
    assert_eq!(c.send("get k\r\n"), "END\r\n");
    assert_eq!(c.send("add k 0 0 1\r\n3\r\n"), "STORED\r\n");
}
