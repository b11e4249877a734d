//! memcached 1.6's meta commands (`mg ms md ma mn me`) over loopback,
//! byte for byte as memcached 1.6 answers them. Every exchange ends with an
//! `mn`, whose `MN` proves nothing else (such as a reply `q` should hide)
//! was sent before it.

mod memcached_common;

use memcached_common::{ServerProcess, TextClient};
use std::time::Duration;

/// Sends `request` then `mn`, and asserts the reply is exactly `reply`
/// then `MN`.
fn check(c: &mut TextClient, request: &str, reply: &str) {
    let mut bytes = request.as_bytes().to_vec();
    bytes.extend_from_slice(b"mn\r\n");
    c.send(&bytes);
    let want = format!("{reply}MN\r\n");
    let got = c.read_exact(want.len());
    assert_eq!(String::from_utf8_lossy(&got), want, "request {request:?}");
}

/// The CAS unique of `key`, read with `mg <key> c`.
fn cas_of(c: &mut TextClient, key: &str) -> u64 {
    c.send(format!("mg {key} c\r\n").as_bytes());
    let line = c.line();
    let cas = line
        .strip_prefix("HD c")
        .and_then(|rest| rest.strip_suffix("\r\n"))
        .unwrap_or_else(|| panic!("mg {key} c: {line:?}"));
    cas.parse().expect("cas")
}

fn start() -> (ServerProcess, TextClient) {
    let server = ServerProcess::start(&[]);
    let client = TextClient::connect(server.addr);
    (server, client)
}

#[test]
fn meta_get_flags() {
    let (_server, mut c) = start();
    check(&mut c, "mg foo v\r\n", "EN\r\n");
    check(&mut c, "mg foo\r\n", "EN\r\n");
    check(&mut c, "mg foo v O123 k\r\n", "EN O123 kfoo\r\n");
    check(&mut c, "mg foo v q\r\nmg foo q k\r\n", "");
    check(&mut c, "ms foo 2 F7\r\nhi\r\n", "HD\r\n");
    check(&mut c, "mg foo v\r\n", "VA 2\r\nhi\r\n");
    check(&mut c, "mg foo\r\n", "HD\r\n");
    check(&mut c, "mg foo s f t v\r\n", "VA 2 s2 f7 t-1\r\nhi\r\n");
    check(&mut c, "mg foo k O99 v\r\n", "VA 2 kfoo O99\r\nhi\r\n");
    // h: read before? (l: this server keeps no access time, always l0.)
    check(&mut c, "mg foo h l\r\n", "HD h1 l0\r\n");
    check(&mut c, "ms fresh 1\r\nx\r\n", "HD\r\n");
    check(&mut c, "mg fresh h\r\n", "HD h0\r\n");
    check(&mut c, "mg fresh h\r\n", "HD h1\r\n");
    check(&mut c, "ms fresh 1\r\ny\r\n", "HD\r\n");
    check(&mut c, "mg fresh h v\r\n", "VA 1 h0\r\ny\r\n");
    check(&mut c, "mg foo q v\r\n", "VA 2\r\nhi\r\n");
    let cas = cas_of(&mut c, "foo");
    check(&mut c, "mg foo c v\r\n", &format!("VA 2 c{cas}\r\nhi\r\n"));
    // T touches; t then reports the new TTL (a second may pass).
    c.send(b"mg foo T100 t\r\n");
    let line = c.line();
    assert!(line == "HD t100\r\n" || line == "HD t99\r\n", "{line:?}");
    // The text protocol sees the same item.
    check(&mut c, "get foo\r\n", "VALUE foo 7 2\r\nhi\r\nEND\r\n");
}

