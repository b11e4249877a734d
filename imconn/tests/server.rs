//! The codec-generic connection server over real sockets: opt-in deadlines,
//! what the accept callback sees, sending to the current and to other
//! connections, high-water reports for fan-out, input bounds, and sockets
//! the server has no connection for.

use imconn::{
    Accepted, Codec, ConnConfig, ConnCtx, Connection, DecodeError, Limits, LineCodec, SendError,
    Server, Timeouts,
};
use netlib::{ConnectOptions, Context, EventDispatch, Handle, HandlerRef, ListenOptions, Poster};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A server on its own thread; `setup` registers it and returns the
/// listening addresses.
struct Running {
    addrs: Vec<SocketAddr>,
    server: HandlerRef,
    poster: Poster,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start(
        setup: impl FnOnce(&mut Context) -> (HandlerRef, Vec<SocketAddr>) + Send + 'static,
    ) -> Running {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut d = EventDispatch::new().unwrap();
            let (server, addrs) = setup(d.context());
            tx.send((server, addrs, d.poster())).unwrap();
            d.run().unwrap();
        });
        let (server, addrs, poster) = rx.recv().unwrap();
        Running {
            addrs,
            server,
            poster,
            thread: Some(thread),
        }
    }

    /// Runs `f` on the server inside the loop and returns its result.
    fn query<C: Connection, R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Server<C>, &mut Context) -> R + Send + 'static,
    ) -> R {
        let (tx, rx) = mpsc::channel();
        let server = self.server;
        self.poster
            .post(move |ctx| {
                let r = ctx.with_handler(server, |s: &mut Server<C>, ctx| f(s, ctx));
                let _ = tx.send(r.expect("server registered"));
            })
            .unwrap();
        rx.recv_timeout(TIMEOUT).unwrap()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.poster.stop();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn listen(ctx: &mut Context, server: HandlerRef) -> SocketAddr {
    let l = ctx
        .listen_with(
            "127.0.0.1:0".parse().unwrap(),
            &ListenOptions::default(),
            server,
        )
        .unwrap();
    ctx.local_addr(l).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// Reads until end-of-stream (or reset); panics if the peer stays open.
fn assert_closed_by_peer(s: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected the server to close the connection: {e}"),
        }
    }
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Echoes lines; records what the accept callback saw and high-water
/// reports.
#[derive(Default)]
struct Log {
    accepted: Vec<Accepted>,
    high_water: Vec<(Handle, usize)>,
}

struct Lines;
impl Connection for Lines {
    type Codec = LineCodec;
    type Shared = Log;
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, line: &[u8]) {
        if let Some(rest) = line.strip_prefix(b"blast ") {
            // Fan-out: fill every other connection's output queue.
            let kib: usize = std::str::from_utf8(rest).unwrap().parse().unwrap();
            let block = vec![b'x'; 1023];
            let me = cx.handle();
            for h in cx.conns().handles() {
                if h != me {
                    for _ in 0..kib {
                        let _ = cx.send_to(h, &block[..]);
                    }
                }
            }
            let _ = cx.send(&b"blasted"[..]);
        } else if line == b"deadline" {
            // A login deadline that, measured from the connect, has passed.
            cx.set_timeouts(Timeouts {
                login: Some(Duration::from_millis(100)),
                ..Timeouts::NONE
            });
        } else if line == b"both" {
            // The current connection through send_to, then through send.
            let me = cx.handle();
            cx.send_to(me, &b"first"[..]).unwrap();
            cx.send(&b"second"[..]).unwrap();
        } else {
            let _ = cx.send(line);
        }
    }
    fn on_high_water(&mut self, cx: &mut ConnCtx<'_, Self>, queued: usize) {
        let h = cx.handle();
        cx.shared.high_water.push((h, queued));
    }
}

fn read_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    line.trim_end().to_string()
}

#[test]
fn regression_plain_server_does_not_close_clients_that_never_log_in() {
    // One server, two ports: the first with no deadlines (a plain server),
    // the second with a 300 ms login deadline. The accept callback tells
    // them apart by the local address alone.
    let login_port = std::sync::Arc::new(std::sync::OnceLock::<u16>::new());
    let port = login_port.clone();
    let srv = Running::start(move |ctx| {
        let seen = port.clone();
        let server = Server::<Lines>::register(ctx, Log::default(), move |_, a: &Accepted| {
            let strict = a.local.map(|l| l.port()) == seen.get().copied();
            let config = if strict {
                ConnConfig {
                    timeouts: Timeouts {
                        login: Some(Duration::from_millis(300)),
                        ..Timeouts::NONE
                    },
                    ..ConnConfig::default()
                }
            } else {
                ConnConfig::default()
            };
            Some((Lines, config))
        });
        let plain = listen(ctx, server);
        let strict = listen(ctx, server);
        port.set(strict.port()).unwrap();
        (server, vec![plain, strict])
    });
    let mut plain = BufReader::new(connect(srv.addrs[0]));
    let mut strict = connect(srv.addrs[1]);
    std::thread::sleep(Duration::from_millis(800));
    assert_closed_by_peer(&mut strict);
    plain.get_mut().write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut plain), "still here");
}

