//! The loop group: several loops, one per thread, sharing a port through
//! SO_REUSEPORT; per-loop posters; a clean stop; init failures; handles that
//! must not cross loops.

mod util;

use netlib::{
    CloseReason, Context, Error, Event, EventDispatch, GroupError, Handle, ListenOptions, LoopGroup,
};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use util::*;

const LOOPS: usize = 3;
const CLIENTS: usize = 48;

/// Counts, per loop, accepted connections and Close events by reason.
#[derive(Default)]
struct Tally {
    accepted: [AtomicUsize; LOOPS],
    shutdown_closes: AtomicUsize,
    other_closes: AtomicUsize,
}

fn counting_echo(tally: Arc<Tally>, index: usize) -> impl FnMut(&mut Context, Handle, Event) {
    move |ctx, h, ev| match ev {
        Event::Connect { .. } => {
            tally.accepted[index].fetch_add(1, Ordering::SeqCst);
        }
        Event::Close(CloseReason::Shutdown) => {
            tally.shutdown_closes.fetch_add(1, Ordering::SeqCst);
        }
        Event::Close(_) => {
            tally.other_closes.fetch_add(1, Ordering::SeqCst);
        }
        _ => echo(ctx, h, ev),
    }
}

#[test]
fn loops_share_a_port_and_stop_closes_every_socket() {
    let opts = ListenOptions::default();
    let listeners = netlib::bind_reuseport(localhost(), LOOPS, &opts).unwrap();
    let addr = listeners[0].local_addr().unwrap();
    let listeners = Mutex::new(listeners.into_iter().map(Some).collect::<Vec<_>>());
    let tally = Arc::new(Tally::default());
    let t = tally.clone();
    let group = LoopGroup::start(LOOPS, netlib::Config::default(), move |ctx, i| {
        let l = listeners.lock().unwrap()[i]
            .take()
            .ok_or("listener taken")?;
        ctx.adopt_listener(l, &ListenOptions::default(), counting_echo(t.clone(), i))?;
        Ok(())
    })
    .unwrap();
    assert_eq!(group.len(), LOOPS);

    // Many clients, kept open so stop() has connections to close.
    let mut clients = Vec::new();
    for n in 0..CLIENTS {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(TIMEOUT)).unwrap();
        let msg = format!("client {n}");
        c.write_all(msg.as_bytes()).unwrap();
        let mut reply = vec![0u8; msg.len()];
        c.read_exact(&mut reply).unwrap();
        assert_eq!(reply, msg.as_bytes());
        clients.push(c);
    }
    let per_loop: Vec<usize> = tally
        .accepted
        .iter()
        .map(|a| a.load(Ordering::SeqCst))
        .collect();
    assert_eq!(per_loop.iter().sum::<usize>(), CLIENTS);
    assert!(
        per_loop.iter().filter(|&&n| n > 0).count() >= 2,
        "connections all landed on one loop: {per_loop:?}"
    );

    // Each poster reaches its own loop: the closure runs on its thread.
    let (tx, rx) = mpsc::channel();
    for (i, p) in group.posters().iter().enumerate() {
        let tx = tx.clone();
        p.post(move |ctx| {
            let name = std::thread::current().name().map(str::to_owned);
            let _ = tx.send((i, name, ctx.loop_id()));
        })
        .unwrap();
    }
    let mut loop_ids = HashSet::new();
    for _ in 0..LOOPS {
        let (i, name, id) = rx.recv_timeout(TIMEOUT).unwrap();
        assert_eq!(name.as_deref(), Some(format!("netlib-loop-{i}").as_str()));
        loop_ids.insert(id);
    }
    assert_eq!(loop_ids.len(), LOOPS, "every loop has its own id");

    group.stop();
    group.join().unwrap();
    assert_eq!(
        tally.shutdown_closes.load(Ordering::SeqCst),
        CLIENTS + LOOPS,
        "every connection and every listener closes with Shutdown"
    );
    assert_eq!(tally.other_closes.load(Ordering::SeqCst), 0);
    // The server side is gone: clients read end-of-stream.
    for mut c in clients {
        let mut buf = [0u8; 1];
        assert_eq!(c.read(&mut buf).unwrap_or(0), 0);
    }
}

