//! Outgoing connections of a connection server ([`Server::connect`],
//! [`ConnCtx::connect`]), half-closing another connection
//! ([`ConnCtx::shutdown_conn`]), and `pause_read` ending a read batch.

use imconn::{ConnConfig, ConnCtx, Connection, RawCodec, Server};
use netlib::{
    CloseReason, ConnectOptions, Context, EventDispatch, Handle, HandlerRef, ListenOptions,
};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn run_until(d: &mut EventDispatch, what: &str, mut done: impl FnMut(&mut Context) -> bool) {
    let start = Instant::now();
    while !done(d.context()) {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        d.run_once(Some(Duration::from_millis(10))).unwrap();
    }
}

/// What the outgoing connections saw.
#[derive(Default)]
struct Log {
    confirmed: u32,
    received: Vec<u8>,
    closed: Vec<CloseReason>,
}

/// An outgoing connection that says hello once connected.
struct Hello;
impl Connection for Hello {
    type Codec = RawCodec;
    type Shared = Log;
    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.shared.confirmed += 1;
        cx.send(&b"hello"[..]).unwrap();
    }
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        cx.shared.received.extend_from_slice(data);
    }
    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        cx.shared.closed.push(reason);
    }
}

fn log<R>(ctx: &mut Context, srv: HandlerRef, f: impl FnOnce(&Log) -> R) -> R {
    ctx.with_handler(srv, |s: &mut Server<Hello>, _| f(&s.shared))
        .unwrap()
}

fn connect(d: &mut EventDispatch, srv: HandlerRef, addr: SocketAddr) -> netlib::Result<Handle> {
    d.context()
        .with_handler(srv, |s: &mut Server<Hello>, ctx| {
            s.connect(
                ctx,
                addr,
                &ConnectOptions::default(),
                Hello,
                ConnConfig::default(),
            )
        })
        .unwrap()
}

#[test]
fn server_connect_confirms_and_the_connection_is_served() {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = peer.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(&buf).unwrap();
    });
    let mut d = EventDispatch::new().unwrap();
    // Nothing is accepted: the server only has its outgoing connection.
    let srv = Server::<Hello>::register(d.context(), Log::default(), |_, _| None);
    let h = connect(&mut d, srv, addr).unwrap();
    run_until(&mut d, "the echo", |ctx| {
        log(ctx, srv, |l| l.received.len()) == 5
    });
    echo.join().unwrap();
    run_until(&mut d, "the close", |ctx| {
        !log(ctx, srv, |l| l.closed.is_empty())
    });
    log(d.context(), srv, |l| {
        assert_eq!(l.confirmed, 1);
        assert_eq!(l.received, b"hello");
        assert_eq!(l.closed, [CloseReason::PeerClosed]);
    });
    assert!(d
        .context()
        .with_handler(srv, |s: &mut Server<Hello>, _| s.conns().get(h).is_none())
        .unwrap());
}

#[test]
fn a_failed_connect_reaches_on_close_with_the_reason() {
    // A port nobody listens on.
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut d = EventDispatch::new().unwrap();
    let srv = Server::<Hello>::register(d.context(), Log::default(), |_, _| None);
    connect(&mut d, srv, addr).unwrap();
    run_until(&mut d, "the failure", |ctx| {
        !log(ctx, srv, |l| l.closed.is_empty())
    });
    log(d.context(), srv, |l| {
        assert_eq!(l.confirmed, 0);
        assert!(
            matches!(l.closed[..], [CloseReason::Error(_)]),
            "{:?}",
            l.closed
        );
    });
}

/// A one-backend forwarder built from hooks: the client's `on_connect`
/// opens the backend with `ConnCtx::connect`, and a peer's end-of-stream is
/// passed on with `shutdown_conn`.
struct Forward {
    partner: Option<Handle>,
}
impl Connection for Forward {
    type Codec = RawCodec;
    type Shared = SocketAddr;
    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.pause_read(); // until the backend is there
        let opts = ConnectOptions {
            half_close: true,
            ..ConnectOptions::default()
        };
        let backend = Forward {
            partner: Some(cx.handle()),
        };
        let to = *cx.shared;
        self.partner = Some(
            cx.connect(to, &opts, backend, ConnConfig::default())
                .unwrap(),
        );
    }
    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let client = self.partner.unwrap();
        let _ = cx.ctx.resume_read(client);
    }
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        cx.send_bytes_to(self.partner.unwrap(), data).unwrap();
    }
    fn on_read_closed(&mut self, cx: &mut ConnCtx<'_, Self>) {
        assert!(cx.shutdown_conn(self.partner.unwrap()));
    }
}

#[test]
fn a_hook_connects_onward_and_carries_half_close() {
    // The backend reads to end-of-stream, answers, and reads the
    // end-of-stream of the answer's direction too.
    let backend = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = backend.local_addr().unwrap();
    let backend = std::thread::spawn(move || {
        let (mut s, _) = backend.accept().unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).unwrap();
        write!(s, "got {} bytes", got.len()).unwrap();
    });
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut d = EventDispatch::new().unwrap();
        let ctx = d.context();
        let srv = Server::<Forward>::register(ctx, to, |_, _| {
            Some((Forward { partner: None }, ConnConfig::default()))
        });
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let l = ctx
            .listen_with("127.0.0.1:0".parse().unwrap(), &opts, srv)
            .unwrap();
        tx.send((ctx.local_addr(l).unwrap(), d.poster())).unwrap();
        d.run().unwrap();
    });
    let (addr, poster) = rx.recv().unwrap();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&[7u8; 300_000]).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    assert_eq!(answer, "got 300000 bytes");
    backend.join().unwrap();
    poster.stop();
    t.join().unwrap();
}

/// Counts bytes; pauses itself on its first frame while `pause` is set.
struct Pauser {
    pause: bool,
}
impl Connection for Pauser {
    type Codec = RawCodec;
    type Shared = usize;
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        *cx.shared += data.len();
        if self.pause {
            cx.pause_read();
        }
    }
}

#[test]
fn pause_read_in_on_frame_ends_the_read_batch() {
    const TOTAL: usize = 1 << 20;
    let mut d = EventDispatch::new().unwrap();
    let ctx = d.context();
    let srv = Server::<Pauser>::register(ctx, 0, |_, _| {
        Some((Pauser { pause: true }, ConnConfig::default()))
    });
    let l = ctx
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            srv,
        )
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&vec![1u8; TOTAL]).unwrap();
        s
    });
    let got = |ctx: &mut Context| {
        ctx.with_handler(srv, |s: &mut Server<Pauser>, _| s.shared)
            .unwrap()
    };
    run_until(&mut d, "the first frame", |ctx| got(ctx) > 0);
    // More is waiting in the kernel (the loop's read budget is 256 KiB a
    // turn), but nothing past the first 64 KiB chunk is read.
    let until = Instant::now() + Duration::from_millis(200);
    while Instant::now() < until {
        d.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    let first = got(d.context());
    assert!(first <= 64 * 1024, "read {first} bytes after pausing");
    // Resumed, the rest flows.
    d.context()
        .with_handler(srv, |s: &mut Server<Pauser>, ctx| {
            let h = s.conns().handles()[0];
            s.with_conn(ctx, h, |c, cx| {
                c.pause = false;
                cx.resume_read();
            });
        });
    run_until(&mut d, "everything", |ctx| got(ctx) == TOTAL);
    drop(client.join().unwrap());
}
