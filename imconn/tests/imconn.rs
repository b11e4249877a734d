//! ImConn over real sockets: bulk exchange, byte-at-a-time frames, malformed
//! frames, slow readers, heartbeats and idle timeouts, reconnecting links.

use imconn::{Backoff, ConnConfig, ConnCtx, Connection, ImServer, Limits, PduCodec, Timeouts};
use netlib::{CloseReason, EventDispatch, Handle, HandlerRef, ListenOptions};
use pdu::{cid, sid, FrameDecoder, Header, Pdu, PduRef};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn run_until(
    d: &mut EventDispatch,
    what: &str,
    mut done: impl FnMut(&mut netlib::Context) -> bool,
) {
    let start = Instant::now();
    while !done(d.context()) {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        d.run_once(Some(Duration::from_millis(10))).unwrap();
    }
}

/// Echoes frames.
struct Echo;
impl Connection for Echo {
    type Codec = PduCodec;
    type Shared = ();
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        let _ = cx.send_bytes(pdu.as_bytes());
    }
}

fn echo_server(d: &mut EventDispatch, config: ConnConfig) -> SocketAddr {
    let ctx = d.context();
    let srv = ImServer::<Echo>::register(ctx, (), move |_, _| Some((Echo, config)));
    let l = ctx
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            srv,
        )
        .unwrap();
    ctx.local_addr(l).unwrap()
}

fn spawn_echo_server(
    config: ConnConfig,
) -> (SocketAddr, netlib::Poster, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut d = EventDispatch::new().unwrap();
        let addr = echo_server(&mut d, config);
        tx.send((addr, d.poster())).unwrap();
        d.run().unwrap();
    });
    let (addr, poster) = rx.recv().unwrap();
    (addr, poster, t)
}

fn frame(n: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Pdu::encode_bytes_into(
        &mut out,
        &Header::new(sid::MSG, cid::msg::DATA),
        &n.to_be_bytes(),
    )
    .unwrap();
    out
}

/// Client side of the bulk test: sends N numbered frames on confirm and
/// checks the echoes come back intact and in order.
struct Counter;
#[derive(Default)]
struct Tally {
    next: u32,
    bad: u32,
    confirmed: u32,
    closed: u32,
}
const BULK: u32 = 100_000;
impl Connection for Counter {
    type Codec = PduCodec;
    type Shared = Tally;
    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.shared.confirmed += 1;
        for i in 0..BULK {
            cx.send_bytes(&frame(i)).unwrap();
        }
    }
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        let n = u32::from_be_bytes(pdu.body().try_into().unwrap_or([0xff; 4]));
        if n != cx.shared.next || pdu.command_id() != cid::msg::DATA {
            cx.shared.bad += 1;
        }
        cx.shared.next += 1;
    }
    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, _reason: CloseReason) {
        cx.shared.closed += 1;
    }
}

fn tally(ctx: &mut netlib::Context, r: HandlerRef) -> (u32, u32, u32, u32) {
    ctx.with_handler(r, |s: &mut ImServer<Counter>, _| {
        (
            s.shared.next,
            s.shared.bad,
            s.shared.confirmed,
            s.shared.closed,
        )
    })
    .unwrap()
}

#[test]
fn two_peers_exchange_100k_pdus_intact_and_in_order() {
    let mut d = EventDispatch::new().unwrap();
    let addr = echo_server(&mut d, ConnConfig::server_link());
    let ctx = d.context();
    let client = ImServer::<Counter>::register(ctx, Tally::default(), |_, _| None);
    ctx.with_handler(client, |s: &mut ImServer<Counter>, ctx| {
        s.add_link(
            ctx,
            addr,
            ConnConfig::server_link(),
            Backoff::default(),
            |_| Counter,
        )
    });
    run_until(&mut d, "100k echoes", |ctx| tally(ctx, client).0 == BULK);
    let (next, bad, confirmed, closed) = tally(d.context(), client);
    assert_eq!((next, bad, confirmed, closed), (BULK, 0, 1, 0));
}

#[test]
fn frames_arriving_one_byte_at_a_time() {
    let (addr, poster, t) = spawn_echo_server(ConnConfig::client());
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_nodelay(true).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut wire = frame(7);
    wire.extend(frame(8));
    for b in &wire {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut back = vec![0u8; wire.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, wire);
    poster.stop();
    t.join().unwrap();
}

fn assert_closed(s: &mut TcpStream) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut b = [0u8; 64];
    match s.read(&mut b) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("expected the server to close, got {other:?}"),
    }
}

fn assert_echo(s: &mut TcpStream, n: u32) {
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(&frame(n)).unwrap();
    let mut back = vec![0u8; frame(n).len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, frame(n));
}

