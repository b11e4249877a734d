//! Tests for the ASCII protocol session, driven the way a network layer
//! drives it: bytes in, replies out, unconsumed bytes kept for next time.

use std::sync::Arc;

use super::*;
use crate::memcached::clock::ManualClock;
use crate::memcached::config::{DEFAULT_ITEM_SIZE_MAX, DEFAULT_MAX_LINE};

const T0: u64 = 1_700_000_000;

/// A store, a session, and the input buffer a network layer would keep.
struct Conn {
    store: Store,
    clock: Arc<ManualClock>,
    session: Session,
    pending: Vec<u8>,
    closed: Option<CloseReason>,
}

impl Conn {
    fn new() -> Self {
        Conn::with_config(Config::default())
    }

    fn with_config(config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        Conn {
            store: Store::new(&config, clock.clone()),
            clock,
            session: Session::new(),
            pending: Vec::new(),
            closed: None,
        }
    }

    /// A second connection to the same store.
    fn session(&self) -> Session {
        Session::new()
    }

    /// Delivers `input` in one read and returns everything written back.
    fn send_bytes(&mut self, input: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(input);
        let mut written = Vec::new();
        let mut out = Vec::new();
        loop {
            let (used, progress) = self.session.process(&self.store, &self.pending, &mut out);
            assert!(used <= self.pending.len());
            self.pending.drain(..used);
            match progress {
                Progress::Continue => break,
                Progress::OutputFull => written.append(&mut out),
                Progress::Close(reason) => {
                    self.closed = Some(reason);
                    break;
                }
            }
        }
        written.append(&mut out);
        written
    }

    fn send(&mut self, input: &str) -> String {
        String::from_utf8(self.send_bytes(input.as_bytes())).expect("replies are ASCII here")
    }

    /// `gets key` parsed into (value, cas).
    fn gets(&mut self, key: &str) -> Option<(String, u64)> {
        let reply = self.send(&format!("gets {key}\r\n"));
        let mut lines = reply.split("\r\n");
        let header = lines.next()?;
        if header == "END" {
            return None;
        }
        let cas = header.rsplit(' ').next()?.parse().ok()?;
        Some((lines.next()?.to_string(), cas))
    }

    fn stat(&mut self, name: &str) -> u64 {
        let reply = self.send("stats\r\n");
        let prefix = format!("STAT {name} ");
        reply
            .split("\r\n")
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no stat {name} in {reply}"))
            .parse()
            .expect("numeric stat")
    }
}

/// Feeds `script` to a fresh connection in pieces of the given sizes
/// (cycled), as a network layer with small reads would, and returns the
/// output and whether the session asked to close.
fn run_chunked(config: &Config, script: &[u8], sizes: &[usize]) -> (Vec<u8>, Option<CloseReason>) {
    let store = Store::new(config, Arc::new(ManualClock::new(T0)));
    let mut session = Session::new();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut written = Vec::new();
    let mut offset = 0;
    let mut next_size = sizes.iter().cycle();
    while offset < script.len() {
        let n = (*next_size.next().expect("cycle")).clamp(1, script.len() - offset);
        buffer.extend_from_slice(&script[offset..offset + n]);
        offset += n;
        loop {
            let (used, progress) = session.process(&store, &buffer, &mut out);
            buffer.drain(..used);
            match progress {
                Progress::Continue => break,
                Progress::OutputFull => written.append(&mut out),
                Progress::Close(reason) => {
                    written.append(&mut out);
                    return (written, Some(reason));
                }
            }
        }
    }
    written.append(&mut out);
    (written, None)
}

// ---- storage and retrieval ---------------------------------------------

#[test]
fn set_then_get() {
    let mut c = Conn::new();
    assert_eq!(c.send("set foo 5 0 6\r\nfooval\r\n"), "STORED\r\n");
    assert_eq!(c.send("get foo\r\n"), "VALUE foo 5 6\r\nfooval\r\nEND\r\n");
    assert_eq!(c.send("get nope\r\n"), "END\r\n");
}

#[test]
fn newline_without_carriage_return_is_accepted() {
    let mut c = Conn::new();
    assert_eq!(
        c.send("set k 0 0 1\n1\r\nget k\n"),
        "STORED\r\nVALUE k 0 1\r\n1\r\nEND\r\n"
    );
}

