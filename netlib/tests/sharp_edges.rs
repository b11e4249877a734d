//! Regression tests for the reactor's sharp edges: each test is named after
//! the defect it pins and fails (or hangs past its bound) without the fix.

mod util;

use netlib::{Config, Context, Event, EventDispatch, Handle, ListenOptions};
use std::cell::Cell;
use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use util::*;

/// Runs `body` on a thread of its own and fails if it does not finish in
/// time (a starved loop never returns from `run_once`, so the bound must
/// live outside it).
fn bounded<T: Send + 'static>(what: &str, body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(body());
    });
    match rx.recv_timeout(TIMEOUT) {
        Ok(v) => v,
        Err(_) => panic!("timed out: {what}"),
    }
}

fn redefer_forever(ctx: &mut Context, runs: Rc<Cell<u64>>) {
    runs.set(runs.get() + 1);
    ctx.defer(move |ctx| redefer_forever(ctx, runs));
}

#[test]
fn regression_self_deferring_closure_does_not_starve_timers() {
    let runs = bounded(
        "a timer fires beside a closure that re-defers itself",
        || {
            let mut d = EventDispatch::new().unwrap();
            let runs = Rc::new(Cell::new(0u64));
            let r = runs.clone();
            d.context().defer(move |ctx| redefer_forever(ctx, r));
            d.context()
                .add_timer(Duration::from_millis(20), |ctx, _| ctx.stop());
            d.run().unwrap();
            runs.get()
        },
    );
    assert!(runs > 1, "the self-deferring closure ran {runs} times");
}

fn repost_forever(ctx: &mut Context, poster: netlib::Poster) {
    let p = poster.clone();
    // Refused once the loop shuts down; that ends the chain.
    let _ = poster.post(move |ctx| repost_forever(ctx, p));
    let _ = ctx;
}

#[test]
fn regression_self_reposting_closure_does_not_starve_io() {
    let (tx, rx) = mpsc::channel();
    let server = std::thread::spawn(move || {
        let mut d = EventDispatch::new().unwrap();
        let addr = listen_echo(&mut d);
        let poster = d.poster();
        let p = poster.clone();
        poster.post(move |ctx| repost_forever(ctx, p)).unwrap();
        tx.send((addr, poster)).unwrap();
        d.run().unwrap();
    });
    let (addr, poster) = rx.recv().unwrap();
    let reply = bounded(
        "an echo while a posted closure re-posts itself",
        move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(TIMEOUT)).unwrap();
            s.write_all(b"ping").unwrap();
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).map(|_| buf)
        },
    );
    poster.stop();
    assert_eq!(&reply.unwrap(), b"ping");
    server.join().unwrap();
}

#[test]
fn regression_posting_flood_does_not_starve_timers() {
    let fired = bounded("a timer fires while another thread floods posts", || {
        let mut d = EventDispatch::with_config(Config {
            task_batch: 64,
            ..Config::default()
        })
        .unwrap();
        let poster = d.poster();
        let flood = std::thread::spawn(move || {
            // Posts until the loop shuts down and refuses them.
            while poster.post(|_ctx| {}).is_ok() {}
        });
        let start = Instant::now();
        d.context()
            .add_timer(Duration::from_millis(20), |ctx, _| ctx.stop());
        d.run().unwrap();
        flood.join().unwrap();
        start.elapsed()
    });
    assert!(fired < TIMEOUT);
}

#[test]
fn deferred_closures_stay_fifo_across_batches() {
    let mut d = EventDispatch::with_config(Config {
        task_batch: 3,
        ..Config::default()
    })
    .unwrap();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    for i in 0..10 {
        let o = order.clone();
        d.context().defer(move |ctx| {
            o.borrow_mut().push(i);
            if i == 0 {
                // Queued while the queue drains: runs after the others.
                let o = o.clone();
                ctx.defer(move |_| o.borrow_mut().push(100));
            }
        });
    }
    run_until(&mut d, "all deferred closures ran", || {
        order.borrow().len() == 11
    });
    assert_eq!(*order.borrow(), vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100]);
}