/// Regression (TeamTalk accepted declared lengths 0..15 and had no maximum):
/// a short or oversize length closes that connection only.
#[test]
fn regression_short_or_oversize_frame_closes_only_the_offender() {
    let (addr, poster, t) = spawn_echo_server(ConnConfig::client());
    let mut good = TcpStream::connect(addr).unwrap();
    assert_echo(&mut good, 1);
    for bad_len in [0u32, 5, 15, 5 * 1024 * 1024] {
        let mut bad = TcpStream::connect(addr).unwrap();
        let mut header = Header::new(sid::MSG, cid::msg::DATA).to_bytes();
        header[..4].copy_from_slice(&bad_len.to_be_bytes());
        bad.write_all(&header).unwrap();
        assert_closed(&mut bad);
        assert_echo(&mut good, bad_len);
    }
    // Unknown version too.
    let mut bad = TcpStream::connect(addr).unwrap();
    let mut f = frame(9);
    f[4..6].copy_from_slice(&7u16.to_be_bytes());
    bad.write_all(&f).unwrap();
    assert_closed(&mut bad);
    assert_echo(&mut good, 10);
    poster.stop();
    t.join().unwrap();
}

/// Server side of the slow-reader test: pushes 256 KiB frames every
/// millisecond to a peer that never reads.
struct Pusher;
#[derive(Default)]
struct PushStats {
    high_water: Vec<usize>,
    max_queued: usize,
    closed: Option<CloseReason>,
}
impl Connection for Pusher {
    type Codec = PduCodec;
    type Shared = PushStats;
    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.add_timer(Duration::from_millis(1), Some(Duration::from_millis(1)));
    }
    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, _id: netlib::TimerId) {
        let body = vec![0u8; 256 * 1024];
        if let Ok(status) = cx.send_pdu(
            &Header::new(sid::MSG, cid::msg::DATA),
            &pdu::proto::ImMsgData {
                msg_data: body,
                ..Default::default()
            },
        ) {
            cx.shared.max_queued = cx.shared.max_queued.max(status.queued);
        }
    }
    fn on_high_water(&mut self, cx: &mut ConnCtx<'_, Self>, queued: usize) {
        cx.shared.high_water.push(queued);
    }
    fn on_frame(&mut self, _cx: &mut ConnCtx<'_, Self>, _pdu: PduRef<'_>) {}
    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        cx.shared.closed = Some(reason);
    }
}

#[test]
fn reader_that_never_reads_hits_high_water_then_hard_cap() {
    let mut d = EventDispatch::new().unwrap();
    let config = ConnConfig {
        limits: Limits {
            high_water: 1024 * 1024,
            hard_cap: 4 * 1024 * 1024,
            ..Limits::default()
        },
        ..ConnConfig::client()
    };
    let ctx = d.context();
    let srv = ImServer::<Pusher>::register(ctx, PushStats::default(), move |_, _| {
        Some((Pusher, config))
    });
    let l = ctx
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            srv,
        )
        .unwrap();
    let addr = ctx.local_addr(l).unwrap();
    let _never_reads = TcpStream::connect(addr).unwrap();
    let closed = |ctx: &mut netlib::Context| {
        ctx.with_handler(srv, |s: &mut ImServer<Pusher>, _| s.shared.closed.is_some())
            .unwrap()
    };
    run_until(&mut d, "hard cap close", closed);
    d.context()
        .with_handler(srv, |s: &mut ImServer<Pusher>, _| {
            assert_eq!(s.shared.high_water.len(), 1, "high water reported once");
            assert!(s.shared.high_water[0] >= 1024 * 1024);
            assert!(
                s.shared.max_queued <= 4 * 1024 * 1024,
                "queue bounded by the cap"
            );
            assert_eq!(s.shared.closed, Some(CloseReason::Local));
            assert_eq!(s.conns().len(), 0);
        })
        .unwrap();
}

#[test]
fn heartbeat_sent_when_idle_and_silent_peer_closed() {
    let config = ConnConfig {
        timeouts: Timeouts {
            heartbeat: Some(Duration::from_millis(100)),
            idle: Some(Duration::from_millis(600)),
            login: None,
        },
        ..ConnConfig::client()
    };
    let (addr, poster, t) = spawn_echo_server(config);
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let start = Instant::now();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
    let elapsed = start.elapsed();
    let frames: Vec<_> = FrameDecoder::new()
        .frames(&buf)
        .map(|f| f.unwrap().command_id())
        .collect();
    assert!(
        frames.len() >= 3,
        "heartbeats every 100 ms for 600 ms: {frames:?}"
    );
    assert!(frames.iter().all(|c| *c == cid::other::HEARTBEAT));
    assert!(
        elapsed >= Duration::from_millis(600),
        "closed after {elapsed:?}"
    );
    poster.stop();
    t.join().unwrap();
}