#[test]
fn empty_and_binary_values() {
    let mut c = Conn::new();
    assert_eq!(c.send("set e 0 0 0\r\n\r\n"), "STORED\r\n");
    assert_eq!(c.send("get e\r\n"), "VALUE e 0 0\r\n\r\nEND\r\n");
    let mut input = b"set b 0 0 4\r\n".to_vec();
    input.extend_from_slice(b"\r\n\0\xff\r\n");
    assert_eq!(c.send_bytes(&input), b"STORED\r\n");
    assert_eq!(
        c.send_bytes(b"get b\r\n"),
        b"VALUE b 0 4\r\n\r\n\0\xff\r\nEND\r\n"
    );
}

#[test]
fn flags_are_32_bit() {
    let mut c = Conn::new();
    assert_eq!(c.send("set f 4294967295 0 1\r\nx\r\n"), "STORED\r\n");
    assert_eq!(c.send("get f\r\n"), "VALUE f 4294967295 1\r\nx\r\nEND\r\n");
    assert_eq!(
        c.send("set f -1 0 1\r\n"),
        "CLIENT_ERROR bad command line format\r\n"
    );
}

#[test]
fn multi_get_returns_hits_in_order() {
    let mut c = Conn::new();
    c.send("set a 0 0 1\r\n1\r\nset c 0 0 1\r\n3\r\n");
    assert_eq!(
        c.send("get a b c a\r\n"),
        "VALUE a 0 1\r\n1\r\nVALUE c 0 1\r\n3\r\nVALUE a 0 1\r\n1\r\nEND\r\n"
    );
}

#[test]
fn gets_reports_a_cas_unique_that_changes() {
    let mut c = Conn::new();
    c.send("set a 0 0 1\r\n1\r\nset b 0 0 1\r\n2\r\n");
    let reply = c.send("gets a b\r\n");
    let lines: Vec<&str> = reply.split("\r\n").collect();
    assert!(lines[0].starts_with("VALUE a 0 1 "), "{reply}");
    assert!(lines[2].starts_with("VALUE b 0 1 "), "{reply}");
    assert_eq!(lines[4], "END");
    let (_, first) = c.gets("a").expect("a");
    c.send("set a 0 0 1\r\n9\r\n");
    let (value, second) = c.gets("a").expect("a");
    assert_eq!(value, "9");
    assert_ne!(first, second);
}

#[test]
fn get_without_keys_is_an_error() {
    let mut c = Conn::new();
    assert_eq!(c.send("get\r\n"), "ERROR\r\n");
    assert_eq!(c.send("gets\r\n"), "ERROR\r\n");
    assert_eq!(c.send("get   \r\n"), "ERROR\r\n");
    assert_eq!(c.send("gat\r\n"), "ERROR\r\n");
}

#[test]
fn add_replace_append_prepend() {
    let mut c = Conn::new();
    assert_eq!(c.send("replace k 0 0 1\r\nr\r\n"), "NOT_STORED\r\n");
    assert_eq!(c.send("append k 0 0 1\r\na\r\n"), "NOT_STORED\r\n");
    assert_eq!(c.send("prepend k 0 0 1\r\np\r\n"), "NOT_STORED\r\n");
    assert_eq!(c.send("add k 7 0 5\r\nvalue\r\n"), "STORED\r\n");
    assert_eq!(c.send("add k 0 0 5\r\nother\r\n"), "NOT_STORED\r\n");
    assert_eq!(c.send("append k 0 0 6\r\n world\r\n"), "STORED\r\n");
    assert_eq!(c.send("prepend k 0 0 2\r\n> \r\n"), "STORED\r\n");
    assert_eq!(
        c.send("get k\r\n"),
        "VALUE k 7 13\r\n> value world\r\nEND\r\n"
    );
    assert_eq!(c.send("replace k 1 0 3\r\nnew\r\n"), "STORED\r\n");
    assert_eq!(c.send("get k\r\n"), "VALUE k 1 3\r\nnew\r\nEND\r\n");
}

