//! Outgoing connections and the socket state machine: refused, timed out,
//! illegal operations, stale handles.

mod util;

use netlib::{
    CloseReason, ConnectOptions, Context, Error, Event, EventDispatch, ListenOptions, SocketState,
};
use std::rc::Rc;
use std::time::{Duration, Instant};
use util::*;

/// A loopback port with nobody listening.
fn closed_port() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

#[test]
fn connect_refused_gives_close_with_the_error() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let h = d
        .context()
        .connect(
            closed_port(),
            &ConnectOptions::default(),
            recorder(rec.clone()),
        )
        .unwrap();
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    let r = rec.borrow();
    match r.closed[&h] {
        CloseReason::Error(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
        other => panic!("expected refused, got {other:?}"),
    }
    assert_eq!(r.count(|e| matches!(e, Event::Confirm)), 0);
    assert_eq!(r.events.len(), 1, "only the Close: {:?}", r.events);
    assert_eq!(d.context().state(h), None, "handle is stale after Close");
    assert_eq!(d.context().socket_count(), 0);
}

#[test]
fn confirm_then_data_from_server() {
    let mut d = EventDispatch::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let rec: Shared = Rc::default();
    let h = d
        .context()
        .connect(addr, &ConnectOptions::default(), recorder(rec.clone()))
        .unwrap();
    assert_eq!(d.context().state(h), Some(SocketState::Connecting));
    let (mut s, _) = listener.accept().unwrap();
    std::io::Write::write_all(&mut s, b"welcome").unwrap();
    run_until(&mut d, "data", || {
        rec.borrow().data.get(&h).is_some_and(|v| v == b"welcome")
    });
    assert_eq!(rec.borrow().events[0], (h, Event::Confirm));
    assert_eq!(d.context().state(h), Some(SocketState::Connected));
}

/// Fills a listener's accept queue (it never accepts), so further connects
/// hang in SYN-SENT on loopback.
fn saturated_listener() -> (socket2::Socket, Vec<socket2::Socket>, std::net::SocketAddr) {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(
        &"127.0.0.1:0"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into(),
    )
    .unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_nonblocking(true).unwrap();
        let _ = s.connect(&addr.into());
        fillers.push(s);
    }
    std::thread::sleep(Duration::from_millis(50));
    (l, fillers, addr)
}

#[test]
fn connect_timeout_closes_with_timed_out() {
    let (_l, _fillers, addr) = saturated_listener();
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let opts = ConnectOptions {
        timeout: Some(Duration::from_millis(200)),
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let h = d
        .context()
        .connect(addr, &opts, recorder(rec.clone()))
        .unwrap();
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    assert_eq!(rec.borrow().closed[&h], CloseReason::TimedOut);
    assert!(start.elapsed() >= Duration::from_millis(200));
    assert_eq!(d.context().timer_count(), 0);
}

#[test]
fn illegal_operations_are_errors() {
    let mut d = EventDispatch::new().unwrap();
    let (_l, _fillers, hang) = saturated_listener();
    let ctx = d.context();
    // send while connecting
    let c = ctx
        .connect(hang, &ConnectOptions::default(), |_: &mut Context, _, _| {})
        .unwrap();
    assert!(matches!(
        ctx.send(c, b"x"),
        Err(Error::InvalidState {
            op: "send",
            state: SocketState::Connecting
        })
    ));
    // listen twice
    let l = ctx
        .listen(
            localhost(),
            &ListenOptions::default(),
            |_: &mut Context, _, _| {},
        )
        .unwrap();
    assert!(matches!(
        ctx.listen_on(l, localhost(), &ListenOptions::default()),
        Err(Error::InvalidState {
            op: "listen",
            state: SocketState::Listening
        })
    ));
    // connect on a listener, recv on a listener
    assert!(matches!(
        ctx.connect_on(l, hang, &ConnectOptions::default()),
        Err(Error::InvalidState { op: "connect", .. })
    ));
    assert!(matches!(
        ctx.recv(l, &mut [0u8; 4]),
        Err(Error::InvalidState { op: "recv", .. })
    ));
    // an idle socket can neither send nor receive
    let idle = ctx.create_socket(|_: &mut Context, _, _| {});
    assert_eq!(ctx.state(idle), Some(SocketState::Idle));
    assert!(matches!(
        ctx.send(idle, b"x"),
        Err(Error::InvalidState {
            state: SocketState::Idle,
            ..
        })
    ));
    ctx.listen_on(idle, localhost(), &ListenOptions::default())
        .unwrap();
    assert_eq!(ctx.state(idle), Some(SocketState::Listening));
}

/// Generation tags: a handle closed earlier never reaches the socket that
/// later took its slot.
#[test]
fn stale_handle_never_aliases_a_reused_slot() {
    let mut d = EventDispatch::new().unwrap();
    let ctx = d.context();
    let old = ctx
        .listen(
            localhost(),
            &ListenOptions::default(),
            |_: &mut Context, _, _| {},
        )
        .unwrap();
    ctx.close(old).unwrap();
    assert!(matches!(ctx.close(old), Err(Error::InvalidHandle)));
    d.run_once(Some(Duration::ZERO)).unwrap(); // delivers Close, frees the slot
    let ctx = d.context();
    let new = ctx
        .listen(
            localhost(),
            &ListenOptions::default(),
            |_: &mut Context, _, _| {},
        )
        .unwrap();
    assert_eq!(new.index(), old.index(), "slot is reused");
    assert_ne!(new, old);
    assert!(matches!(ctx.close(old), Err(Error::InvalidHandle)));
    assert!(matches!(ctx.local_addr(old), Err(Error::InvalidHandle)));
    assert_eq!(ctx.state(new), Some(SocketState::Listening));
}

/// A connect whose failure comes back from the kernel right away (port 0
/// is refused) is reported through Close like any other failure, so callers
/// retry along one path. Whether Linux fails it inside `connect()` or on the
/// first event, the handle and the Close event are the same.
#[test]
fn synchronous_connect_failure_is_reported_as_close() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let h = d
        .context()
        .connect(
            "127.0.0.1:0".parse().unwrap(),
            &ConnectOptions::default(),
            recorder(rec.clone()),
        )
        .unwrap();
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    assert!(matches!(rec.borrow().closed[&h], CloseReason::Error(_)));
}
