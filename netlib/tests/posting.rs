//! Cross-thread posting, stopping and shutdown.

mod util;

use netlib::{CloseReason, Context, Error, Event, EventDispatch, ListenOptions};
use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use util::*;

/// 4 threads post 10,000 closures each: every closure runs exactly once, on
/// the loop thread, in order per sender.
#[test]
fn four_threads_post_ten_thousand_closures_each_in_order() {
    let mut d = EventDispatch::new().unwrap();
    let log: Arc<Mutex<Vec<(usize, usize)>>> = Arc::default();
    let loop_thread = std::thread::current().id();
    let mut threads = Vec::new();
    for t in 0..4 {
        let poster = d.poster();
        let log = log.clone();
        threads.push(std::thread::spawn(move || {
            for i in 0..10_000 {
                let log = log.clone();
                poster
                    .post(move |_ctx: &mut Context| {
                        assert_eq!(std::thread::current().id(), loop_thread);
                        log.lock().unwrap().push((t, i));
                    })
                    .unwrap();
            }
        }));
    }
    run_until(&mut d, "all posted closures", || {
        log.lock().unwrap().len() == 40_000
    });
    for t in threads {
        t.join().unwrap();
    }
    let log = log.lock().unwrap();
    for t in 0..4 {
        let seq: Vec<usize> = log
            .iter()
            .filter(|(x, _)| *x == t)
            .map(|(_, i)| *i)
            .collect();
        assert_eq!(seq, (0..10_000).collect::<Vec<_>>(), "thread {t}");
    }
}

/// A closure posted while posted closures run runs in the same turn.
#[test]
fn closure_posted_from_a_posted_closure_runs_in_the_same_turn() {
    let mut d = EventDispatch::new().unwrap();
    let turns = Rc::new(Cell::new(0u64));
    let t = turns.clone();
    d.context().add_loop_hook(move |_| t.set(t.get() + 1));
    let seen: Arc<Mutex<Vec<u64>>> = Arc::default();
    let poster = d.poster();
    // Hook counts are read through a channel-free trick: the closures store
    // the turn counter they observe via a thread-local set by the hook.
    thread_local!(static TURN: Cell<u64> = const { Cell::new(0) });
    let t = turns.clone();
    d.context()
        .add_loop_hook(move |_| TURN.with(|x| x.set(t.get())));
    let s = seen.clone();
    let p2 = poster.clone();
    poster
        .post(move |_| {
            s.lock().unwrap().push(TURN.with(|x| x.get()));
            let s = s.clone();
            p2.post(move |_| s.lock().unwrap().push(TURN.with(|x| x.get())))
                .unwrap();
        })
        .unwrap();
    // Local deferral from the loop thread behaves the same.
    let s = seen.clone();
    d.context().defer(move |ctx| {
        s.lock().unwrap().push(TURN.with(|x| x.get()));
        let s = s.clone();
        ctx.defer(move |_| s.lock().unwrap().push(TURN.with(|x| x.get())));
    });
    run_until(&mut d, "posted", || seen.lock().unwrap().len() == 4);
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|t| *t == seen[0]), "turns: {seen:?}");
}

#[test]
fn stop_from_another_thread_and_posting_to_a_stopped_loop_fails() {
    let mut d = EventDispatch::new().unwrap();
    let poster = d.poster();
    assert!(!poster.is_running());
    let p = poster.clone();
    let stopper = std::thread::spawn(move || {
        while !p.is_running() {
            std::thread::sleep(Duration::from_millis(1));
        }
        p.stop();
    });
    d.run().unwrap();
    stopper.join().unwrap();
    assert!(!poster.is_running());
    assert!(matches!(poster.post(|_| {}), Err(Error::Stopped)));
    drop(d);
    assert!(matches!(poster.post(|_| {}), Err(Error::Stopped)));
}

#[test]
fn shutdown_closes_every_socket_and_delivers_close() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let l = d
        .context()
        .listen(
            localhost(),
            &ListenOptions::default(),
            recorder(rec.clone()),
        )
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let _clients: Vec<_> = (0..5)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    run_until(&mut d, "accepts", || rec.borrow().accepted().len() == 5);
    let posted_ran = Arc::new(Mutex::new(false));
    let p = posted_ran.clone();
    let poster = d.poster();
    poster.post(move |_| *p.lock().unwrap() = true).unwrap();
    poster.stop();
    d.run().unwrap();
    assert!(
        *posted_ran.lock().unwrap(),
        "accepted posts run before shutdown"
    );
    let r = rec.borrow();
    assert_eq!(r.closed.len(), 6);
    assert!(r.closed.values().all(|c| *c == CloseReason::Shutdown));
    assert_eq!(
        r.count(|e| matches!(e, Event::Close(_))),
        6,
        "exactly one Close each"
    );
    assert_eq!(d.context().socket_count(), 0);
}

#[test]
fn loop_hooks_run_each_turn_and_can_be_removed_from_inside() {
    let mut d = EventDispatch::new().unwrap();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let other_runs = Rc::new(Cell::new(0));
    let o = other_runs.clone();
    let other = d.context().add_loop_hook(move |_| o.set(o.get() + 1));
    let self_id: Rc<Cell<Option<netlib::HookId>>> = Rc::default();
    let sid = self_id.clone();
    let id = d.context().add_loop_hook(move |ctx| {
        r.set(r.get() + 1);
        if r.get() == 3 {
            assert!(ctx.remove_loop_hook(sid.get().unwrap()));
            assert!(ctx.remove_loop_hook(other));
        }
    });
    self_id.set(Some(id));
    for _ in 0..10 {
        d.run_once(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(runs.get(), 3);
    assert_eq!(
        other_runs.get(),
        3,
        "the other hook ran before removal in that turn"
    );
    assert!(!d.context().remove_loop_hook(id));
}