#[test]
fn cas_semantics() {
    let mut c = Conn::new();
    assert_eq!(c.send("cas k 0 0 1 1\r\nx\r\n"), "NOT_FOUND\r\n");
    c.send("set k 0 0 6\r\nbarval\r\n");
    assert_eq!(c.send("cas k 0 0 6 123456789\r\nbarva2\r\n"), "EXISTS\r\n");
    let (_, unique) = c.gets("k").expect("k");
    assert_eq!(
        c.send(&format!("cas k 0 0 6 {unique}\r\nbarva2\r\n")),
        "STORED\r\n"
    );
    assert_eq!(
        c.send(&format!("cas k 0 0 6 {unique}\r\nbarva3\r\n")),
        "EXISTS\r\n"
    );
    assert_eq!(c.send("get k\r\n"), "VALUE k 0 6\r\nbarva2\r\nEND\r\n");
    c.send("delete k\r\n");
    assert_eq!(
        c.send(&format!("cas k 0 0 6 {unique}\r\nbarva2\r\n")),
        "NOT_FOUND\r\n"
    );
    assert_eq!(c.stat("cas_misses"), 2);
    assert_eq!(c.stat("cas_hits"), 1);
    assert_eq!(c.stat("cas_badval"), 2);
}

#[test]
fn cas_race_between_two_connections() {
    let mut c = Conn::new();
    c.send("set k 0 0 1\r\n0\r\n");
    let (_, unique) = c.gets("k").expect("k");
    let mut other = c.session();
    let mut out = Vec::new();
    let line = format!("cas k 0 0 1 {unique}\r\n1\r\n");
    other.process(&c.store, line.as_bytes(), &mut out);
    assert_eq!(out, b"STORED\r\n");
    assert_eq!(
        c.send(&format!("cas k 0 0 1 {unique}\r\n2\r\n")),
        "EXISTS\r\n"
    );
}

#[test]
fn cas_without_unique_is_an_error_and_its_data_is_a_command() {
    // memcached's t/cas.t: both the line and the data line get ERROR.
    let mut c = Conn::new();
    assert_eq!(c.send("cas foo 0 0 6 \r\nbarva2\r\n"), "ERROR\r\nERROR\r\n");
}

// ---- noreply ------------------------------------------------------------

#[test]
fn noreply_silences_every_command_that_takes_it() {
    let mut c = Conn::new();
    let quiet = [
        "flush_all noreply\r\n",
        "flush_all 0 noreply\r\n",
        "verbosity 0 noreply\r\n",
        "add n 0 0 1 noreply\r\n1\r\n",
        "set n 0 0 1 noreply\r\n2\r\n",
        "replace n 0 0 1 noreply\r\n3\r\n",
        "append n 0 0 1 noreply\r\n4\r\n",
        "prepend n 0 0 1 noreply\r\n5\r\n",
        "touch n 100 noreply\r\n",
        "incr n 3 noreply\r\n",
        "decr n 2 noreply\r\n",
    ];
    for line in quiet {
        assert_eq!(c.send(line), "", "{line:?}");
    }
    assert_eq!(c.send("get n\r\n"), "VALUE n 0 3\r\n535\r\nEND\r\n");
    let (_, unique) = c.gets("n").expect("n");
    assert_eq!(
        c.send(&format!("cas n 0 0 1 {unique} noreply\r\n6\r\n")),
        ""
    );
    assert_eq!(c.send("get n\r\n"), "VALUE n 0 1\r\n6\r\nEND\r\n");
    assert_eq!(c.send("delete n noreply\r\n"), "");
    assert_eq!(c.send("delete n 0 noreply\r\n"), "");
    assert_eq!(c.send("get n\r\n"), "END\r\n");
}

#[test]
fn noreply_also_silences_failures_like_memcached() {
    let mut c = Conn::new();
    for line in [
        "add n 0 0 1 noreply\r\n1\r\n",
        "add n 0 0 1 noreply\r\n1\r\n",
        "replace missing 0 0 1 noreply\r\n1\r\n",
        "incr missing 1 noreply\r\n",
        "incr n x noreply\r\n",
        "delete missing noreply\r\n",
        "touch missing 1 noreply\r\n",
    ] {
        assert_eq!(c.send(line), "", "{line:?}");
    }
    // The bad chunk ("x" then "yz" where "\r\n" belongs) is silenced, but
    // the real "\r\n" after it is an empty command of its own.
    assert_eq!(c.send("set n 0 0 1 noreply\r\nxyz\r\n"), "ERROR\r\n");
}

#[test]
fn a_word_other_than_noreply_in_its_place_is_ignored() {
    let mut c = Conn::new();
    assert_eq!(c.send("set k 0 0 1 whatever\r\n1\r\n"), "STORED\r\n");
}

// ---- incr / decr -----------------------------------------------------------

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

