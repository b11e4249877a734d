//! Data path over real sockets: echo, many connections, data+FIN, half-close,
//! handing accepted sockets to other handlers, listen variants, options.

mod util;

use netlib::{
    CloseReason, Config, ConnectOptions, Context, Event, EventDispatch, Handle, ListenOptions,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::rc::Rc;
use util::*;

#[test]
fn echo_round_trip() {
    let mut d = EventDispatch::new().unwrap();
    let addr = listen_echo(&mut d);
    let poster = d.poster();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        for i in 0..100u32 {
            let msg = format!("message {i}");
            s.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        poster.stop();
    });
    d.run().unwrap();
    client.join().unwrap();
}

/// 1000 concurrent connections, all driven by a netlib client loop, each
/// echoing a distinct message.
#[test]
fn thousand_concurrent_echo_connections() {
    raise_nofile();
    const N: usize = 1000;
    let (addr, server_poster, server_thread) = spawn_echo_server();

    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let mut conns = Vec::new();
    let rec2 = rec.clone();
    let handler = move |ctx: &mut Context, h: Handle, ev: Event| {
        match ev {
            Event::Confirm => {
                let msg = format!("hello from connection {}", h.index());
                ctx.send(h, msg.as_bytes()).unwrap();
            }
            Event::Read => drain(ctx, h, &rec2),
            _ => {}
        }
        rec2.borrow_mut().events.push((h, ev));
    };
    let first = d
        .context()
        .connect(addr, &ConnectOptions::default(), handler)
        .unwrap();
    conns.push(first);
    for _ in 1..N {
        let h = d
            .context()
            .connect(addr, &ConnectOptions::default(), |_: &mut Context, _, _| {})
            .unwrap();
        d.context().share_handler(h, first).unwrap();
        conns.push(h);
    }
    run_until(&mut d, "all echoes", || {
        let r = rec.borrow();
        conns.iter().all(|h| {
            let want = format!("hello from connection {}", h.index());
            r.data.get(h).map(|v| v.len()) == Some(want.len())
        })
    });
    let r = rec.borrow();
    for h in &conns {
        let want = format!("hello from connection {}", h.index());
        assert_eq!(r.data[h], want.as_bytes());
    }
    assert_eq!(r.count(|e| matches!(e, Event::Confirm)), N);
    assert_eq!(r.count(|e| matches!(e, Event::Close(_))), 0);
    drop(r);
    server_poster.stop();
    server_thread.join().unwrap();
}

/// Regression (TeamTalk lost the end-of-stream): data and FIN arriving in one
/// readiness event deliver every byte, then Close(PeerClosed). A small read
/// budget makes the handler stop early several times on the way.
#[test]
fn regression_data_and_fin_together_deliver_all_data_then_close() {
    let config = Config {
        read_budget: 4096,
        ..Config::default()
    };
    let mut d = EventDispatch::with_config(config).unwrap();
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
    let payload: Vec<u8> = (0..60_000u32).map(|i| (i % 251) as u8).collect();
    // Everything, FIN included, is in the kernel before the loop first looks.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(&payload).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    run_until(&mut d, "close after data", || {
        !rec.borrow().closed.is_empty()
    });
    let r = rec.borrow();
    let (h, reason) = r.closed.iter().next().map(|(h, r)| (*h, *r)).unwrap();
    assert_eq!(reason, CloseReason::PeerClosed);
    assert_eq!(r.data[&h].len(), payload.len());
    assert_eq!(r.data[&h], payload);
    // The budget cut the reads into several Read events.
    assert!(r.count(|e| matches!(e, Event::Read)) >= payload.len() / 4096);
    // Close is the last event of that socket.
    assert!(matches!(
        r.events.iter().rev().find(|(x, _)| *x == h),
        Some((_, Event::Close(_)))
    ));
}

