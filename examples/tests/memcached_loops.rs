//! The memcached server's loop group, in process: with `threads: 3` every
//! loop accepts connections (its own per-loop numbers say so), data set
//! through a connection on one loop is read through connections on the
//! others, `stats` adds up over loops, and shutdown stops and joins them.

mod memcached_common;

use examples::memcached::server::{Server, ServerConfig};
use memcached_common::TextClient;
use std::time::{Duration, Instant};

const LOOPS: usize = 3;

/// Open connections per loop, as the loops count them.
fn open_per_loop(server: &Server) -> Vec<usize> {
    server.loops().iter().map(|l| l.open()).collect()
}

/// Waits until the loops together hold `total` connections; returns the
/// per-loop counts then.
fn wait_for_total(server: &Server, total: usize) -> Vec<usize> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open = open_per_loop(server);
        if open.iter().sum::<usize>() == total {
            return open;
        }
        assert!(
            Instant::now() < deadline,
            "loops hold {open:?}, expected {total} in all"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn every_loop_serves_and_all_share_the_store() {
    let server = Server::start(ServerConfig {
        listen: vec!["127.0.0.1:0".parse().unwrap()],
        threads: LOOPS,
        ..ServerConfig::default()
    })
    .expect("start");
    assert_eq!(server.loops().len(), LOOPS);
    let addr = server.local_addrs()[0];

    // Connect one at a time and see which loop's count goes up, until every
    // loop holds a connection (SO_REUSEPORT hashes the peer port, so a few
    // dozen connections reach all three; 300 is far beyond bad luck).
    let mut by_loop: Vec<Vec<TextClient>> = (0..LOOPS).map(|_| Vec::new()).collect();
    let mut before = vec![0; LOOPS];
    let mut total = 0;
    while by_loop.iter().any(Vec::is_empty) {
        assert!(total < 300, "some loop never got a connection: {before:?}");
        let client = TextClient::connect(addr);
        total += 1;
        let after = wait_for_total(&server, total);
        let landed = (0..LOOPS)
            .find(|&i| after[i] == before[i] + 1)
            .expect("one loop gained the connection");
        by_loop[landed].push(client);
        before = after;
    }
    for (i, stats) in server.loops().iter().enumerate() {
        assert_eq!(stats.open(), by_loop[i].len(), "loop {i}");
        assert_eq!(stats.accepted(), by_loop[i].len() as u64, "loop {i}");
    }
    assert_eq!(server.open_connections(), total);

    // Written on loop w, read on every other loop.
    for w in 0..LOOPS {
        let key = format!("from-loop-{w}");
        by_loop[w][0].set(&key, key.as_bytes());
        for (r, clients) in by_loop.iter_mut().enumerate() {
            let got = clients[0].get(&key);
            assert_eq!(got.as_deref(), Some(key.as_bytes()), "loop {w} -> loop {r}");
        }
    }
    // An incr on one loop is seen by the next.
    by_loop[0][0].set("n", b"10");
    for (i, clients) in by_loop.iter_mut().enumerate() {
        clients[0].send(b"incr n 1\r\n");
        assert_eq!(clients[0].line(), format!("{}\r\n", 11 + i), "loop {i}");
    }

    // `stats` on any loop reports the whole server.
    for clients in &mut by_loop {
        assert_eq!(clients[0].stat("threads"), LOOPS.to_string());
        assert_eq!(clients[0].stat("curr_connections"), total.to_string());
        assert_eq!(clients[0].stat("curr_items"), (LOOPS + 1).to_string());
    }
    assert_eq!(
        by_loop[1][0].stat("cmd_set"),
        (LOOPS + 1).to_string(),
        "sets from every loop"
    );

    // A closed connection leaves its own loop's count.
    let gone = by_loop[2].pop().expect("loop 2 has a client");
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.loops()[2].open() != by_loop[2].len() {
        assert!(Instant::now() < deadline, "loop 2 never saw the close");
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(server.loops()[0].open(), by_loop[0].len());

    // Shutdown stops every loop and closes their connections.
    server.shutdown().expect("clean shutdown");
    for (i, clients) in by_loop.iter_mut().enumerate() {
        for client in clients {
            assert_eq!(client.line(), "", "loop {i} connection closed");
        }
    }
}

#[test]
fn every_address_is_served_by_every_loop() {
    // Two `-l` addresses with port 0: each gets its own free port, shared
    // by both loops.
    let server = Server::start(ServerConfig {
        listen: vec![
            "127.0.0.1:0".parse().unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        ],
        threads: 2,
        ..ServerConfig::default()
    })
    .expect("start");
    let addrs = server.local_addrs().to_vec();
    assert_eq!(addrs.len(), 2);
    assert_ne!(addrs[0].port(), addrs[1].port());
    assert!(addrs.iter().all(|a| a.port() != 0));

    let mut first = TextClient::connect(addrs[0]);
    first.set("k", b"v");
    // Enough connections on the second address that both loops take some.
    let mut second: Vec<TextClient> = (0..32).map(|_| TextClient::connect(addrs[1])).collect();
    for c in &mut second {
        assert_eq!(c.get("k").as_deref(), Some(&b"v"[..]));
    }
    let open = wait_for_total(&server, 33);
    assert!(open.iter().all(|&n| n > 0), "per loop: {open:?}");
    server.shutdown().expect("clean shutdown");
}
