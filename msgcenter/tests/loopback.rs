//! Two (or more) centers in one process, each on its own loop thread, over
//! real loopback sockets: one test per rule of the center.

mod common;

use common::*;
use msgcenter::frame::{Header, Kind, FLAG_DUPLICATE, FLAG_NEED_ACK};
use msgcenter::{Center, FailReason, Handlers, Message, Outcome, Retry};
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A center whose type-1 handler counts calls per id and forwards bodies.
fn counting_receiver(
    cfg: msgcenter::Config,
) -> (msgcenter::Running, Arc<Mutex<HashMap<u64, u32>>>) {
    let calls: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let c = calls.clone();
    let rx = Center::spawn(
        cfg,
        Handlers::new().on(1, move |_, m| {
            *c.lock().unwrap().entry(m.id).or_default() += 1;
        }),
    )
    .unwrap();
    (rx, calls)
}

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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
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
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let id = tx.handle().post(outcomes.track(Message::new(to, 1, "hi")));
    let (mut s, _) = listener.accept().unwrap();
    use std::io::Write;
    s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").unwrap();
    assert_eq!(outcomes.wait(id), Outcome::Failed(FailReason::Protocol));
}

#[test]
fn shutdown_fails_everything_outstanding_and_later_posts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let handle = tx.handle().clone();
    let outcomes = Outcomes::default();
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
fn worker_handlers_run_off_the_loop_and_their_replies_come_back() {
    let running = Arc::new(AtomicU64::new(0));
    let r = running.clone();
    let mut cfg = quick();
    cfg.workers = 4;
    cfg.retry.interval = Duration::from_millis(20); // retries cross slow handlers
    let server = Center::spawn(
        cfg.clone(),
        Handlers::new().on_worker(1, move |cx, m| {
            r.fetch_add(1, Ordering::SeqCst);
            assert!(std::thread::current()
                .name()
                .unwrap()
                .starts_with("msgcenter-worker"));
            std::thread::sleep(Duration::from_millis(100));
            cx.reply(2, m.body.to_vec());
        }),
    )
    .unwrap();
    let (tx, got) = mpsc::channel();
    let client = Center::spawn(
        cfg,
        Handlers::new().on(2, move |_, m| tx.send(m.body.to_vec()).unwrap()),
    )
    .unwrap();
    let outcomes = Outcomes::default();
    let ids: Vec<u64> = (0..8u8)
        .map(|i| {
            client.handle().post(
                outcomes.track(Message::new(server.handle().local_addr(), 1, vec![i]).need_ack()),
            )
        })
        .collect();
    for id in &ids {
        assert!(matches!(outcomes.wait(*id), Outcome::Acked { .. }));
    }
    let mut replies: Vec<Vec<u8>> = (0..8).map(|_| got.recv_timeout(WAIT).unwrap()).collect();
    replies.sort();
    assert_eq!(replies, (0..8u8).map(|i| vec![i]).collect::<Vec<_>>());
    assert_eq!(
        running.load(Ordering::SeqCst),
        8,
        "each handled once despite retries"
    );
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

#[test]
fn a_full_worker_pool_pauses_reading_and_loses_nothing() {
    let calls: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let c = calls.clone();
    let mut cfg = quick();
    cfg.workers = 1;
    cfg.max_worker_jobs = 2;
    let rx = Center::spawn(
        cfg,
        Handlers::new().on_worker(1, move |_, m| {
            std::thread::sleep(Duration::from_millis(10));
            *c.lock().unwrap().entry(m.id).or_default() += 1;
        }),
    )
    .unwrap();
    let tx = Center::spawn(quick(), Handlers::new()).unwrap();
    let outcomes = Outcomes::default();
    let to = rx.handle().local_addr();
    let ids: Vec<u64> = (0..60u32)
        .map(|i| {
            let m = Message::new(to, 1, i.to_be_bytes().to_vec());
            let m = if i % 3 == 0 { m } else { m.need_ack() };
            tx.handle().post(outcomes.track(m))
        })
        .collect();
    wait_for("all handled", || calls.lock().unwrap().len() == ids.len());
    wait_for("all outcomes", || outcomes.count() == ids.len());
    outcomes.assert_single();
    for id in &ids {
        assert_eq!(calls.lock().unwrap().get(id), Some(&1), "{id}");
        assert!(matches!(
            outcomes.get(*id)[0],
            Outcome::Written | Outcome::Acked { .. }
        ));
    }
}

#[test]
fn a_center_registered_on_the_callers_loop_is_driven_by_run_once() {
    let mut dispatch = netlib::EventDispatch::new().unwrap();
    let got: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let g = got.clone();
    let mine = Center::register(
        dispatch.context(),
        quick(),
        Handlers::new().on(1, move |cx, m| {
            g.lock().unwrap().push(m.body.to_vec());
            cx.reply(2, "pong");
        }),
    )
    .unwrap();
    let (tx, pongs) = mpsc::channel();
    let other = Center::spawn(
        quick(),
        Handlers::new().on(2, move |_, m| tx.send(m.body.to_vec()).unwrap()),
    )
    .unwrap();
    let outcomes = Outcomes::default();
    let id = other
        .handle()
        .post(outcomes.track(Message::new(mine.local_addr(), 1, "ping").need_ack()));
    // The caller's own main loop: one turn at a time.
    let start = std::time::Instant::now();
    while outcomes.count() == 0 || got.lock().unwrap().is_empty() {
        assert!(start.elapsed() < WAIT, "nothing arrived");
        dispatch.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(outcomes.wait(id), Outcome::Acked { duplicate: false });
    while pongs.try_recv().is_err() {
        assert!(start.elapsed() < WAIT, "no pong");
        dispatch.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    // Shutdown fails what is outstanding and leaves the caller's loop running.
    let dead = mine.post(outcomes.track(Message::new(free_addr(), 1, "x").need_ack()));
    mine.shutdown();
    while outcomes.get(dead).is_empty() {
        assert!(start.elapsed() < WAIT, "no outcome after shutdown");
        dispatch.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    assert_eq!(outcomes.wait(dead), Outcome::Failed(FailReason::Shutdown));
    assert!(dispatch.run_once(Some(Duration::ZERO)).is_ok());
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
