//! Everything a callback may do to the dispatcher from inside a callback:
//! close itself, send on or close another socket, connect, listen, add and
//! cancel timers (its own included), and stop the loop.

mod util;

use netlib::{CloseReason, ConnectOptions, Context, Event, EventDispatch, Handle, ListenOptions};
use std::cell::{Cell, RefCell};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::Duration;
use util::*;

/// Accepts `n` connections into a recording listener, returning the client
/// streams and the accepted handles.
fn accept_n(
    d: &mut EventDispatch,
    rec: &Shared,
    n: usize,
    handler: impl netlib::Handler,
) -> (Vec<TcpStream>, Vec<Handle>) {
    let l = d
        .context()
        .listen(localhost(), &ListenOptions::default(), handler)
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let clients: Vec<TcpStream> = (0..n).map(|_| TcpStream::connect(addr).unwrap()).collect();
    run_until(d, "accepts", || rec.borrow().accepted().len() == n);
    let accepted = rec.borrow().accepted();
    (clients, accepted)
}

#[test]
fn handler_closes_its_own_socket_from_read() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let r2 = rec.clone();
    let (mut clients, _) = accept_n(&mut d, &rec, 1, move |ctx: &mut Context, h, ev| {
        r2.borrow_mut().events.push((h, ev));
        if let Event::Read = ev {
            ctx.close(h).unwrap();
            // Still inside the callback: the socket is gone for I/O.
            assert!(ctx.send(h, b"x").is_err());
        }
        if let Event::Close(r) = ev {
            r2.borrow_mut().closed.insert(h, r);
        }
    });
    clients[0].write_all(b"bye").unwrap();
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    assert_eq!(
        *rec.borrow().closed.values().next().unwrap(),
        CloseReason::Local
    );
    let mut buf = [0u8; 1];
    clients[0].set_read_timeout(Some(TIMEOUT)).unwrap();
    // Closed with the request unread, so the kernel may answer with a reset.
    match clients[0].read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("peer should see the close, got {other:?}"),
    }
}

/// Events still queued for a socket closed earlier in the same batch are
/// dropped: two sockets become readable in one poll; whichever is served
/// first closes the other, which then gets its Close and nothing else.
#[test]
fn events_for_a_socket_closed_earlier_in_the_batch_are_dropped() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let r2 = rec.clone();
    let (mut clients, accepted) = accept_n(&mut d, &rec, 2, move |ctx: &mut Context, h, ev| {
        r2.borrow_mut().events.push((h, ev));
        if let Event::Read = ev {
            let accepted = r2.borrow().accepted();
            for other in accepted.into_iter().filter(|o| *o != h) {
                let _ = ctx.close(other);
            }
            drain(ctx, h, &r2);
        }
    });
    clients[0].write_all(b"a").unwrap();
    clients[1].write_all(b"b").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    d.run_once(Some(Duration::from_millis(100))).unwrap();
    let r = rec.borrow();
    let reads: Vec<Handle> = r
        .events
        .iter()
        .filter(|(_, e)| *e == Event::Read)
        .map(|(h, _)| *h)
        .collect();
    assert_eq!(reads.len(), 1, "events: {:?}", r.events);
    let victim = *accepted.iter().find(|h| **h != reads[0]).unwrap();
    let victim_events: Vec<Event> = r
        .events
        .iter()
        .filter(|(h, _)| *h == victim)
        .map(|(_, e)| *e)
        .skip(1) // its Connect
        .collect();
    assert_eq!(victim_events, vec![Event::Close(CloseReason::Local)]);
}

