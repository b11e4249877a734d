//! The queue API (xx_net) over real loopback sockets: values both ways,
//! listening rules, failures the application sees, and the bounds.

use msgcenter::queue::{Inbound, Queue, QueueConfig, QueueError, SendError, VALUE_TYPE};
use msgcenter::value::Value;
use msgcenter::{Center, FailReason, Handlers, ListenError, Message};
use serde::{Deserialize, Serialize};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

fn quick() -> QueueConfig {
    let mut c = QueueConfig::default();
    c.center.retry.interval = Duration::from_millis(50);
    c.center.retry.max_retries = 400;
    c.center.retry.deadline = Duration::from_secs(20);
    c.center.dedup_window = Duration::from_secs(30);
    c.center.connect_timeout = Duration::from_secs(1);
    c.center.handshake_timeout = Duration::from_secs(1);
    c.center.reconnect_min = Duration::from_millis(20);
    c.center.reconnect_max = Duration::from_millis(200);
    c
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Receives until `n` values came (or panics after [`WAIT`]).
fn recv_n<T: Send + 'static>(q: &Queue<T>, n: usize) -> Vec<Inbound<T>> {
    let start = Instant::now();
    let mut all = Vec::new();
    while all.len() < n {
        assert!(
            start.elapsed() < WAIT,
            "got {} of {n} values; stats {:?}",
            all.len(),
            q.stats()
        );
        all.extend(q.recv_wait(Duration::from_millis(100)));
    }
    all
}

#[derive(Serialize, Deserialize, Debug, PartialEq, Clone)]
struct Move {
    player: String,
    seq: u32,
}