#[test]
fn meta_get_errors() {
    let (_server, mut c) = start();
    check(&mut c, "mg\r\n", "ERROR\r\n");
    check(&mut c, "mg foo x\r\n", "CLIENT_ERROR invalid flag\r\n");
    check(&mut c, "mg foo v v\r\n", "CLIENT_ERROR duplicate flag\r\n");
    check(
        &mut c,
        "mg foo Tx\r\n",
        "CLIENT_ERROR bad token in command line format\r\n",
    );
    let long = "k".repeat(251);
    check(
        &mut c,
        &format!("mg {long} v\r\n"),
        "CLIENT_ERROR bad command line format\r\n",
    );
    let opaque = format!("O{}", "1".repeat(40));
    check(
        &mut c,
        &format!("mg foo {opaque}\r\n"),
        "CLIENT_ERROR opaque token too long\r\n",
    );
    check(
        &mut c,
        "mg Zm9v b v\r\n",
        "CLIENT_ERROR base64 keys are not supported\r\n",
    );
    let many = "a b c d e f g h i j k l m n o p q r".to_string();
    check(
        &mut c,
        &format!("mg foo {many}\r\n"),
        "CLIENT_ERROR options flags are too long\r\n",
    );
    // An unknown two-letter m-command is an ordinary unknown command.
    check(&mut c, "mz foo\r\n", "ERROR\r\n");
}

#[test]
fn meta_set_modes_and_flags() {
    let (_server, mut c) = start();
    check(&mut c, "ms k 3 T0 F5\r\nabc\r\n", "HD\r\n");
    check(&mut c, "mg k v f\r\n", "VA 3 f5\r\nabc\r\n");
    check(&mut c, "ms k 1 ME\r\nx\r\n", "NS\r\n");
    check(&mut c, "ms new 1 ME\r\nx\r\n", "HD\r\n");
    check(&mut c, "ms absent 1 MR\r\nx\r\n", "NS\r\n");
    check(&mut c, "ms k 2 MR\r\nyz\r\n", "HD\r\n");
    check(&mut c, "ms k 1 MA\r\n>\r\n", "HD\r\n");
    check(&mut c, "ms k 1 MP\r\n<\r\n", "HD\r\n");
    check(&mut c, "mg k v\r\n", "VA 4\r\n<yz>\r\n");
    check(&mut c, "ms absent 1 MA\r\nx\r\n", "NS\r\n");
    check(&mut c, "ms k 1 MS\r\ns\r\n", "HD\r\n");
    // CAS.
    let cas = cas_of(&mut c, "k");
    check(&mut c, &format!("ms k 1 C{}\r\nw\r\n", cas + 1), "EX\r\n");
    check(&mut c, "ms nothing 1 C1\r\nw\r\n", "NF\r\n");
    check(&mut c, &format!("ms k 1 C{cas}\r\nw\r\n"), "HD\r\n");
    check(&mut c, &format!("ms k 1 MA C{cas}\r\nw\r\n"), "EX\r\n");
    // Returned flags, in request order; c is the new item's CAS.
    c.send(b"ms k 1 O7 c k\r\nv\r\n");
    let line = c.line();
    let new_cas = cas_of(&mut c, "k");
    assert_eq!(line, format!("HD O7 c{new_cas} kk\r\n"));
    check(&mut c, "ms k 1 ME O8 k\r\nv\r\n", "NS O8 kk\r\n");
    // TTL.
    c.send(b"ms t 1 T60\r\nv\r\nmg t t\r\n");
    assert_eq!(c.line(), "HD\r\n");
    let line = c.line();
    assert!(line == "HD t60\r\n" || line == "HD t59\r\n", "{line:?}");
    // Quiet: HD is hidden, failures are not.
    check(&mut c, "ms q 1 q\r\nv\r\nms q 1 q ME\r\nv\r\n", "NS\r\n");
    // Zero-length value, and the text protocol sees ms items.
    check(&mut c, "ms empty 0\r\n\r\n", "HD\r\n");
    check(
        &mut c,
        "get empty k\r\n",
        "VALUE empty 0 0\r\n\r\nVALUE k 0 1\r\nv\r\nEND\r\n",
    );
}