#[test]
fn init_error_is_returned_from_start_and_started_loops_stop() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let err = LoopGroup::start(3, netlib::Config::default(), move |ctx, i| {
        if i == 1 {
            return Err("no config for loop 1".into());
        }
        let l = ctx.listen(localhost(), &ListenOptions::default(), echo)?;
        tx.lock().unwrap().send(ctx.local_addr(l)?).unwrap();
        Ok(())
    })
    .unwrap_err();
    match &err {
        GroupError::Init { index: 1, error } => {
            assert_eq!(error.to_string(), "no config for loop 1")
        }
        other => panic!("unexpected error: {other}"),
    }
    // Loop 0 started, then was stopped: its listener is closed. Loop 2
    // never started.
    let addrs: Vec<_> = rx.try_iter().collect();
    assert_eq!(addrs.len(), 1);
    let refused = TcpStream::connect_timeout(&addrs[0], Duration::from_secs(2));
    assert!(
        refused.is_err(),
        "loop 0 still listening after start failed"
    );
}

#[test]
fn panic_on_a_loop_is_reported_by_join() {
    let group = LoopGroup::start(2, netlib::Config::default(), |_, _| Ok(())).unwrap();
    group.posters()[1]
        .post(|_| panic!("deliberate panic on loop 1"))
        .unwrap();
    // Loop 1's thread dies (at the latest while shutting down, which still
    // runs accepted posts); stop the other one and collect.
    group.stop();
    match group.join() {
        Err(GroupError::Panicked { index: 1 }) => {}
        other => panic!("expected loop 1 to be reported as panicked, got {other:?}"),
    }
}

#[test]
fn regression_handle_from_another_loop_is_an_error() {
    let mut a = EventDispatch::new().unwrap();
    let mut b = EventDispatch::new().unwrap();
    let ha = a
        .context()
        .listen(localhost(), &ListenOptions::default(), echo)
        .unwrap();
    let hb = b
        .context()
        .listen(localhost(), &ListenOptions::default(), echo)
        .unwrap();
    // Same slot on both loops: a handle keyed only by slot would hit B's.
    assert_eq!(ha.index(), hb.index());
    assert_ne!(ha.loop_id(), hb.loop_id());
    assert_ne!(ha, hb);

    let ctx = b.context();
    assert!(matches!(ctx.close(ha), Err(Error::WrongLoop)));
    assert!(matches!(ctx.local_addr(ha), Err(Error::WrongLoop)));
    assert!(matches!(ctx.send(ha, b"x"), Err(Error::WrongLoop)));
    assert!(matches!(ctx.set_nodelay(ha, true), Err(Error::WrongLoop)));
    assert!(matches!(
        ctx.add_socket_timer(ha, Duration::from_secs(1), None),
        Err(Error::WrongLoop)
    ));
    assert_eq!(ctx.state(ha), None);
    assert_eq!(ctx.state(hb), Some(netlib::SocketState::Listening));

    let ra = a.context().add_handler(echo);
    let ctx = b.context();
    assert!(matches!(
        ctx.listen_with(localhost(), &ListenOptions::default(), ra),
        Err(Error::WrongLoop)
    ));
    assert!(matches!(ctx.attach(hb, ra), Err(Error::WrongLoop)));
    assert!(matches!(
        ctx.add_handler_timer(ra, Duration::from_secs(1), None),
        Err(Error::WrongLoop)
    ));
    assert!(!ctx.remove_handler(ra));
    assert_eq!(
        Error::WrongLoop.to_string(),
        "handle belongs to another event loop"
    );
    // Nothing on B was touched; A's handler is still registered.
    assert_eq!(ctx.state(hb), Some(netlib::SocketState::Listening));
    assert!(a.context().remove_handler(ra));
}

