//! xx_net's queue API (`NetQueue`) between queues in one process, each with
//! its center on a network thread of its own, over loopback.

mod common;

use common::{quick, wait_for, WAIT};
use msgcenter::{FailReason, ListenError, NetQueue};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Move {
    player: u32,
    to: (i32, i32),
    tags: BTreeMap<String, String>,
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Calls `recv` until `n` values came (or panics after WAIT).
fn recv_n<T: serde::de::DeserializeOwned>(q: &NetQueue, n: usize) -> Vec<(SocketAddr, T)> {
    let start = Instant::now();
    let mut all = Vec::new();
    while all.len() < n {
        assert!(start.elapsed() < WAIT, "got {} of {n}", all.len());
        for d in q.recv::<T>() {
            all.push((d.from, d.value.expect("decodes")));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    all
}

#[test]
fn structured_values_arrive_in_order_and_recv_returns_each_once() {
    let a = NetQueue::start(quick()).unwrap();
    let b = NetQueue::start(quick()).unwrap();
    let b_addr = b.listen(local()).unwrap();
    let sent: Vec<Move> = (0..100)
        .map(|i| Move {
            player: i,
            to: (i as i32, -(i as i32)),
            tags: [("weapon".to_string(), format!("sword {i}"))].into(),
        })
        .collect();
    for m in &sent {
        a.send(b_addr, m).unwrap();
    }
    let got = recv_n::<Move>(&b, 100);
    assert_eq!(got.iter().map(|(_, m)| m.clone()).collect::<Vec<_>>(), sent);
    assert!(got.iter().all(|(from, _)| *from == a.advertised_addr()));
    assert!(b.recv::<Move>().is_empty(), "each value is returned once");
    // The sender's address answers: a reply reaches a.
    b.send(got[0].0, &"ok").unwrap();
    assert_eq!(recv_n::<String>(&a, 1)[0].1, "ok");
    assert!(a.failures().is_empty() && b.failures().is_empty());
}

#[test]
fn sends_from_many_threads_each_arrive_once() {
    let rx = NetQueue::start(quick()).unwrap();
    let to = rx.listen(local()).unwrap();
    let tx = std::sync::Arc::new(NetQueue::start(quick()).unwrap());
    let threads: Vec<_> = (0..4u32)
        .map(|t| {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for i in 0..250u32 {
                    tx.send(to, &(t, i)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let got: HashSet<(u32, u32)> = recv_n::<(u32, u32)>(&rx, 1000)
        .into_iter()
        .map(|(_, v)| v)
        .collect();
    assert_eq!(got.len(), 1000);
}

#[test]
fn listening_twice_is_a_clear_error_and_listen_sets_the_reply_address() {
    let q = NetQueue::start(quick()).unwrap();
    let addr = q.listen(local()).unwrap();
    assert_eq!(
        q.advertised_addr(),
        addr,
        "peers answer to the listen address"
    );
    match q.listen(addr) {
        Err(e @ ListenError::AlreadyListening(_)) => {
            assert!(e.to_string().contains("already listening"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // A second listener is fine; the reply address stays the first.
    let second = q.listen(local()).unwrap();
    assert_ne!(second, addr);
    assert_eq!(q.advertised_addr(), addr);
}

#[test]
fn a_full_inbox_refuses_and_the_senders_retries_deliver_later() {
    let rx = NetQueue::with_inbox_limit(quick(), 10).unwrap();
    let to = rx.listen(local()).unwrap();
    let tx = NetQueue::start(quick()).unwrap();
    for i in 0..50u32 {
        tx.send(to, &i).unwrap();
    }
    wait_for("refusals", || rx.center().stats().refused > 0);
    let got: Vec<u32> = recv_n::<u32>(&rx, 50).into_iter().map(|(_, v)| v).collect();
    let unique: HashSet<u32> = got.iter().copied().collect();
    assert_eq!((got.len(), unique.len()), (50, 50), "each once: {got:?}");
    wait_for("all acked", || tx.center().stats().acked == 50);
    assert!(tx.failures().is_empty());
}

#[test]
fn failed_sends_and_undecodable_values_are_reported() {
    let mut cfg = quick();
    cfg.retry.deadline = Duration::from_millis(300);
    let q = NetQueue::start(cfg).unwrap();
    let nowhere = TcpListener::bind(local()).unwrap().local_addr().unwrap();
    let id = q.send(nowhere, &1u8).unwrap();
    wait_for("a failure", || {
        let f = q.failures();
        assert!(f.iter().all(|f| f.id == id && f.to == nowhere));
        f.iter().any(|f| f.reason == FailReason::Unreachable)
    });
    let rx = NetQueue::start(quick()).unwrap();
    let to = rx.listen(local()).unwrap();
    q.send(to, &"not a number").unwrap();
    let start = Instant::now();
    let d = loop {
        if let Some(d) = rx.recv::<Move>().pop() {
            break d;
        }
        assert!(start.elapsed() < WAIT);
        std::thread::sleep(Duration::from_millis(2));
    };
    assert!(d.value.is_err(), "{d:?}");
}