/// A socket cut off by the read budget is served again in the next turn
/// without a new edge, while another busy socket is also served.
#[test]
fn read_budget_shares_the_loop_between_busy_sockets() {
    let config = Config {
        read_budget: 1024,
        ..Config::default()
    };
    let mut d = EventDispatch::with_config(config).unwrap();
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
    let mut a = TcpStream::connect(addr).unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    run_until(&mut d, "accept", || rec.borrow().accepted().len() == 2);
    a.write_all(&[1u8; 20_000]).unwrap();
    b.write_all(&[2u8; 20_000]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    // One turn serves each socket at most one budget's worth.
    d.run_once(Some(std::time::Duration::from_millis(100)))
        .unwrap();
    {
        let r = rec.borrow();
        for v in r.data.values() {
            assert!(v.len() <= 1024, "one turn read {} bytes", v.len());
        }
    }
    // No new data arrives, yet the rest is delivered.
    run_until(&mut d, "rest of data", || {
        let r = rec.borrow();
        r.data.values().map(|v| v.len()).sum::<usize>() == 40_000
    });
}

#[test]
fn half_close_socket_reports_read_closed_and_can_still_send() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let rec2 = rec.clone();
    let opts = ListenOptions {
        half_close: true,
        ..ListenOptions::default()
    };
    let l = d
        .context()
        .listen(localhost(), &opts, move |ctx: &mut Context, h, ev| {
            recorder(rec2.clone())(ctx, h, ev);
            if let Event::ReadClosed = ev {
                // Reply after the peer finished, then close our side.
                let n = rec2.borrow().data.get(&h).map_or(0, |v| v.len());
                ctx.send(h, format!("got {n}").as_bytes()).unwrap();
                ctx.shutdown_write(h).unwrap();
            }
        })
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        s.write_all(b"12345").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = String::new();
        s.read_to_string(&mut reply).unwrap();
        reply
    });
    run_until(&mut d, "read closed", || {
        rec.borrow().count(|e| matches!(e, Event::ReadClosed)) == 1
    });
    assert_eq!(client.join().unwrap(), "got 5");
}

/// TeamTalk's NETLIB_OPT_SET_CALLBACK: the listener's handler hands each
/// accepted socket to a handler of its own.
#[test]
fn accepted_socket_can_be_handed_to_another_handler() {
    let mut d = EventDispatch::new().unwrap();
    let per_conn: Rc<RefCell<HashMap<Handle, Vec<String>>>> = Rc::default();
    let seen_by_listener = Rc::new(RefCell::new(Vec::new()));
    let (pc, sl) = (per_conn.clone(), seen_by_listener.clone());
    let l = d
        .context()
        .listen(
            localhost(),
            &ListenOptions::default(),
            move |ctx: &mut Context, h: Handle, ev: Event| {
                sl.borrow_mut().push(ev);
                if let Event::Connect { .. } = ev {
                    assert!(ctx.nodelay(h).unwrap(), "accepted sockets get TCP_NODELAY");
                    let pc = pc.clone();
                    ctx.set_handler(h, move |ctx: &mut Context, h: Handle, ev: Event| {
                        pc.borrow_mut()
                            .entry(h)
                            .or_default()
                            .push(format!("{ev:?}"));
                        echo(ctx, h, ev);
                    })
                    .unwrap();
                }
            },
        )
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"ping").unwrap();
        let mut b = [0u8; 4];
        s.read_exact(&mut b).unwrap();
        b
    });
    run_until(&mut d, "echo via new handler", || {
        per_conn
            .borrow()
            .values()
            .any(|v| v.iter().any(|e| e == "Read"))
    });
    assert_eq!(&client.join().unwrap(), b"ping");
    run_until(&mut d, "close", || {
        per_conn
            .borrow()
            .values()
            .any(|v| v.iter().any(|e| e.starts_with("Close")))
    });
    // The listener's handler saw only the Connect.
    assert!(seen_by_listener
        .borrow()
        .iter()
        .all(|e| matches!(e, Event::Connect { .. })));
}