#[test]
fn meta_set_errors() {
    let (_server, mut c) = start();
    // No data length: no data block is read, so "hi" is a command.
    check(
        &mut c,
        "ms foo\r\nhi\r\n",
        "CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    check(
        &mut c,
        "ms foo x\r\nhi\r\n",
        "CLIENT_ERROR bad command line format\r\nERROR\r\n",
    );
    check(&mut c, "ms\r\n", "ERROR\r\n");
    // A bad flag or mode: the data block is swallowed.
    check(
        &mut c,
        "ms foo 2 MX\r\nhi\r\n",
        "CLIENT_ERROR invalid mode for ms M token\r\n",
    );
    check(
        &mut c,
        "ms foo 2 zz\r\nhi\r\n",
        "CLIENT_ERROR invalid flag\r\n",
    );
    check(
        &mut c,
        "ms foo 2 MSS\r\nhi\r\n",
        "CLIENT_ERROR incorrect length for M token\r\n",
    );
    check(
        &mut c,
        "ms foo 2 Fx\r\nhi\r\n",
        "CLIENT_ERROR bad command line format\r\n",
    );
    // A wrong trailer.
    check(
        &mut c,
        "ms foo 2\r\nhiXX",
        "CLIENT_ERROR bad data chunk\r\n",
    );
    // Too large: refused, swallowed, and the old value is gone.
    check(&mut c, "ms big 1\r\nv\r\n", "HD\r\n");
    let big = "x".repeat(2 * 1024 * 1024);
    check(
        &mut c,
        &format!("ms big {}\r\n{big}\r\n", big.len()),
        "SERVER_ERROR object too large for cache\r\n",
    );
    check(&mut c, "mg big\r\n", "EN\r\n");
    check(&mut c, "mg foo\r\n", "EN\r\n");
}

#[test]
fn meta_delete() {
    let (_server, mut c) = start();
    check(&mut c, "md foo\r\n", "NF\r\n");
    check(&mut c, "md foo O1 k\r\n", "NF O1 kfoo\r\n");
    check(&mut c, "ms foo 1\r\nv\r\n", "HD\r\n");
    let cas = cas_of(&mut c, "foo");
    check(&mut c, &format!("md foo C{}\r\n", cas + 1), "EX\r\n");
    check(&mut c, &format!("md foo C{cas} k O2\r\n"), "HD kfoo O2\r\n");
    check(&mut c, "mg foo\r\n", "EN\r\n");
    check(&mut c, "ms foo 1\r\nv\r\nmd foo q\r\n", "HD\r\n");
    check(&mut c, "md foo q\r\n", "NF\r\n");
    check(
        &mut c,
        "md foo x\r\n",
        "CLIENT_ERROR invalid or duplicate flag\r\n",
    );
    check(&mut c, "md\r\n", "ERROR\r\n");
}

#[test]
fn meta_arithmetic() {
    let (_server, mut c) = start();
    check(&mut c, "ma n\r\n", "NF\r\n");
    check(&mut c, "ma n O5 k\r\n", "NF O5 kn\r\n");
    check(&mut c, "ma n N0 J10 v\r\n", "VA 2\r\n10\r\n");
    check(&mut c, "ma n\r\n", "HD\r\n");
    check(&mut c, "ma n v\r\n", "VA 2\r\n12\r\n");
    check(&mut c, "ma n D8 v t\r\n", "VA 2 t-1\r\n20\r\n");
    check(&mut c, "ma n MD D5 v\r\n", "VA 2\r\n15\r\n");
    check(&mut c, "ma n M- D20 v\r\n", "VA 1\r\n0\r\n");
    check(&mut c, "ma n M+ D3 v k O1\r\n", "VA 1 kn O1\r\n3\r\n");
    check(&mut c, "ma n q D1\r\n", "");
    // As in memcached, a value that got shorter in place is space-padded.
    check(&mut c, "get n\r\n", "VALUE n 0 2\r\n4 \r\nEND\r\n");
    let cas = cas_of(&mut c, "n");
    check(&mut c, &format!("ma n C{}\r\n", cas + 1), "EX\r\n");
    c.send(format!("ma n C{cas} c\r\n").as_bytes());
    let line = c.line();
    let new_cas = cas_of(&mut c, "n");
    assert_eq!(line, format!("HD c{new_cas}\r\n"));
    check(&mut c, "ma v2 N0 q\r\n", "HD\r\n");
    check(&mut c, "ms s 1\r\nx\r\n", "HD\r\n");
    check(
        &mut c,
        "ma s\r\n",
        "CLIENT_ERROR cannot increment or decrement non-numeric value\r\n",
    );
    check(
        &mut c,
        "ma n MX\r\n",
        "CLIENT_ERROR invalid mode for ma M token\r\n",
    );
    check(
        &mut c,
        "ma n Dx\r\n",
        "CLIENT_ERROR invalid or duplicate flag\r\n",
    );
}

