//! Centers over real loopback sockets, as in `loopback.rs`: handlers on
//! worker threads (replies back through the loop, a full pool pausing
//! reads, panicking handlers) and a center registered on the caller's own
//! loop.

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

#[test]
fn a_panicking_handler_is_not_acknowledged_and_its_thread_carries_on() {
    // Type 1 (worker) and type 3 (loop) panic the first time they see an
    // id, after posting a reply; the second time they reply and return.
    // Type 4 (worker) always panics.
    let seen: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let panicked_posts = Outcomes::default();
    let flaky = |seen: Arc<Mutex<HashMap<u64, u32>>>, posts: Outcomes| {
        move |cx: &mut msgcenter::HandlerCtx, m: &msgcenter::Received<'_>| {
            let n = {
                let mut seen = seen.lock().unwrap();
                let n = seen.entry(m.id).or_default();
                *n += 1;
                *n
            };
            if n == 1 {
                cx.post(posts.track(Message::new(cx.from(), 2, b"never sent".to_vec())));
                panic!("handler fails on purpose (message {})", m.id);
            }
            cx.reply(2, m.body.to_vec());
        }
    };
    let mut cfg = quick();
    cfg.workers = 1; // one worker thread: it must survive the panics
    cfg.retry.interval = Duration::from_millis(30);
    let server = Center::spawn(
        cfg.clone(),
        Handlers::new()
            .on_worker(1, flaky(seen.clone(), panicked_posts.clone()))
            .on(3, flaky(seen.clone(), panicked_posts.clone()))
            .on_worker(4, |_, _| panic!("always fails")),
    )
    .unwrap();
    let (tx, replies) = mpsc::channel();
    let client = Center::spawn(
        cfg,
        Handlers::new().on(2, move |_, m| tx.send(m.body.to_vec()).unwrap()),
    )
    .unwrap();
    let to = server.handle().local_addr();
    let outcomes = Outcomes::default();
    let ids: Vec<u64> = (0..6u8)
        .map(|i| {
            let ty = if i % 2 == 0 { 1 } else { 3 };
            client
                .handle()
                .post(outcomes.track(Message::new(to, ty, vec![i]).need_ack()))
        })
        .collect();
    let doomed = client.handle().post(
        outcomes.track(
            Message::new(to, 4, "x")
                .need_ack()
                .with_retry(msgcenter::Retry {
                    interval: Duration::from_millis(30),
                    max_retries: 2,
                    deadline: Duration::from_secs(8),
                }),
        ),
    );
    // Each message was retried after its handler panicked, then handled.
    for id in &ids {
        assert_eq!(outcomes.wait(*id), Outcome::Acked { duplicate: false });
    }
    assert_eq!(
        outcomes.wait(doomed),
        Outcome::Failed(FailReason::RetriesExhausted)
    );
    let mut got: Vec<Vec<u8>> = (0..6)
        .map(|_| replies.recv_timeout(WAIT).unwrap())
        .collect();
    got.sort();
    assert_eq!(got, (0..6u8).map(|i| vec![i]).collect::<Vec<_>>());
    // The posts made before each panic were not sent: one reply per id.
    assert!(replies.recv_timeout(Duration::from_millis(200)).is_err());
    wait_for("the panicked handlers' posts to fail", || {
        panicked_posts.count() == 6
    });
    for (_, all) in panicked_posts.0.lock().unwrap().iter() {
        assert_eq!(all, &[Outcome::Failed(FailReason::HandlerPanicked)]);
    }
    let stats = server.handle().stats();
    assert_eq!(stats.handled, 6);
    // 6 first tries, and type 4's sends (3; a retry that arrives while
    // the previous send is still on the worker is dropped, not handled).
    assert!(
        (7..=9).contains(&stats.handler_panics),
        "{}",
        stats.handler_panics
    );
    assert_eq!(
        stats.failed_with(FailReason::HandlerPanicked),
        6,
        "counted like every outcome"
    );
    outcomes.assert_single();
}