#[test]
fn client_that_never_logs_in_is_closed_at_the_login_deadline() {
    let config = ConnConfig {
        timeouts: Timeouts {
            login: Some(Duration::from_millis(200)),
            ..Timeouts::CLIENT
        },
        ..ConnConfig::client()
    };
    let (addr, poster, t) = spawn_echo_server(config);
    let mut s = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    // Traffic does not help: only a login does.
    assert_echo(&mut s, 1);
    assert_closed(&mut s);
    assert!(start.elapsed() >= Duration::from_millis(200));
    poster.stop();
    t.join().unwrap();
}

/// Link side of the reconnect test: records attempts and connections.
struct LinkConn;
#[derive(Default)]
struct LinkLog {
    attempts: Vec<Instant>,
    confirms: u32,
}
impl Connection for LinkConn {
    type Codec = PduCodec;
    type Shared = LinkLog;
    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.shared.confirms += 1;
    }
    fn on_frame(&mut self, _cx: &mut ConnCtx<'_, Self>, _pdu: PduRef<'_>) {}
}

#[test]
fn link_retries_with_growing_delays_and_reconnects() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut d = EventDispatch::new().unwrap();
    let ctx = d.context();
    let client = ImServer::<LinkConn>::register(ctx, LinkLog::default(), |_, _| None);
    ctx.with_handler(client, |s: &mut ImServer<LinkConn>, ctx| {
        s.add_link(
            ctx,
            addr,
            ConnConfig::server_link(),
            Backoff::new(Duration::from_millis(20), Duration::from_millis(160)),
            |shared: &mut LinkLog| {
                shared.attempts.push(Instant::now());
                LinkConn
            },
        )
    });
    let log = |ctx: &mut netlib::Context| {
        ctx.with_handler(client, |s: &mut ImServer<LinkConn>, _| {
            (
                s.shared.attempts.clone(),
                s.shared.confirms,
                s.link_handle(0),
            )
        })
        .unwrap()
    };
    run_until(&mut d, "6 attempts", |ctx| log(ctx).0.len() >= 6);
    let (attempts, confirms, _) = log(d.context());
    assert_eq!(confirms, 0);
    let gaps: Vec<Duration> = attempts.windows(2).map(|w| w[1] - w[0]).collect();
    // 20, 40, 80, 160, 160 ms (plus up to 25% jitter): grows, then caps.
    assert!(gaps[0] >= Duration::from_millis(20));
    assert!(gaps[2] >= Duration::from_millis(80));
    assert!(gaps[4] >= Duration::from_millis(160));
    assert!(
        gaps[4] < Duration::from_millis(160 * 5 / 4 + 100),
        "capped: {gaps:?}"
    );

    // A listener appears: the link connects.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    run_until(&mut d, "connect", |ctx| log(ctx).1 == 1);
    let (accepted, _) = listener.accept().unwrap();
    // The listener goes away and the connection drops: the link notices.
    drop(listener);
    drop(accepted);
    run_until(&mut d, "link lost", |ctx| log(ctx).2.is_none());
    // And it comes back.
    let listener = std::net::TcpListener::bind(addr).unwrap();
    run_until(&mut d, "reconnect", |ctx| log(ctx).1 == 2);
    drop(listener);
}

#[test]
fn send_to_another_connection_from_a_hook() {
    // A two-member relay: whatever one client sends reaches the other.
    struct Relay;
    impl Connection for Relay {
        type Codec = PduCodec;
        type Shared = Vec<Handle>;
        fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
            let h = cx.handle();
            cx.shared.push(h);
        }
        fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
            let me = cx.handle();
            let others: Vec<Handle> = cx.shared.iter().copied().filter(|h| *h != me).collect();
            for h in others {
                cx.send_bytes_to(h, pdu.as_bytes()).unwrap();
            }
        }
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let mut d = EventDispatch::new().unwrap();
        let ctx = d.context();
        let srv = ImServer::<Relay>::register(ctx, Vec::new(), |_, _| {
            Some((Relay, ConnConfig::client()))
        });
        let l = ctx
            .listen_with(
                "127.0.0.1:0".parse().unwrap(),
                &ListenOptions::default(),
                srv,
            )
            .unwrap();
        tx.send((ctx.local_addr(l).unwrap(), d.poster())).unwrap();
        d.run().unwrap();
    });
    let (addr, poster) = rx.recv().unwrap();
    let mut a = TcpStream::connect(addr).unwrap();
    let mut b = TcpStream::connect(addr).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    a.write_all(&frame(42)).unwrap();
    b.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut back = vec![0u8; frame(42).len()];
    b.read_exact(&mut back).unwrap();
    assert_eq!(back, frame(42));
    poster.stop();
    t.join().unwrap();
}