#[test]
fn regression_remove_handler_twice_does_not_free_a_handler_in_use() {
    let mut d = EventDispatch::new().unwrap();
    let seen = Rc::new(Cell::new(0u32));
    let s = seen.clone();
    let ctx = d.context();
    let r = ctx.add_handler(move |_ctx: &mut Context, _h: Handle, ev: Event| {
        if let Event::Connect { .. } = ev {
            s.set(s.get() + 1);
        }
    });
    let l = ctx
        .listen_with(localhost(), &ListenOptions::default(), r)
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    assert!(
        ctx.remove_handler(r),
        "first removal drops the registration"
    );
    assert!(!ctx.remove_handler(r), "second removal must be refused");
    // A handler owned by a socket was never registered: not removable.
    let owned = ctx
        .listen(localhost(), &ListenOptions::default(), echo)
        .unwrap();
    let owned_ref = ctx.handler_of(owned).unwrap();
    assert!(!ctx.remove_handler(owned_ref));
    // Were the listener's handler freed, this one would take its slot.
    let other = Rc::new(Cell::new(0u32));
    let o = other.clone();
    let _r2 = ctx.add_handler(move |_ctx: &mut Context, _h: Handle, _ev: Event| {
        o.set(o.get() + 1);
    });
    let _c = std::net::TcpStream::connect(addr).unwrap();
    run_until(
        &mut d,
        "the listener's own handler sees the connection",
        || seen.get() == 1 || other.get() > 0,
    );
    assert_eq!((seen.get(), other.get()), (1, 0));
}

#[test]
fn regression_handler_ignoring_read_does_not_spin_the_loop() {
    let mut d = EventDispatch::new().unwrap();
    let reads = Rc::new(Cell::new(0u32));
    let rd = reads.clone();
    let ctx = d.context();
    let l = ctx
        .listen(
            localhost(),
            &ListenOptions::default(),
            move |_ctx: &mut Context, _h: Handle, ev: Event| {
                if ev == Event::Read {
                    rd.set(rd.get() + 1); // and never recv
                }
            },
        )
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let turns = Rc::new(Cell::new(0u64));
    let t = turns.clone();
    ctx.add_loop_hook(move |_| t.set(t.get() + 1));
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"nobody reads this").unwrap();
    run_until(&mut d, "the first Read", || reads.get() > 0);
    let before = turns.get();
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        d.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    let spun = turns.get() - before;
    // Idle: a turn per 50 ms wait (a few more for stray wakeups); a spinning
    // loop makes thousands.
    assert!(spun < 20, "{spun} loop turns in 200 ms while idle");
    // A new edge offers the Read again.
    let offered = reads.get();
    c.write_all(b"more").unwrap();
    run_until(&mut d, "a Read for the new data", || reads.get() > offered);
}

#[test]
fn handler_reading_part_is_offered_the_rest_next_turn() {
    let mut d = EventDispatch::new().unwrap();
    let got = Rc::new(std::cell::RefCell::new(Vec::new()));
    let g = got.clone();
    let ctx = d.context();
    let l = ctx
        .listen(
            localhost(),
            &ListenOptions::default(),
            move |ctx: &mut Context, h: Handle, ev: Event| {
                if ev == Event::Read {
                    // One small read per event, never to WouldBlock.
                    let mut buf = [0u8; 4];
                    if let Ok(n) = ctx.recv(h, &mut buf) {
                        g.borrow_mut().extend_from_slice(&buf[..n]);
                    }
                }
            },
        )
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let mut c = std::net::TcpStream::connect(addr).unwrap();
    c.write_all(b"0123456789abcdef").unwrap();
    run_until(&mut d, "all 16 bytes read 4 at a time", || {
        got.borrow().len() == 16
    });
    assert_eq!(&got.borrow()[..], b"0123456789abcdef");
}
