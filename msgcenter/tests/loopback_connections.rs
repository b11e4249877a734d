//! Centers over real loopback sockets, as in `loopback.rs`: the lifetime of
//! connections - idle close and heartbeats, dead-peer detection, crossing
//! hellos, and listeners (a second listen on one address, new listeners).

mod common;

use common::*;
use msgcenter::frame::Kind;
use msgcenter::{Center, Handlers, Message, Outcome};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn idle_connections_close_and_heartbeats_keep_used_ones() {
    let mut cfg = quick();
    cfg.heartbeat = Duration::from_millis(50);
    cfg.dead_after = Duration::from_millis(300);
    cfg.idle_close = Some(Duration::from_secs(2));
    let (rx, calls) = counting_receiver(cfg.clone());
    let tx = Center::spawn(cfg, Handlers::new()).unwrap();
    let to = rx.handle().local_addr();
    let outcomes = Outcomes::default();
    let a = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "a").need_ack()));
    assert!(matches!(outcomes.wait(a), Outcome::Acked { .. }));
    // Quiet for longer than dead_after: heartbeats keep it up, until idle_close.
    std::thread::sleep(Duration::from_millis(700));
    assert_eq!(tx.handle().connection_count(), Some(1));
    assert_eq!(tx.handle().stats().connections, 1, "the same connection");
    wait_for("idle close", || tx.handle().connection_count() == Some(0));
    let b = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "b").need_ack()));
    assert!(matches!(outcomes.wait(b), Outcome::Acked { .. }));
    assert_eq!(tx.handle().stats().connections, 2);
    assert_eq!(calls.lock().unwrap().len(), 2);
}

#[test]
fn silent_peer_is_taken_for_dead_and_its_messages_go_to_the_next_connection() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let mut cfg = quick();
    cfg.heartbeat = Duration::from_millis(50);
    cfg.dead_after = Duration::from_millis(300);
    let tx = Center::spawn(cfg, Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let id = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "x").need_ack()));
    let mut mute = Fake::accept(&listener, hello(8, 8)); // never sends again
    assert_eq!(mute.recv().unwrap().0.id, id);
    assert!(mute.closed_within(Duration::from_secs(5)), "closed as dead");
    let mut alive = Fake::accept(&listener, hello(8, 8));
    let (h, _) = alive.recv().unwrap();
    assert_eq!(h.id, id);
    alive.ack(id, 1, 0);
    assert!(matches!(outcomes.wait(id), Outcome::Acked { .. }));
}

#[test]
fn a_hello_crossing_an_established_connection_of_the_lower_node_is_rejected() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake_addr = listener.local_addr().unwrap();
    let mut cfg = quick();
    cfg.node_id = Some(1); // lower than the fake's 2: its own connection wins
    let a = Center::spawn(cfg, Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let id = a
        .handle()
        .post(outcomes.track(Message::new(fake_addr, 1, "x")));
    let _established = Fake::accept(&listener, hello(2, 7));
    assert_eq!(outcomes.wait(id), Outcome::Written);
    // The same process (node 2, incarnation 7) connects too: a crossing.
    let (mut crossing, h, body) =
        Fake::connect_raw(a.handle().local_addr(), fake_addr, hello(2, 7));
    assert_eq!((h.kind, body[0]), (Kind::Reject, 1), "REJECT(crossing)");
    assert!(crossing.closed_within(WAIT));
    // A restarted process (new incarnation) replaces the old connection.
    let (_new, h, _) = Fake::connect_raw(a.handle().local_addr(), fake_addr, hello(2, 8));
    assert_eq!(h.kind, Kind::Welcome);
    assert_eq!(a.handle().peers().unwrap()[0].node_id, Some(2));
}

#[test]
fn listening_twice_on_one_address_is_an_error_and_new_listeners_serve() {
    let (tx, got) = mpsc::channel();
    let rx = Center::spawn(
        quick(),
        Handlers::new().on(1, move |_, m| tx.send((m.from, m.to)).unwrap()),
    )
    .unwrap();
    let first = rx.handle().local_addr();
    assert!(matches!(
        rx.handle().listen(first),
        Err(msgcenter::ListenError::AlreadyListening(a)) if a == first
    ));
    let extra = rx.handle().listen("127.0.0.1:0".parse().unwrap()).unwrap();
    assert_ne!(extra, first);
    assert!(matches!(
        rx.handle().listen(extra),
        Err(msgcenter::ListenError::AlreadyListening(_))
    ));
    assert_eq!(rx.handle().listen_addrs(), vec![first, extra]);
    // Another process's port: the system's refusal.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    assert!(matches!(
        rx.handle().listen(taken.local_addr().unwrap()),
        Err(msgcenter::ListenError::Io(_))
    ));
    // The new listener serves; the sender's advertised address is what the
    // handler sees, after set_advertised too.
    let sender = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let id = sender
        .handle()
        .post(outcomes.track(Message::new(extra, 1, "a")));
    assert_eq!(outcomes.wait(id), Outcome::Written);
    assert_eq!(
        got.recv_timeout(WAIT).unwrap(),
        (sender.handle().local_addr(), extra)
    );
    let alias: SocketAddr = "127.0.0.1:9".parse().unwrap();
    sender.handle().set_advertised(alias);
    assert_eq!(sender.handle().advertised_addr(), alias);
    let id = sender
        .handle()
        .post(outcomes.track(Message::new(first, 1, "b")));
    assert_eq!(outcomes.wait(id), Outcome::Written);
    assert_eq!(got.recv_timeout(WAIT).unwrap(), (alias, first));
}
