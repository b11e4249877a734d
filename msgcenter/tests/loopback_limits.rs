//! Centers over real loopback sockets, as in `loopback.rs`: the limits and
//! bad input - backlog high/low water, bad checksums, peers that are not
//! centers, shutdown, oversized messages and missing handlers, and the cap
//! on incoming connections.

mod common;

use common::*;
use msgcenter::frame::{Header, Kind, FLAG_NEED_ACK};
use msgcenter::{Center, FailReason, Handlers, Message, Outcome};
use std::net::TcpListener;
use std::time::Duration;

#[test]
fn backlog_refuses_fast_past_high_water_and_recovers_below_low() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let mut cfg = quick();
    cfg.backlog_high = 1 << 20;
    cfg.backlog_low = 256 << 10;
    cfg.send_window = 64 << 10;
    let tx = Center::spawn(cfg, Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let first = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, vec![0; 100])));
    let mut f = Fake::accept(&listener, hello(9, 9)); // then reads nothing
    assert_eq!(outcomes.wait(first), Outcome::Written);
    // Far more than kernel buffers and the high-water mark hold.
    let mut ids = Vec::new();
    for _ in 0..400 {
        ids.push(
            tx.handle()
                .post(outcomes.track(Message::new(to, 1, vec![7; 64 << 10]))),
        );
    }
    wait_for("backlog failures", || {
        tx.handle().stats().failed_with(FailReason::Backlog) > 0
    });
    let info = tx.handle().peers().unwrap();
    assert!(info[0].backlogged, "{info:?}");
    assert!(
        info[0].held_bytes <= (1 << 20) + (65 << 10),
        "bounded: {info:?}"
    );
    // The peer reads again: what was accepted is written, posts are accepted again.
    let reader =
        std::thread::spawn(move || while f.recv_within(Duration::from_secs(3)).is_some() {});
    wait_for("all outcomes", || outcomes.count() == 401);
    outcomes.assert_single();
    for id in &ids {
        let o = outcomes.get(*id)[0];
        assert!(
            o == Outcome::Written || o == Outcome::Failed(FailReason::Backlog),
            "{id}: {o:?}"
        );
    }
    let later = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "after")));
    assert_eq!(outcomes.wait(later), Outcome::Written);
    reader.join().unwrap();
}

#[test]
fn bad_checksum_closes_only_that_connection() {
    let (rx, calls) = counting_receiver(quick());
    let to = rx.handle().local_addr();
    let (mut good, _) = Fake::connect(to, "127.0.0.1:1".parse().unwrap(), hello(1, 1));
    let (mut bad, _) = Fake::connect(to, "127.0.0.1:2".parse().unwrap(), hello(2, 2));
    let mut wire = Vec::new();
    let data = Header {
        kind: Kind::Data,
        flags: FLAG_NEED_ACK,
        id: 1,
        msg_type: 1,
        from: "127.0.0.1:2".parse().unwrap(),
        to,
    };
    msgcenter::frame::encode_frame(&mut wire, &data, b"corrupt me").unwrap();
    let last = wire.len() - 1;
    wire[last] ^= 1;
    use std::io::Write;
    bad.stream.write_all(&wire).unwrap();
    assert!(bad.closed_within(WAIT), "closed for the bad checksum");
    good.send(
        &Header {
            from: "127.0.0.1:1".parse().unwrap(),
            ..data
        },
        b"fine",
    );
    let (ack, _) = good.recv().unwrap();
    assert_eq!(ack.kind, Kind::Ack);
    assert_eq!(
        calls.lock().unwrap().get(&1),
        Some(&1),
        "only the good one handled"
    );
    assert_eq!(rx.handle().stats().protocol_errors, 1);
}

#[test]
fn a_peer_that_is_not_a_center_fails_messages_with_protocol() {
    let (listener, to, tx, outcomes) = sender_and_listener(quick());
    let id = tx.handle().post(outcomes.track(Message::new(to, 1, "hi")));
    let (mut s, _) = listener.accept().unwrap();
    use std::io::Write;
    s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").unwrap();
    assert_eq!(outcomes.wait(id), Outcome::Failed(FailReason::Protocol));
}

#[test]
fn shutdown_fails_everything_outstanding_and_later_posts() {
    let (listener, to, tx, outcomes) = sender_and_listener(quick());
    let handle = tx.handle().clone();
    let first = handle.post(outcomes.track(Message::new(to, 1, "a").need_ack()));
    let mut f = Fake::accept(&listener, hello(3, 3));
    assert_eq!(f.recv().unwrap().0.id, first);
    let queued: Vec<u64> = (0..10)
        .map(|_| handle.post(outcomes.track(Message::new(free_addr(), 1, "b").need_ack())))
        .collect();
    tx.shutdown();
    assert_eq!(outcomes.wait(first), Outcome::Failed(FailReason::Shutdown));
    for id in queued {
        assert_eq!(outcomes.wait(id), Outcome::Failed(FailReason::Shutdown));
    }
    let late = handle.post(outcomes.track(Message::new(to, 1, "late")));
    assert_eq!(outcomes.wait(late), Outcome::Failed(FailReason::Shutdown));
}

#[test]
fn too_large_and_no_handler_are_reported() {
    let mut cfg = quick();
    cfg.max_body = 1000;
    let (rx, _) = counting_receiver(cfg.clone());
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let to = rx.handle().local_addr();
    let unknown = tx
        .handle()
        .post(outcomes.track(Message::new(to, 99, "?").need_ack()));
    assert_eq!(
        outcomes.wait(unknown),
        Outcome::Failed(FailReason::NoHandler)
    );
    // Over the receiver's limit (learned in the handshake): refused before sending.
    let big = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, vec![0; 2000])));
    assert_eq!(outcomes.wait(big), Outcome::Failed(FailReason::TooLarge));
    let small = Center::spawn(cfg, Handlers::new()).unwrap();
    let local = small
        .handle()
        .post(outcomes.track(Message::new(to, 1, vec![0; 2000])));
    assert_eq!(outcomes.wait(local), Outcome::Failed(FailReason::TooLarge));
}

#[test]
fn incoming_connections_past_max_incoming_are_refused() {
    let mut cfg = quick();
    cfg.max_incoming = 2;
    let rx = Center::spawn(cfg, Handlers::new()).unwrap();
    let to = rx.handle().local_addr();
    let _a = Fake::connect(to, "127.0.0.1:1".parse().unwrap(), hello(11, 1));
    let _b = Fake::connect(to, "127.0.0.1:2".parse().unwrap(), hello(12, 1));
    let mut third = std::net::TcpStream::connect(to).unwrap();
    third.set_read_timeout(Some(WAIT)).unwrap();
    use std::io::Read;
    let mut buf = [0u8; 8];
    assert!(matches!(third.read(&mut buf), Ok(0) | Err(_)), "refused");
    drop(_a);
    wait_for("a slot frees up", || {
        rx.handle().connection_count() == Some(1)
    });
    let _c = Fake::connect(to, "127.0.0.1:3".parse().unwrap(), hello(13, 1));
}
