//! Centers over real loopback sockets, as in `loopback.rs`: handlers on
//! worker threads (replies back through the loop, a full pool pausing
//! reads) and a center registered on the caller's own loop.

mod common;

use common::*;
use msgcenter::{Center, FailReason, Handlers, Message, Outcome};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

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
