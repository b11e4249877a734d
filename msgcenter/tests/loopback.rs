//! Two (or more) centers in one process, each on its own loop thread, over
//! real loopback sockets: one test per rule of the center. This file owns
//! delivery: exactly-once handling, replies, connection races, priorities,
//! acks, retries and restarts. Limits and bad input are in
//! `loopback_limits.rs`, connection lifetime in `loopback_connections.rs`,
//! worker pools and caller-driven loops in `loopback_workers.rs`.

mod common;

use common::*;
use msgcenter::frame::{Header, Kind, FLAG_DUPLICATE, FLAG_NEED_ACK};
use msgcenter::{Center, FailReason, Handlers, Message, Outcome, Retry};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

#[test]
fn every_message_handled_once_or_failed_and_counted() {
    let (rx, calls) = counting_receiver(quick());
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let to = rx.handle().local_addr();
    let mut ids = Vec::new();
    for i in 0..3000u32 {
        let mut m = Message::new(to, 1, i.to_be_bytes().to_vec());
        if i % 2 == 0 {
            m = m.need_ack();
        }
        if i % 7 == 0 {
            m = m.urgent();
        }
        ids.push((tx.handle().post(outcomes.track(m)), i % 2 == 0));
    }
    wait_for("all outcomes", || outcomes.count() == ids.len());
    outcomes.assert_single();
    // Plain messages are written; NeedAck ones are acked after their handler ran.
    wait_for("plain messages handled", || {
        calls.lock().unwrap().len() == ids.len()
    });
    let calls = calls.lock().unwrap();
    for (id, need_ack) in &ids {
        let expect = if *need_ack {
            Outcome::Acked { duplicate: false }
        } else {
            Outcome::Written
        };
        assert_eq!(outcomes.get(*id), vec![expect], "message {id}");
        assert_eq!(calls.get(id), Some(&1), "handled once: {id}");
    }
    let s = tx.handle().stats();
    assert_eq!(s.posted, 3000);
    assert_eq!(s.finished(), 3000);
    assert_eq!((s.written, s.acked), (1500, 1500));
    assert_eq!(rx.handle().stats().handled, 3000);
}

#[test]
fn replies_reach_the_sender_by_its_listen_address_over_one_connection() {
    let server = Center::spawn(
        quick(),
        Handlers::new().on(1, |cx, m| {
            cx.reply(2, [b"re: ", m.body].concat());
        }),
    )
    .unwrap();
    let (tx, got) = mpsc::channel();
    let client = Center::spawn(
        quick(),
        Handlers::new().on(2, move |_, m| tx.send((m.from, m.body.to_vec())).unwrap()),
    )
    .unwrap();
    for i in 0..10 {
        client.handle().post(Message::new(
            server.handle().local_addr(),
            1,
            format!("{i}"),
        ));
    }
    for i in 0..10 {
        let (from, body) = got.recv_timeout(WAIT).unwrap();
        assert_eq!(from, server.handle().local_addr());
        assert_eq!(body, format!("re: {i}").into_bytes(), "FIFO");
    }
    // The reply reused the client's connection: one each side.
    assert_eq!(client.handle().connection_count(), Some(1));
    assert_eq!(server.handle().connection_count(), Some(1));
}

#[test]
fn simultaneous_connects_end_with_one_connection_and_lose_nothing() {
    for round in 0..5 {
        let (a, a_calls) = counting_receiver(quick());
        let (b, b_calls) = counting_receiver(quick());
        let outcomes = Outcomes::default();
        let (ha, hb) = (a.handle().clone(), b.handle().clone());
        let (oa, ob) = (outcomes.clone(), outcomes.clone());
        // Both sides post at the same moment, before either has a connection.
        let ta = std::thread::spawn(move || {
            for i in 0..50 {
                ha.post(oa.track(Message::new(hb.local_addr(), 1, vec![i]).need_ack()));
            }
        });
        let (ha, hb) = (a.handle().clone(), b.handle().clone());
        let tb = std::thread::spawn(move || {
            for i in 0..50 {
                hb.post(ob.track(Message::new(ha.local_addr(), 1, vec![i])));
            }
        });
        ta.join().unwrap();
        tb.join().unwrap();
        wait_for("outcomes", || outcomes.count() == 100);
        outcomes.assert_single();
        for (id, all) in outcomes.0.lock().unwrap().iter() {
            assert!(
                matches!(all[0], Outcome::Acked { .. } | Outcome::Written),
                "round {round}: {id}: {all:?}"
            );
        }
        wait_for("plain handled", || a_calls.lock().unwrap().len() == 50);
        assert_eq!(b_calls.lock().unwrap().len(), 50);
        wait_for("one connection each", || {
            a.handle().connection_count() == Some(1) && b.handle().connection_count() == Some(1)
        });
        let pa = a.handle().peers().unwrap();
        assert_eq!(pa.len(), 1, "{pa:?}");
        assert_eq!(pa[0].addr, b.handle().local_addr());
        assert_eq!(pa[0].node_id, Some(b.handle().node_id()));
    }
}

#[test]
fn urgent_messages_overtake_queued_normal_ones() {
    // Queue while the peer is not listening yet, then let it come up.
    let addr = free_addr();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    for i in 0..20u8 {
        let m = Message::new(addr, 1, vec![b'n', i]).need_ack();
        tx.handle().post(outcomes.track(m));
    }
    for i in 0..5u8 {
        let m = Message::new(addr, 1, vec![b'u', i]).need_ack().urgent();
        tx.handle().post(outcomes.track(m));
    }
    wait_for("a failed connect", || {
        tx.handle()
            .peers()
            .is_some_and(|p| p.first().is_some_and(|p| p.queued == 25 && !p.connecting))
    });
    let order: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let o = order.clone();
    let mut cfg = quick();
    cfg.listen = addr;
    let _rx = Center::spawn(
        cfg,
        Handlers::new().on(1, move |_, m| o.lock().unwrap().push(m.body.to_vec())),
    )
    .unwrap();
    wait_for("all acked", || outcomes.count() == 25);
    let order = order.lock().unwrap();
    let expect: Vec<Vec<u8>> = (0..5u8)
        .map(|i| vec![b'u', i])
        .chain((0..20u8).map(|i| vec![b'n', i]))
        .collect();
    assert_eq!(*order, expect);
}

