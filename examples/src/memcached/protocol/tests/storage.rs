//! Storage and retrieval commands (`set`/`add`/`replace`/`append`/`prepend`/`cas`, `get`/`gets`) and `noreply`.

use super::*;

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