#[test]
fn listen_on_several_addresses_ipv4_and_ipv6_with_one_handler() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let mut addrs = vec![localhost(), localhost()];
    let v6 = std::net::TcpListener::bind("[::1]:0").is_ok();
    if v6 {
        addrs.push("[::1]:0".parse().unwrap());
    }
    let ls = d
        .context()
        .listen_all(&addrs, &ListenOptions::default(), recorder(rec.clone()))
        .unwrap();
    assert_eq!(ls.len(), addrs.len());
    let mut clients = Vec::new();
    for l in &ls {
        let a = d.context().local_addr(*l).unwrap();
        clients.push(TcpStream::connect(a).unwrap());
    }
    run_until(&mut d, "accept on every listener", || {
        rec.borrow().accepted().len() == ls.len()
    });
    let r = rec.borrow();
    let listeners: Vec<Handle> = r
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            Event::Connect { listener } => Some(*listener),
            _ => None,
        })
        .collect();
    for l in &ls {
        assert!(listeners.contains(l));
    }
}

#[test]
fn reuse_port_lets_two_listeners_share_a_port() {
    let mut d = EventDispatch::new().unwrap();
    let opts = ListenOptions {
        reuse_port: true,
        ..ListenOptions::default()
    };
    let a = d.context().listen(localhost(), &opts, echo).unwrap();
    let addr = d.context().local_addr(a).unwrap();
    let b = d.context().listen(addr, &opts, echo).unwrap();
    assert_eq!(d.context().local_addr(b).unwrap(), addr);
    // Without SO_REUSEPORT the same bind fails with a clear error.
    let err = d
        .context()
        .listen(addr, &ListenOptions::default(), echo)
        .unwrap_err();
    assert!(matches!(err, netlib::Error::Io(ref e) if e.kind() == std::io::ErrorKind::AddrInUse));
}

#[test]
fn socket_options_read_back() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let addr = listen_echo(&mut d);
    let h = d
        .context()
        .connect(addr, &ConnectOptions::default(), recorder(rec.clone()))
        .unwrap();
    run_until(&mut d, "confirm", || {
        rec.borrow().count(|e| matches!(e, Event::Confirm)) == 1
    });
    let ctx = d.context();
    assert_eq!(ctx.peer_addr(h).unwrap(), addr);
    assert_eq!(ctx.local_addr(h).unwrap().ip(), addr.ip());
    assert!(ctx.nodelay(h).unwrap());
    ctx.set_nodelay(h, false).unwrap();
    assert!(!ctx.nodelay(h).unwrap());
    ctx.set_send_buffer_size(h, 64 * 1024).unwrap();
    assert!(ctx.send_buffer_size(h).unwrap() >= 64 * 1024);
    ctx.set_recv_buffer_size(h, 32 * 1024).unwrap();
    assert!(ctx.recv_buffer_size(h).unwrap() >= 32 * 1024);
    ctx.set_keepalive(h, Some(std::time::Duration::from_secs(30)))
        .unwrap();
    assert!(ctx.keepalive(h).unwrap());
    ctx.set_keepalive(h, None).unwrap();
    assert!(!ctx.keepalive(h).unwrap());
}

/// A request that arrives together with the peer's FIN can still be
/// answered from the Read callback that sees the end-of-stream.
#[test]
fn request_arriving_with_fin_can_be_answered() {
    let mut d = EventDispatch::new().unwrap();
    let rec: Shared = Rc::default();
    let l = d
        .context()
        .listen(localhost(), &ListenOptions::default(), {
            let rec = rec.clone();
            move |ctx: &mut Context, h: Handle, ev: Event| {
                recorder(rec.clone())(ctx, h, ev);
                if ev == Event::Read {
                    let got = rec.borrow().data.get(&h).cloned().unwrap_or_default();
                    if !got.is_empty() {
                        // recorder drained to end-of-stream already
                        ctx.send(h, b"reply:").unwrap();
                        ctx.send(h, &got).unwrap();
                    }
                }
            }
        })
        .unwrap();
    let addr = d.context().local_addr(l).unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"question").unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(50));
    run_until(&mut d, "close", || !rec.borrow().closed.is_empty());
    assert_eq!(
        *rec.borrow().closed.values().next().unwrap(),
        CloseReason::PeerClosed
    );
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    assert_eq!(reply, "reply:question");
}