#[test]
fn unreachable_peer_fails_plain_at_once_and_need_ack_at_its_deadline() {
    let addr = free_addr(); // nothing listens there
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let plain = tx.handle().post(outcomes.track(Message::new(addr, 1, "x")));
    let acked = tx.handle().post(
        outcomes.track(Message::new(addr, 1, "y").need_ack().with_retry(Retry {
            interval: Duration::from_millis(50),
            max_retries: 100,
            deadline: Duration::from_millis(500),
        })),
    );
    assert_eq!(
        outcomes.wait(plain),
        Outcome::Failed(FailReason::Unreachable)
    );
    assert_eq!(
        outcomes.wait(acked),
        Outcome::Failed(FailReason::Unreachable)
    );
}

#[test]
fn duplicate_need_ack_is_acked_as_duplicate_and_handled_once() {
    let (rx, calls) = counting_receiver(quick());
    let me: SocketAddr = "127.0.0.1:1".parse().unwrap();
    let (mut f, welcome) = Fake::connect(rx.handle().local_addr(), me, hello(42, 1));
    assert_eq!(welcome.node_id, rx.handle().node_id());
    let data = Header {
        kind: Kind::Data,
        flags: FLAG_NEED_ACK,
        id: 77,
        msg_type: 1,
        from: me,
        to: rx.handle().local_addr(),
    };
    for round in 0..3 {
        f.send(&data, b"pay me once");
        let (ack, _) = f.recv().expect("ack");
        assert_eq!((ack.kind, ack.id), (Kind::Ack, 77));
        assert_eq!(ack.flags & FLAG_DUPLICATE != 0, round > 0, "round {round}");
    }
    assert_eq!(calls.lock().unwrap().get(&77), Some(&1));
    // The same id from another node is another message.
    let (mut g, _) = Fake::connect(
        rx.handle().local_addr(),
        "127.0.0.1:2".parse().unwrap(),
        hello(43, 1),
    );
    g.send(&data, b"other sender");
    let (ack, _) = g.recv().expect("ack");
    assert_eq!(ack.flags & FLAG_DUPLICATE, 0);
    assert_eq!(calls.lock().unwrap().get(&77), Some(&2));
    assert_eq!(rx.handle().stats().duplicates, 2);
}

#[test]
fn retries_stop_after_max_retries_and_each_send_reaches_the_peer() {
    let (listener, to, tx, outcomes) = sender_and_listener(quick());
    let id = tx.handle().post(
        outcomes.track(
            Message::new(to, 1, "never acked")
                .need_ack()
                .with_retry(Retry {
                    interval: Duration::from_millis(50),
                    max_retries: 2,
                    deadline: Duration::from_secs(10),
                }),
        ),
    );
    let mut f = Fake::accept(&listener, hello(5, 5));
    let mut copies = 0;
    // Count until the sender gave up, then what was already on the way.
    let start = std::time::Instant::now();
    loop {
        match f.recv_within(Duration::from_millis(100)) {
            Some((h, _)) => {
                assert_eq!((h.kind, h.id), (Kind::Data, id));
                copies += 1;
            }
            None if !outcomes.get(id).is_empty() => break,
            None => assert!(start.elapsed() < WAIT, "no outcome"),
        }
    }
    assert_eq!(copies, 3, "first send and two retries");
    assert_eq!(
        outcomes.wait(id),
        Outcome::Failed(FailReason::RetriesExhausted)
    );
    assert_eq!(tx.handle().stats().retransmits, 2);
}

#[test]
fn need_ack_survives_a_dropped_connection_without_double_handling() {
    let (listener, to, tx, outcomes) = sender_and_listener(quick());
    let id = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "important").need_ack()));
    let mut first = Fake::accept(&listener, hello(5, 5));
    let (h, _) = first.recv().unwrap();
    assert_eq!(h.id, id);
    drop(first); // the connection dies before the ack
    let mut second = Fake::accept(&listener, hello(5, 5)); // same incarnation: no restart
    let (h, _) = second.recv().unwrap();
    assert_eq!(h.id, id, "sent again on the new connection");
    second.ack(id, 1, FLAG_DUPLICATE);
    assert_eq!(outcomes.wait(id), Outcome::Acked { duplicate: true });
}

#[test]
fn receiver_restart_fails_unacked_messages_instead_of_handling_them_twice() {
    let (listener, to, tx, outcomes) = sender_and_listener(quick());
    let sent = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "maybe handled").need_ack()));
    let mut old = Fake::accept(&listener, hello(5, 1));
    assert_eq!(old.recv().unwrap().0.id, sent);
    drop(old);
    // Another process (new incarnation) listens there now.
    let mut new = Fake::accept(&listener, hello(5, 2));
    assert_eq!(
        outcomes.wait(sent),
        Outcome::Failed(FailReason::PeerRestarted)
    );
    // Messages never sent to the old process go to the new one.
    let fresh = tx
        .handle()
        .post(outcomes.track(Message::new(to, 1, "new").need_ack()));
    let (h, _) = new.recv().unwrap();
    assert_eq!(h.id, fresh);
    new.ack(fresh, 1, 0);
    assert_eq!(outcomes.wait(fresh), Outcome::Acked { duplicate: false });
}