#[test]
fn a_single_listener_does_not_share_its_port_unless_asked() {
    let opts = ListenOptions::default();
    let one = netlib::bind_reuseport(localhost(), 1, &opts).unwrap();
    let addr = one[0].local_addr().unwrap();
    // Another bind of the same port, even with SO_REUSEPORT, is refused.
    assert!(netlib::bind_reuseport(addr, 2, &opts).is_err());
    let shared = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    let one = netlib::bind_reuseport(localhost(), 1, &shared).unwrap();
    let addr = one[0].local_addr().unwrap();
    assert!(netlib::bind_reuseport(addr, 1, &shared).is_ok());
}

/// One listening socket shared (by `dup`) between loops with
/// `exclusive_wakeup`: every connection is accepted by exactly one loop;
/// idle loops take turns; a loop that closes its copy (gracefully or not)
/// leaves nothing behind, and the others take every later connection.
#[test]
fn loops_share_one_listener_with_exclusive_wakeups_and_hand_over_on_close() {
    let listener = std::net::TcpListener::bind(localhost()).unwrap();
    let addr = listener.local_addr().unwrap();
    let tally = Arc::new(Tally::default());
    let handles: Arc<Mutex<Vec<Option<Handle>>>> = Arc::new(Mutex::new(vec![None; LOOPS]));
    let (shared, recorded, t) = (Arc::new(listener), handles.clone(), tally.clone());
    let group = LoopGroup::start(LOOPS, netlib::Config::default(), move |ctx, i| {
        let opts = ListenOptions {
            exclusive_wakeup: true,
            ..ListenOptions::default()
        };
        let h = ctx.adopt_listener(shared.try_clone()?, &opts, counting_echo(t.clone(), i))?;
        recorded.lock().unwrap()[i] = Some(h);
        Ok(())
    })
    .unwrap();
    let round_trip = |n: usize| {
        for _ in 0..n {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c.write_all(b"ping").unwrap();
            let mut reply = [0u8; 4];
            c.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"ping");
        }
    };
    round_trip(CLIENTS);
    let accepted = |t: &Tally| -> Vec<usize> {
        t.accepted
            .iter()
            .map(|a| a.load(Ordering::SeqCst))
            .collect()
    };
    let first = accepted(&tally);
    assert_eq!(first.iter().sum::<usize>(), CLIENTS);
    // One client connecting again and again: the loop that accepted goes
    // to the back of the wait queue, so idle loops take turns instead of
    // the first one taking everything.
    assert!(first.iter().all(|&n| n > 0), "accepted per loop: {first:?}");

    // Loop 0 stops accepting; the handle may not be listening any more.
    let h0 = handles.lock().unwrap()[0].unwrap();
    let (tx, rx) = mpsc::channel();
    group.posters()[0]
        .post(move |ctx| {
            let _ = tx.send((ctx.close_listener_gracefully(h0), ctx.accept_pending(h0)));
        })
        .unwrap();
    let (closed, again) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert!(closed.is_ok());
    assert!(again.is_err(), "a closed listener cannot be swept");
    let before = accepted(&tally);
    round_trip(CLIENTS);
    let after = accepted(&tally);
    assert_eq!(after[0], before[0], "loop 0 accepted after closing");
    assert_eq!(after.iter().sum::<usize>(), 2 * CLIENTS);

    // A plain close too leaves no registration behind in loop 1's poll
    // set (the socket lives on in the other loops): one would take the
    // wake-ups meant for loop 2 and the clients below would hang.
    let h1 = handles.lock().unwrap()[1].unwrap();
    let (tx, rx) = mpsc::channel();
    group.posters()[1]
        .post(move |ctx| {
            let _ = tx.send(ctx.close(h1));
        })
        .unwrap();
    assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap().is_ok());
    round_trip(CLIENTS);
    let last = accepted(&tally);
    assert_eq!(last[2], after[2] + CLIENTS, "accepted per loop: {last:?}");
    group.stop();
    group.join().unwrap();
}