#[test]
fn meta_noop_and_debug() {
    let (_server, mut c) = start();
    check(&mut c, "mn\r\n", "MN\r\n");
    check(&mut c, "me foo\r\n", "EN\r\n");
    check(&mut c, "me\r\n", "CLIENT_ERROR bad command line format\r\n");
    check(&mut c, "ms foo 2 F1\r\nhi\r\n", "HD\r\n");
    let cas = cas_of(&mut c, "foo");
    check(
        &mut c,
        "me foo\r\n",
        &format!("ME foo exp=-1 la=0 cas={cas} fetch=no cls=1 size=68\r\n"),
    );
}

#[test]
fn quiet_pipeline_ends_with_mn() {
    let (_server, mut c) = start();
    // A quiet batch: only the misses' absence, the failures and MN speak.
    let request = "ms a 1 q\r\n1\r\nms b 1 q\r\n2\r\nmg a v q k\r\nmg zz v q k\r\n\
                   mg b v q\r\nmd zz q\r\nmd a q\r\nmg a v q\r\n";
    check(&mut c, request, "VA 1 ka\r\n1\r\nVA 1\r\n2\r\nNF\r\n");
    // Non-quiet pipelined commands answer in order.
    let request = "ms x 3 T0\r\nabc\r\nmg x s v\r\nma c N0 J7 v\r\nmd x\r\nmg x\r\nmn\r\nget b\r\n";
    check(
        &mut c,
        request,
        "HD\r\nVA 3 s3\r\nabc\r\nVA 1\r\n7\r\nHD\r\nEN\r\nMN\r\nVALUE b 0 1\r\n2\r\nEND\r\n",
    );
}

