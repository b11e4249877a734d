//! ServerGroup over real sockets: connections spread over the loops, each
//! loop keeps its own state, shared state is seen by all, a server
//! reference is refused on another loop, and stopping closes everything.

use imconn::{ConnConfig, ConnCtx, Connection, LineCodec, Server, ServerGroup};
use netlib::{CloseReason, ListenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Per loop: its index and the lines it served; shared: all lines.
struct PerLoop {
    index: usize,
    lines: u64,
    total: Arc<AtomicU64>,
    shutdowns: Arc<AtomicU64>,
}

struct Tag;
impl Connection for Tag {
    type Codec = LineCodec;
    type Shared = PerLoop;
    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, _line: &[u8]) {
        cx.shared.lines += 1;
        cx.shared.total.fetch_add(1, Ordering::Relaxed);
        let reply = format!("loop {}", cx.shared.index);
        let _ = cx.send(reply.as_str());
    }
    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if reason == CloseReason::Shutdown {
            cx.shared.shutdowns.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn connections_spread_over_loops_with_per_loop_and_shared_state() {
    let total = Arc::new(AtomicU64::new(0));
    let shutdowns = Arc::new(AtomicU64::new(0));
    let (t, s) = (total.clone(), shutdowns.clone());
    let group = ServerGroup::start(
        3,
        netlib::Config::default(),
        "127.0.0.1:0".parse().unwrap(),
        &ListenOptions::default(),
        move |ctx, index| {
            let state = PerLoop {
                index,
                lines: 0,
                total: t.clone(),
                shutdowns: s.clone(),
            };
            Server::<Tag>::register(ctx, state, |_, _| Some((Tag, ConnConfig::default())))
        },
    )
    .unwrap();
    assert_eq!(group.len(), 3);
    let mut clients = Vec::new();
    let mut loops_seen = std::collections::BTreeSet::new();
    for _ in 0..48 {
        let s = TcpStream::connect(group.local_addr().unwrap()).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut r = BufReader::new(s);
        r.get_mut().write_all(b"which\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        loops_seen.insert(line.trim_end().to_string());
        clients.push(r);
    }
    assert!(loops_seen.len() >= 2, "all on one loop: {loops_seen:?}");
    assert_eq!(total.load(Ordering::Relaxed), 48);

    // Each loop's own count, read on its own thread; they add up.
    let (tx, rx) = mpsc::channel();
    for i in 0..group.len() {
        let tx = tx.clone();
        group
            .post_to(i, move |s: &mut Server<Tag>, _| {
                let _ = tx.send((s.shared.index, s.shared.lines));
            })
            .unwrap();
    }
    let mut per_loop: Vec<(usize, u64)> =
        (0..3).map(|_| rx.recv_timeout(TIMEOUT).unwrap()).collect();
    per_loop.sort();
    assert_eq!(per_loop.iter().map(|p| p.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(per_loop.iter().map(|p| p.1).sum::<u64>(), 48);

    // A server reference used on another loop is an error, not a hit.
    let foreign = group.servers()[0];
    let (tx, rx) = mpsc::channel();
    group.posters()[1]
        .post(move |ctx| {
            let found = ctx
                .with_handler(foreign, |_: &mut Server<Tag>, _| ())
                .is_some();
            let _ = tx.send(found);
        })
        .unwrap();
    assert!(!rx.recv_timeout(TIMEOUT).unwrap());

    group.stop();
    group.join().unwrap();
    assert_eq!(shutdowns.load(Ordering::Relaxed), 48);
    for mut c in clients {
        let mut buf = [0u8; 16];
        assert_eq!(c.get_mut().read(&mut buf).unwrap(), 0);
    }
}

#[test]
fn a_unix_socket_group_serves_on_every_loop() {
    let dir = std::env::temp_dir().join(format!("imconn-unix-group-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("g.sock");
    let listener = netlib::bind_unix(&path, None, &ListenOptions::default()).unwrap();
    let total = Arc::new(AtomicU64::new(0));
    let t = total.clone();
    let group = ServerGroup::start_unix(
        2,
        netlib::Config::default(),
        listener,
        &ListenOptions::default(),
        move |ctx, index| {
            let state = PerLoop {
                index,
                lines: 0,
                total: t.clone(),
                shutdowns: Arc::default(),
            };
            Server::<Tag>::register(ctx, state, |_, a| {
                assert_eq!((a.peer, a.local), (None, None), "no IP addresses");
                Some((Tag, ConnConfig::default()))
            })
        },
    )
    .unwrap();
    assert_eq!(group.local_addr(), None);
    let mut loops_seen = std::collections::BTreeSet::new();
    for _ in 0..32 {
        let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let mut r = BufReader::new(s);
        r.get_mut().write_all(b"which\n").unwrap();
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert!(line.starts_with("loop "), "{line:?}");
        loops_seen.insert(line);
    }
    assert_eq!(total.load(Ordering::Relaxed), 32);
    assert!(!loops_seen.is_empty());
    group.stop();
    group.join().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}