#[test]
fn callback_sends_on_another_socket_and_connects_and_listens() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let r2 = rec.clone();
    let created: Rc<RefCell<Vec<Handle>>> = Rc::default();
    let c2 = created.clone();
    let (mut clients, accepted) = accept_n(&mut d, &rec, 2, move |ctx: &mut Context, h, ev| {
        r2.borrow_mut().events.push((h, ev));
        if let Event::Read = ev {
            let mut buf = [0u8; 64];
            // Read may be spurious (the loop re-offers sockets it has not
            // seen drained), so WouldBlock is normal here.
            let Ok(n @ 1..) = ctx.recv(h, &mut buf) else {
                return;
            };
            // Relay to every other accepted socket.
            for other in r2.borrow().accepted().into_iter().filter(|o| *o != h) {
                ctx.send(other, &buf[..n]).unwrap();
            }
            // And open a listener and a connection to it, from inside.
            let l = ctx
                .listen(
                    localhost(),
                    &ListenOptions::default(),
                    |_: &mut Context, _, _| {},
                )
                .unwrap();
            let a = ctx.local_addr(l).unwrap();
            let c3 = c2.clone();
            let c = ctx
                .connect(
                    a,
                    &ConnectOptions::default(),
                    move |_: &mut Context, h, ev| {
                        if ev == Event::Confirm {
                            c3.borrow_mut().push(h);
                        }
                    },
                )
                .unwrap();
            c2.borrow_mut().extend([l, c]);
        }
    });
    assert_eq!(accepted.len(), 2);
    clients[0].write_all(b"relayed").unwrap();
    let mut buf = [0u8; 7];
    clients[1].set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut second = clients[1].try_clone().unwrap();
    let reader = std::thread::spawn(move || {
        second.read_exact(&mut buf).unwrap();
        buf
    });
    // [listener, connection, connection again once confirmed]
    run_until(&mut d, "connect made inside callback", || {
        created.borrow().len() == 3
    });
    assert_eq!(created.borrow()[1], created.borrow()[2]);
    assert_eq!(&reader.join().unwrap(), b"relayed");
}

#[test]
fn callbacks_add_and_cancel_timers_including_their_own() {
    let mut d = EventDispatch::new().unwrap();
    let fired: Rc<RefCell<Vec<&'static str>>> = Rc::default();
    let ctx = d.context();
    // A repeating timer that cancels itself on its third firing.
    let f = fired.clone();
    let count = Rc::new(Cell::new(0));
    ctx.add_repeating_timer(Duration::from_millis(1), move |ctx, id| {
        count.set(count.get() + 1);
        f.borrow_mut().push("self");
        if count.get() == 3 {
            assert!(ctx.cancel_timer(id));
        }
    });
    // A timer that cancels another and adds a new one.
    let f = fired.clone();
    let doomed = ctx.add_timer(Duration::from_millis(30), {
        let f = f.clone();
        move |_, _| f.borrow_mut().push("doomed")
    });
    ctx.add_timer(Duration::from_millis(5), move |ctx, _| {
        assert!(ctx.cancel_timer(doomed));
        let f = f.clone();
        ctx.add_timer(Duration::from_millis(1), move |_, _| {
            f.borrow_mut().push("added")
        });
    });
    run_until(&mut d, "timers", || fired.borrow().contains(&"added"));
    // Let the cancelled one's deadline pass.
    let until = std::time::Instant::now() + Duration::from_millis(50);
    run_until(&mut d, "wait", || std::time::Instant::now() > until);
    let fired = fired.borrow();
    assert_eq!(fired.iter().filter(|s| **s == "self").count(), 3);
    assert!(!fired.contains(&"doomed"));
    assert_eq!(d.context().timer_count(), 0);
}

#[test]
fn socket_timer_cancels_itself_and_closes_its_socket() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let r2 = rec.clone();
    let (_clients, accepted) = accept_n(&mut d, &rec, 1, move |ctx: &mut Context, h, ev| {
        r2.borrow_mut().events.push((h, ev));
        match ev {
            Event::Connect { .. } => {
                ctx.add_socket_timer(h, Duration::from_millis(1), Some(Duration::from_millis(1)))
                    .unwrap();
            }
            Event::Timer(id) => {
                let ticks = r2.borrow().count(|e| matches!(e, Event::Timer(_)));
                if ticks == 2 {
                    assert!(ctx.cancel_timer(id));
                    ctx.close(h).unwrap();
                }
            }
            Event::Close(r) => {
                r2.borrow_mut().closed.insert(h, r);
            }
            _ => {}
        }
    });
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    assert_eq!(rec.borrow().count(|e| matches!(e, Event::Timer(_))), 2);
    assert_eq!(rec.borrow().closed[&accepted[0]], CloseReason::Local);
    assert_eq!(d.context().timer_count(), 0);
}

#[test]
fn stop_from_inside_a_handler_shuts_down_and_closes_everything() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let r2 = rec.clone();
    let (mut clients, accepted) = accept_n(&mut d, &rec, 3, move |ctx: &mut Context, h, ev| {
        r2.borrow_mut().events.push((h, ev));
        match ev {
            Event::Read => ctx.stop(),
            Event::Close(r) => {
                r2.borrow_mut().closed.insert(h, r);
            }
            _ => {}
        }
    });
    clients[0].write_all(b"stop").unwrap();
    d.run().unwrap();
    let r = rec.borrow();
    for h in &accepted {
        assert_eq!(r.closed[h], CloseReason::Shutdown);
    }
    assert_eq!(r.closed.len(), accepted.len() + 1, "the listener too");
    assert!(matches!(d.run(), Err(netlib::Error::Stopped)));
}