#[test]
fn values_go_both_ways_in_order_with_sender_addresses() {
    let server: Queue = Queue::start(quick()).unwrap();
    let addr = server.listen(local()).unwrap();
    let client: Queue<Move> = Queue::start(quick()).unwrap();
    for seq in 0..500 {
        let m = Move {
            player: "ann".into(),
            seq,
        };
        if seq % 2 == 0 {
            client.send(addr, &m).unwrap();
        } else {
            client.send_need_ack(addr, &m).unwrap();
        }
    }
    let got = recv_n(&server, 500);
    for (i, v) in got.iter().enumerate() {
        assert_eq!(v.value.get("seq").and_then(Value::as_int), Some(i as i64));
        assert_eq!(v.value.get("player").and_then(Value::as_str), Some("ann"));
        assert_eq!(v.need_ack, i % 2 == 1);
        assert_eq!(v.to, addr);
    }
    // The client does not listen; the reply comes back on its connection.
    let from = got[0].from;
    assert!(got.iter().all(|v| v.from == from));
    let reply = Value::map([("player", "srv".into()), ("seq", 7.into())]);
    server.send_need_ack(from, &reply).unwrap();
    let back = recv_n(&client, 1);
    assert_eq!(
        back[0].value,
        Move {
            player: "srv".into(),
            seq: 7
        }
    );
    assert_eq!(back[0].from, addr);
    assert!(client.failures().is_empty() && server.failures().is_empty());
    // Outcomes (acks, write completions) may trail the values a little.
    let start = Instant::now();
    while client.stats().delivered < 500 {
        assert!(start.elapsed() < WAIT, "{:?}", client.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(client.stats().failed, 0);
    assert!(server.recv().is_empty(), "recv drained everything");
}

#[test]
fn listening_twice_is_a_clear_error() {
    let q: Queue = Queue::start(quick()).unwrap();
    let addr = q.listen(local()).unwrap();
    match q.listen(addr) {
        Err(QueueError::Listen(ListenError::AlreadyListening(a))) => assert_eq!(a, addr),
        other => panic!("expected AlreadyListening, got {other:?}"),
    }
    // Held by another socket: the system's error, and the queue carries on.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = other.local_addr().unwrap();
    let err = q.listen(taken).unwrap_err();
    assert!(
        matches!(err, QueueError::Listen(ListenError::Io(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("cannot listen"), "{err}");
    assert_eq!(q.listening(), vec![addr]);
    // After the other socket goes, the address can be listened on.
    drop(other);
    assert_eq!(q.listen(taken).unwrap(), taken);
    assert_eq!(q.listening(), vec![addr, taken]);
}

#[test]
fn values_to_any_listened_address_arrive_and_peers_know_the_first() {
    let a: Queue = Queue::start(quick()).unwrap();
    let first = a.listen(local()).unwrap();
    let second = a.listen(local()).unwrap();
    let b: Queue = Queue::start(quick()).unwrap();
    let b_addr = b.listen(local()).unwrap();
    b.send_need_ack(first, &1).unwrap();
    b.send_need_ack(second, &2).unwrap();
    let mut got = recv_n(&a, 2);
    got.sort_by_key(|v| v.value.as_int());
    assert_eq!((got[0].to, got[1].to), (first, second));
    assert!(got.iter().all(|v| v.from == b_addr));
    // b knows a by the address of the connection a's reply came on (one
    // of the two: the center keeps one connection per pair of nodes).
    a.send(b_addr, &"hi").unwrap();
    let reply_from = recv_n(&b, 1)[0].from;
    assert!(reply_from == first || reply_from == second, "{reply_from}");
    // A queue that never sent to b is known by its first address.
    let c: Queue = Queue::start(quick()).unwrap();
    c.listen(local()).unwrap();
    a.send(c.listening()[0], &"hello c").unwrap();
    assert_eq!(recv_n(&c, 1)[0].from, first);
}

#[test]
fn failed_sends_show_up_in_failures_and_hold_their_slot_until_collected() {
    let mut cfg = quick();
    cfg.max_outstanding = 3;
    cfg.center.retry.deadline = Duration::from_millis(600);
    let q: Queue = Queue::start(cfg).unwrap();
    // A port nobody listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let ids: Vec<u64> = (0..3)
        .map(|i| {
            if i == 0 {
                q.send(dead, &i).unwrap()
            } else {
                q.send_need_ack(dead, &i).unwrap()
            }
        })
        .collect();
    assert_eq!(q.send(dead, &9), Err(SendError::Full));
    let start = Instant::now();
    let mut failures = Vec::new();
    while failures.len() < 3 {
        assert!(start.elapsed() < WAIT, "failures so far: {failures:?}");
        failures.extend(q.failures());
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut failed_ids: Vec<u64> = failures.iter().map(|f| f.id).collect();
    failed_ids.sort();
    assert_eq!(failed_ids, ids);
    for f in &failures {
        assert_eq!(f.to, dead);
        assert!(
            matches!(
                f.reason,
                FailReason::Unreachable | FailReason::DeadlineExceeded
            ),
            "{f:?}"
        );
    }
    assert_eq!(q.stats().outstanding, 0);
    assert!(q.send(dead, &10).is_ok(), "slots were freed by collecting");
}

#[test]
fn a_full_inbox_pushes_back_instead_of_dropping() {
    let mut rcfg = quick();
    rcfg.max_pending = 20;
    rcfg.center.max_worker_jobs = 4;
    let server: Queue<u32> = Queue::start(rcfg).unwrap();
    let addr = server.listen(local()).unwrap();
    let client: Queue = Queue::start(quick()).unwrap();
    let n = 3000u32;
    for i in 0..n {
        // Plain and NeedAck alike are held back, not dropped.
        if i % 3 == 0 {
            client.send_need_ack(addr, &i).unwrap();
        } else {
            client.send(addr, &i).unwrap();
        }
    }
    // Nobody calls recv for a while: the inbox stops at its bound.
    let start = Instant::now();
    while server.stats().pending < 20 {
        assert!(
            start.elapsed() < WAIT,
            "inbox never filled: {:?}",
            server.stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(server.stats().pending, 20, "bounded by max_pending");
    assert!(client.stats().outstanding > 0, "the sender is held back");
    // Draining lets everything through, in order, once.
    let got = recv_n(&server, n as usize);
    let values: Vec<u32> = got.iter().map(|v| v.value).collect();
    assert_eq!(values, (0..n).collect::<Vec<_>>());
    assert!(client.failures().is_empty());
}

#[test]
fn undecodable_values_are_counted_and_the_rest_carries_on() {
    let server: Queue<u32> = Queue::start(quick()).unwrap();
    let addr = server.listen(local()).unwrap();
    let raw = Center::spawn(msgcenter::Config::default(), Handlers::new()).unwrap();
    // Not MessagePack for a u32: a string, then garbage, then a good one.
    raw.handle()
        .post(Message::new(addr, VALUE_TYPE, rmp_serde::to_vec("x").unwrap()).need_ack());
    raw.handle()
        .post(Message::new(addr, VALUE_TYPE, vec![0xc1]).need_ack());
    raw.handle()
        .post(Message::new(addr, VALUE_TYPE, rmp_serde::to_vec(&5u32).unwrap()).need_ack());
    let got = recv_n(&server, 1);
    assert_eq!(got[0].value, 5);
    assert_eq!(server.stats().malformed, 2);
}

#[test]
fn many_threads_share_one_queue() {
    let server: Queue<(u32, u32)> = Queue::start(quick()).unwrap();
    let addr = server.listen(local()).unwrap();
    let client: Arc<Queue> = Arc::new(Queue::start(quick()).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let c = client.clone();
            std::thread::spawn(move || {
                for i in 0..250u32 {
                    c.send_need_ack(addr, &(t, i)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got = recv_n(&server, 1000);
    // Per sending thread, in order.
    for t in 0..4 {
        let seq: Vec<u32> = got
            .iter()
            .filter(|v| v.value.0 == t)
            .map(|v| v.value.1)
            .collect();
        assert_eq!(seq, (0..250).collect::<Vec<_>>());
    }
}

#[test]
fn dropping_a_queue_while_its_inbox_is_full_does_not_hang() {
    let mut cfg = quick();
    cfg.max_pending = 1;
    let server: Queue = Queue::start(cfg).unwrap();
    let addr = server.listen(local()).unwrap();
    let client: Queue = Queue::start(quick()).unwrap();
    for i in 0..50 {
        client.send(addr, &i).unwrap();
    }
    let start = Instant::now();
    while server.stats().pending < 1 {
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = std::thread::spawn(move || drop(server));
    let start = Instant::now();
    while !t.is_finished() {
        assert!(start.elapsed() < WAIT, "drop hung");
        std::thread::sleep(Duration::from_millis(10));
    }
}