// ---- flush_all ------------------------------------------------------------------

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

// ---- malformed input -------------------------------------------------------------

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

// ---- chunking -----------------------------------------------------------------------------

/// A script touching every command and error path, including a swallowed
/// value and a bad chunk, ending in quit.
fn conformance_script() -> Vec<u8> {
    let mut s = String::new();
    s.push_str("set a 1 0 5\r\nhello\r\n");
    s.push_str("add a 0 0 1\r\nx\r\nadd b 0 0 1 noreply\r\ny\r\n");
    s.push_str("append a 0 0 6\r\n world\r\nprepend a 0 0 1\r\n>\r\n");
    s.push_str("get a b c\r\ngets a\r\ngat 100 a\r\ngats 100 b\r\n");
    s.push_str("replace c 0 0 1\r\nz\r\ncas a 0 0 1 999\r\nq\r\ncas zz 0 0 1 1\r\nq\r\n");
    s.push_str("set n 0 0 2\r\n10\r\nincr n 5\r\ndecr n 100\r\nincr a 1\r\nincr n -1\r\n");
    s.push_str("touch a 10\r\ntouch zz 10\r\ndelete b\r\ndelete b\r\ndelete a 5\r\n");
    s.push_str(&format!("set big 0 0 {}\r\n", 2 * 1024 * 1024));
    s.push_str(&"B".repeat(2 * 1024 * 1024));
    s.push_str("\r\nset bad 0 0 2\r\nabc\r\n");
    s.push_str("bogus command\r\n\r\nget\r\nverbosity 1\r\nversion\r\n");
    s.push_str(&format!("get {}\r\n", "k".repeat(300)));
    s.push_str("flush_all\r\nget a\r\nflush_all 0 noreply\r\nstats reset\r\n");
    s.push_str("quit\r\nget a\r\n");
    s.into_bytes()
}

#[test]
fn byte_at_a_time_gives_the_same_output() {
    let config = Config::default();
    let script = conformance_script();
    let (whole, closed) = run_chunked(&config, &script, &[usize::MAX]);
    assert_eq!(closed, Some(CloseReason::Quit));
    let text = String::from_utf8_lossy(&whole);
    assert!(
        text.contains("SERVER_ERROR object too large for cache\r\n"),
        "{text}"
    );
    assert!(text.contains("CLIENT_ERROR bad data chunk\r\n"), "{text}");
    assert!(text.ends_with("RESET\r\n"), "{text}");

    // One byte at a time is slow over a 2 MiB value; use a smaller script
    // for that and cover the big one with odd chunk sizes.
    let (chunked, closed) = run_chunked(&config, &script, &[1, 2, 3, 5, 7, 11, 4093, 65536]);
    assert_eq!(closed, Some(CloseReason::Quit));
    assert_eq!(String::from_utf8_lossy(&chunked), text);

    let small: Vec<u8> = String::from_utf8_lossy(&script)
        .replace(&"B".repeat(2 * 1024 * 1024), &"B".repeat(4000))
        .replace(&format!("{}\r\n", 2 * 1024 * 1024), "4000\r\n")
        .into_bytes();
    let (whole, _) = run_chunked(&config, &small, &[usize::MAX]);
    let (bytes, closed) = run_chunked(&config, &small, &[1]);
    assert_eq!(closed, Some(CloseReason::Quit));
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&whole)
    );
}

#[test]
fn a_partial_command_is_left_unconsumed() {
    let c = Conn::new();
    let mut session = Session::new();
    let mut out = Vec::new();
    let (used, progress) = session.process(&c.store, b"get k", &mut out);
    assert_eq!((used, progress), (0, Progress::Continue));
    let (used, _) = session.process(&c.store, b"get k\r", &mut out);
    assert_eq!(used, 0);
    let (used, _) = session.process(&c.store, b"get k\r\n", &mut out);
    assert_eq!(used, 7);
    assert_eq!(out, b"END\r\n");
    // A data block is consumed as it comes.
    out.clear();
    let (used, _) = session.process(&c.store, b"set k 0 0 10\r\n01234", &mut out);
    assert_eq!(used, 19);
    let (used, _) = session.process(&c.store, b"56789\r", &mut out);
    assert_eq!((used, out.len()), (6, 0));
    let (used, _) = session.process(&c.store, b"\n", &mut out);
    assert_eq!((used, out.as_slice()), (1, &b"STORED\r\n"[..]));
}