/// A handler may hand its own socket to a new handler while running; the
/// old one is dropped once it returns.
#[test]
fn handler_replaces_itself() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let dropped = Rc::new(Cell::new(false));
    struct Once {
        rec: Shared,
        dropped: Rc<Cell<bool>>,
    }
    impl Drop for Once {
        fn drop(&mut self) {
            self.dropped.set(true);
        }
    }
    impl netlib::Handler for Once {
        fn on_event(&mut self, ctx: &mut Context, h: Handle, ev: Event) {
            if let Event::Confirm = ev {
                ctx.set_handler(h, recorder(self.rec.clone())).unwrap();
                assert!(!self.dropped.get(), "not dropped while running");
            }
        }
    }
    let addr = listen_echo(&mut d);
    let h = d
        .context()
        .connect(
            addr,
            &ConnectOptions::default(),
            Once {
                rec: rec.clone(),
                dropped: dropped.clone(),
            },
        )
        .unwrap();
    run_until(&mut d, "handover", || dropped.get());
    d.context().send(h, b"echo me").unwrap();
    run_until(&mut d, "echo", || {
        rec.borrow().data.get(&h).is_some_and(|v| v == b"echo me")
    });
}

/// A registered handler outlives its sockets, serves listeners and
/// connections made later, gets its own timers, and is reachable from posted
/// closures by type.
#[test]
fn registered_handler_serves_sockets_timers_and_posted_closures() {
    struct Server {
        events: Vec<Event>,
        ticks: u32,
        posted: u32,
    }
    impl netlib::Handler for Server {
        fn on_event(&mut self, ctx: &mut Context, h: Handle, ev: Event) {
            self.events.push(ev);
            echo(ctx, h, ev);
        }
        fn on_timer(&mut self, ctx: &mut Context, id: netlib::TimerId) {
            self.ticks += 1;
            if self.ticks == 3 {
                ctx.cancel_timer(id);
            }
        }
    }
    let mut d = EventDispatch::new().unwrap();
    let ctx = d.context();
    let server = ctx.add_handler(Server {
        events: vec![],
        ticks: 0,
        posted: 0,
    });
    let l = ctx
        .listen_with(localhost(), &ListenOptions::default(), server)
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let c = ctx
        .connect_with(addr, &ConnectOptions::default(), server)
        .unwrap();
    assert_eq!(ctx.handler_of(c).unwrap(), server);
    ctx.add_handler_timer(
        server,
        Duration::from_millis(1),
        Some(Duration::from_millis(1)),
    )
    .unwrap();
    let poster = d.poster();
    std::thread::spawn(move || {
        poster
            .post(move |ctx| {
                ctx.with_handler(server, |s: &mut Server, _| s.posted += 1)
                    .unwrap();
            })
            .unwrap();
    })
    .join()
    .unwrap();
    let done = Rc::new(Cell::new(false));
    let until = std::time::Instant::now() + Duration::from_millis(30);
    run_until(&mut d, "timers and events", || {
        std::time::Instant::now() > until || done.get()
    });
    let ctx = d.context();
    ctx.close(l).unwrap();
    ctx.close(c).unwrap();
    d.run_once(Some(Duration::ZERO)).unwrap();
    let ctx = d.context();
    let (ticks, posted, events) = ctx
        .with_handler(server, |s: &mut Server, _| {
            (s.ticks, s.posted, s.events.clone())
        })
        .expect("handler outlives its sockets while registered");
    assert_eq!(ticks, 3);
    assert_eq!(posted, 1);
    assert!(events.contains(&Event::Confirm));
    assert!(events.iter().any(|e| matches!(e, Event::Connect { .. })));
    assert!(
        ctx.with_handler(server, |_: &mut fn(&mut Context, Handle, Event), _| ())
            .is_none(),
        "wrong type"
    );
    assert!(ctx.remove_handler(server));
    assert!(!ctx.remove_handler(server));
    assert!(ctx.with_handler(server, |_: &mut Server, _| ()).is_none());
}