#[test]
fn regression_a_deadline_already_passed_when_armed_still_closes() {
    // The policy timer is re-armed after the check that ran it; a deadline
    // that passed in between was dropped (no timer at all), so a silent
    // peer was never closed. set_timeouts re-arms the same way, with a
    // login deadline shortened from a minute to one that passed 200 ms ago.
    let srv = Running::start(|ctx| {
        let server = Server::<Lines>::register(ctx, Log::default(), |_, _: &Accepted| {
            let timeouts = Timeouts {
                login: Some(Duration::from_secs(60)),
                ..Timeouts::NONE
            };
            Some((
                Lines,
                ConnConfig {
                    timeouts,
                    ..ConnConfig::default()
                },
            ))
        });
        (server, vec![listen(ctx, server)])
    });
    let mut s = connect(srv.addrs[0]);
    std::thread::sleep(Duration::from_millis(300));
    s.write_all(b"deadline\n").unwrap();
    assert_closed_by_peer(&mut s);
}

#[test]
fn accept_sees_listener_peer_and_local_address() {
    let srv = Running::start(|ctx| {
        let server = Server::<Lines>::register(ctx, Log::default(), |log, a: &Accepted| {
            log.accepted.push(*a);
            Some((Lines, ConnConfig::default()))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    let mut c = BufReader::new(connect(srv.addrs[0]));
    c.get_mut().write_all(b"hi\n").unwrap();
    assert_eq!(read_line(&mut c), "hi");
    let client_addr = c.get_ref().local_addr().unwrap();
    let (accepted, listener_addr) = srv.query(|s: &mut Server<Lines>, ctx| {
        let a = s.shared.accepted[0];
        (a, ctx.local_addr(a.listener).unwrap())
    });
    assert_eq!(accepted.peer, Some(client_addr));
    assert_eq!(accepted.local, Some(srv.addrs[0]));
    assert_eq!(listener_addr, srv.addrs[0]);
}

#[test]
fn send_to_the_current_connection_is_like_sending_to_others() {
    let srv = Running::start(|ctx| {
        let server = Server::<Lines>::register(ctx, Log::default(), |_, _| {
            Some((Lines, ConnConfig::default()))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    let mut c = BufReader::new(connect(srv.addrs[0]));
    c.get_mut().write_all(b"both\n").unwrap();
    assert_eq!(read_line(&mut c), "first");
    assert_eq!(read_line(&mut c), "second");
    // A stale handle is an error, not a silent success.
    let h = srv.query(|s: &mut Server<Lines>, _| s.conns().handles()[0]);
    drop(c);
    wait_for("close", || {
        srv.query(|s: &mut Server<Lines>, _| s.conns().is_empty())
    });
    let err = srv.query(move |s: &mut Server<Lines>, ctx| s.send_to(ctx, h, &b"late"[..]));
    assert!(matches!(err, Err(SendError::Closed)), "{err:?}");
}

#[test]
fn regression_high_water_reported_when_another_connections_hook_sends() {
    let limits = Limits {
        high_water: 64 * 1024,
        hard_cap: 64 * 1024 * 1024,
        ..Limits::default()
    };
    let srv = Running::start(move |ctx| {
        let server = Server::<Lines>::register(ctx, Log::default(), move |_, _| {
            Some((
                Lines,
                ConnConfig {
                    limits,
                    ..ConnConfig::default()
                },
            ))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    // The victim never reads and never sends: no hook of its own runs.
    let victim = connect(srv.addrs[0]);
    let mut sender = BufReader::new(connect(srv.addrs[0]));
    wait_for("two connections", || {
        srv.query(|s: &mut Server<Lines>, _| s.conns().len() == 2)
    });
    sender.get_mut().write_all(b"blast 8192\n").unwrap();
    assert_eq!(read_line(&mut sender), "blasted");
    let reports = srv.query(|s: &mut Server<Lines>, _| s.shared.high_water.clone());
    assert_eq!(reports.len(), 1, "one crossing, one report: {reports:?}");
    let victim_handle = srv.query(move |s: &mut Server<Lines>, _| {
        s.conns()
            .iter()
            .map(|(h, _)| h)
            .find(|h| s.conns().io(*h).is_some_and(|io| io.queued() > 0))
    });
    assert_eq!(Some(reports[0].0), victim_handle);
    assert!(reports[0].1 >= 64 * 1024);
    drop(victim);
}

/// A codec that never finds a frame: only the server's own bound stops it.
#[derive(Clone, Default)]
struct NeverComplete;
impl Codec for NeverComplete {
    type Frame<'a> = ();
    fn decode(
        &mut self,
        _src: &[u8],
        _max_frame: usize,
    ) -> Result<Option<((), usize)>, DecodeError> {
        Ok(None)
    }
}

struct Hoarder;
impl Connection for Hoarder {
    type Codec = NeverComplete;
    /// The protocol errors reported, in order.
    type Shared = Vec<String>;
    fn on_frame(&mut self, _cx: &mut ConnCtx<'_, Self>, _frame: ()) {}
    fn on_protocol_error(&mut self, cx: &mut ConnCtx<'_, Self>, error: &DecodeError) {
        cx.shared.push(error.to_string());
    }
}

#[test]
fn incomplete_input_over_max_frame_closes_only_that_connection() {
    let srv = Running::start(|ctx| {
        let server = Server::<Hoarder>::register(ctx, Vec::new(), |_, _| {
            Some((
                Hoarder,
                ConnConfig {
                    max_frame: 1024,
                    ..ConnConfig::default()
                },
            ))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    let mut small = connect(srv.addrs[0]);
    small.write_all(&[b'a'; 512]).unwrap();
    let mut big = connect(srv.addrs[0]);
    big.write_all(&[b'a'; 4096]).unwrap();
    assert_closed_by_peer(&mut big);
    let held = srv.query(|s: &mut Server<Hoarder>, _| {
        s.conns()
            .iter()
            .map(|(h, _)| s.conns().io(h).unwrap().in_buf.len())
            .collect::<Vec<_>>()
    });
    assert_eq!(held, vec![512]);
    let errors = srv.query(|s: &mut Server<Hoarder>, _| s.shared.clone());
    assert_eq!(errors.len(), 1, "one protocol error reported: {errors:?}");
    assert!(errors[0].contains("1024"), "{errors:?}");
}

/// Lines, and every protocol error the server reports, by handle.
struct Reporter;
impl Connection for Reporter {
    type Codec = LineCodec;
    type Shared = Vec<(Handle, String)>;
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, _line: &[u8]) {
        let _ = cx.send("ok");
    }
    fn on_protocol_error(&mut self, cx: &mut ConnCtx<'_, Self>, error: &DecodeError) {
        let h = cx.handle();
        cx.shared.push((h, error.to_string()));
    }
}

#[test]
fn invalid_input_is_reported_to_on_protocol_error_before_the_close() {
    let srv = Running::start(|ctx| {
        let server = Server::<Reporter>::register(ctx, Vec::new(), |_, _| {
            Some((
                Reporter,
                ConnConfig {
                    max_frame: 16,
                    ..ConnConfig::default()
                },
            ))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    let mut good = BufReader::new(connect(srv.addrs[0]));
    let mut bad = connect(srv.addrs[0]);
    bad.write_all(&[b'x'; 40]).unwrap();
    assert_closed_by_peer(&mut bad);
    good.get_mut().write_all(b"hi\n").unwrap();
    assert_eq!(read_line(&mut good), "ok");
    let errors = srv.query(|s: &mut Server<Reporter>, _| s.shared.clone());
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].1.contains("line longer than 16"), "{errors:?}");
}

#[test]
fn regression_socket_without_connection_is_closed_not_spun() {
    // A socket attached to the server's handler behind its back (not
    // through accept or add_link): the server has no connection for it.
    // It must be closed, not left readable and re-offered every turn.
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let peer_addr = peer.local_addr().unwrap();
    let srv = Running::start(move |ctx| {
        let server = Server::<Lines>::register(ctx, Log::default(), |_, _| None);
        ctx.connect_with(peer_addr, &ConnectOptions::default(), server)
            .unwrap();
        (server, vec![])
    });
    let (mut s, _) = peer.accept().unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"anyone there?\n").unwrap();
    assert_closed_by_peer(&mut s);
    drop(srv);
}

/// Answers every line with a 64 KiB line; stops reading while more than
/// 256 KiB of answers wait.
struct Flood;
impl Connection for Flood {
    type Codec = LineCodec;
    type Shared = usize; // most output ever queued on one connection
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, _line: &[u8]) {
        let answer = vec![b'a'; 64 * 1024 - 2];
        let _ = cx.send(&answer[..]);
        let queued = cx.queued();
        *cx.shared = (*cx.shared).max(queued);
        if cx.io().queued() > 256 * 1024 {
            cx.pause_until_drained();
        }
    }
}

#[test]
fn pause_until_drained_bounds_output_and_resumes_by_itself() {
    let srv = Running::start(|ctx| {
        let server = Server::<Flood>::register(ctx, 0, |_, _| {
            let limits = Limits {
                hard_cap: 64 * 1024 * 1024,
                ..Limits::default()
            };
            Some((
                Flood,
                ConnConfig {
                    limits,
                    ..ConnConfig::default()
                },
            ))
        });
        let addr = listen(ctx, server);
        (server, vec![addr])
    });
    // 200 requests, 12.5 MiB of answers, and the client does not read yet.
    let mut c = connect(srv.addrs[0]);
    c.write_all(&b"more\n".repeat(200)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let held = srv.query(|s: &mut Server<Flood>, _| s.shared);
    assert!(
        held < 2 * 1024 * 1024,
        "{held} bytes queued for a peer that does not read"
    );
    // Reading everything proves reading resumed each time the queue drained.
    let mut got = 0usize;
    let mut buf = vec![0u8; 256 * 1024];
    while got < 200 * 64 * 1024 {
        let n = c.read(&mut buf).unwrap();
        assert!(n > 0, "closed after {got} bytes");
        got += n;
    }
    assert_eq!(got, 200 * 64 * 1024);
}