#[test]
fn meta_set_in_pieces() {
    let (_server, mut c) = start();
    let pieces: [&[u8]; 6] = [
        b"ms sp",
        b"lit 10 F3 ",
        b"k\r\n01234",
        b"567",
        b"89\r",
        b"\nmg split v f\r\n",
    ];
    for piece in pieces {
        c.send(piece);
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(c.line(), "HD ksplit\r\n");
    assert_eq!(c.line(), "VA 10 f3\r\n");
    assert_eq!(c.read_exact(12), b"0123456789\r\n");
    check(&mut c, "", "");
}

/// `cmd_meta` counts what memcached 1.6.18 counts: `me` commands whose key
/// passed its checks, hit or miss; the other meta commands count under
/// `cmd_get`, `cmd_set`, ... (the same script against memcached 1.6.18
/// gives `cmd_meta 2`).
#[test]
fn cmd_meta_counts_me_as_memcached_does() {
    let (_server, mut c) = start();
    check(&mut c, "ms a 1\r\nx\r\n", "HD\r\n");
    check(&mut c, "mg a v\r\n", "VA 1\r\nx\r\n");
    check(&mut c, "md b\r\n", "NF\r\n");
    check(&mut c, "mn\r\n", "MN\r\n");
    c.send(b"me a\r\n");
    assert!(c.line().starts_with("ME a exp=-1 "));
    check(&mut c, "me nokey\r\n", "EN\r\n");
    let long = format!("me {}\r\n", "k".repeat(300));
    check(&mut c, &long, "CLIENT_ERROR bad command line format\r\n");
    assert_eq!(c.stat("cmd_meta"), "2");
    assert_eq!(c.stat("cmd_get"), "1");
    assert_eq!(c.stat("cmd_set"), "1");
}

/// Leases (memcached's anti-dogpiling): `N` vivifies a miss and gives `W`
/// to exactly one client, later readers see `Z` until a fresh value is
/// stored; `md I` marks stale (`X`, and `W` for the next reader); `ms I`
/// with an older CAS stores but stays stale; `R` wins a recache once. The
/// replies are memcached 1.6.18's for the same script (its `t` values
/// differ only by its coarser clock, so `t` is left out here).
#[test]
fn leases_win_once_and_mark_stale() {
    let (_server, mut c) = start();
    // Vivify on miss: one winner, then Z; a wrong CAS is EX, the vivified
    // item's CAS stores and clears the lease.
    check(&mut c, "mg needwin s c v N30\r\n", "VA 0 s0 c1 W\r\n\r\n");
    check(&mut c, "mg needwin s c v N30\r\n", "VA 0 s0 c1 Z\r\n\r\n");
    check(&mut c, "ms needwin 2 C99 T120\r\nnu\r\n", "EX\r\n");
    check(&mut c, "ms needwin 2 C1 T120\r\nmu\r\n", "HD\r\n");
    check(&mut c, "mg needwin s c v N30\r\n", "VA 2 s2 c2\r\nmu\r\n");
    // Quiet mode does not hide a vivified reply (it is not a miss).
    check(&mut c, "mg quietautov s N30 q\r\n", "HD s0 W\r\n");
    check(&mut c, "mg quietmiss s v q\r\n", "");

    // Invalidate: stale, with a new CAS; the next reader wins.
    check(&mut c, "ms toinv 3 T100\r\nmoo\r\n", "HD\r\n");
    check(&mut c, "md toinv I T30\r\n", "HD\r\n");
    check(&mut c, "mg toinv s c v\r\n", "VA 3 s3 c5 X W\r\nmoo\r\n");
    check(&mut c, "mg toinv s c v\r\n", "VA 3 s3 c5 Z X\r\nmoo\r\n");
    // An older CAS with I stores, still stale and still leased.
    check(&mut c, "ms toinv 3 C4 I\r\nnew\r\n", "HD\r\n");
    check(&mut c, "mg toinv s c v\r\n", "VA 3 s3 c6 Z X\r\nnew\r\n");
    check(&mut c, "ms toinv 3 C7\r\nfin\r\n", "EX\r\n");
    check(&mut c, "ms toinv 3 C6\r\nfin\r\n", "HD\r\n");
    check(&mut c, "mg toinv s c v\r\n", "VA 3 s3 c7\r\nfin\r\n");

    // Recache: the first reader of an item expiring within R wins.
    check(&mut c, "ms rc 2 T10\r\nzz\r\n", "HD\r\n");
    check(&mut c, "mg rc s R30 v\r\n", "VA 2 s2 W\r\nzz\r\n");
    check(&mut c, "mg rc s R30 v\r\n", "VA 2 s2 Z\r\nzz\r\n");
    check(&mut c, "mg rc s R5 v\r\n", "VA 2 s2 Z\r\nzz\r\n");

    // md I: NF on a miss, EX on a CAS mismatch, quiet hides HD.
    check(&mut c, "md nothere I\r\n", "NF\r\n");
    check(&mut c, "md rc I C1\r\n", "EX\r\n");
    check(&mut c, "md rc q I\r\n", "");
    check(&mut c, "mg rc v\r\n", "VA 2 X W\r\nzz\r\n");
}

/// Of many clients on several loops that miss the same key at once with
/// `N`, exactly one wins.
#[test]
fn one_winner_among_concurrent_vivifying_clients() {
    let server = ServerProcess::start(&["-t", "4"]);
    for round in 0..5 {
        let key = format!("dogpile{round}");
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let clients: Vec<_> = (0..8)
            .map(|_| {
                let (addr, key, barrier) = (server.addr, key.clone(), barrier.clone());
                std::thread::spawn(move || {
                    let mut c = TextClient::connect(addr);
                    barrier.wait();
                    c.send(format!("mg {key} N30\r\n").as_bytes());
                    c.line()
                })
            })
            .collect();
        let replies: Vec<String> = clients.into_iter().map(|t| t.join().unwrap()).collect();
        let winners = replies.iter().filter(|r| *r == "HD W\r\n").count();
        let others = replies.iter().filter(|r| *r == "HD Z\r\n").count();
        assert_eq!((winners, others), (1, 7), "{replies:?}");
    }
}
