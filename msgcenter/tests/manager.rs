//! The connection manager (xx_connection) over real loopback sockets,
//! driven by `update()` from the test's own loop - the seed's integration
//! case (connect, send, answer, close) and every error path.

use msgcenter::manager::{
    ConnId, Cx, Endpoint, Factory, Manager, ManagerConfig, ManagerError, State,
};
use msgcenter::value::Value;
use netlib::CloseReason;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// What the endpoints saw, in order.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<(String, ConnId, String)>>>);

impl Log {
    fn push(&self, who: &str, id: ConnId, what: String) {
        self.0.lock().unwrap().push((who.to_string(), id, what));
    }
    fn has(&self, who: &str, what: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .iter()
            .any(|(w, _, e)| w == who && e.starts_with(what))
    }
    fn of(&self, who: &str) -> Vec<String> {
        let all = self.0.lock().unwrap();
        all.iter()
            .filter(|(w, _, _)| w == who)
            .map(|(_, _, e)| e.clone())
            .collect()
    }
}

/// The seed's server: receives, answers, waits for the peer to close.
struct Answerer(Log);
impl Endpoint for Answerer {
    fn on_connect(&mut self, cx: &mut Cx<'_, '_>) {
        self.0.push("server", cx.id(), "connect".into());
    }
    fn on_message(&mut self, cx: &mut Cx<'_, '_>, v: Value) {
        self.0.push("server", cx.id(), format!("msg {v:?}"));
        let n = v.get("n").and_then(Value::as_int).unwrap_or(-1);
        cx.send(&Value::map([("answer", Value::Int(n + 1))]))
            .unwrap();
    }
    fn on_disconnect(&mut self, cx: &mut Cx<'_, '_>, reason: CloseReason) {
        self.0
            .push("server", cx.id(), format!("disconnect {reason}"));
    }
}

/// The seed's client: sends once connected, closes on the answer.
struct Asker(Log);
impl Endpoint for Asker {
    fn on_connect(&mut self, cx: &mut Cx<'_, '_>) {
        self.0.push("client", cx.id(), "connect".into());
        cx.send(&Value::map([("n", Value::Int(41))])).unwrap();
    }
    fn on_message(&mut self, cx: &mut Cx<'_, '_>, v: Value) {
        self.0.push("client", cx.id(), format!("msg {v:?}"));
        cx.close();
    }
    fn on_disconnect(&mut self, cx: &mut Cx<'_, '_>, reason: CloseReason) {
        self.0
            .push("client", cx.id(), format!("disconnect {reason}"));
    }
}

/// Relays every value to all connections of its type (a chat room).
struct Room;
impl Endpoint for Room {
    fn on_message(&mut self, cx: &mut Cx<'_, '_>, v: Value) {
        for id in cx.connected_of("room") {
            cx.send_to(id, &v).unwrap();
        }
    }
}

/// Remembers what it receives.
struct Member(Log, &'static str);
impl Endpoint for Member {
    fn on_message(&mut self, cx: &mut Cx<'_, '_>, v: Value) {
        self.0.push(self.1, cx.id(), format!("msg {v:?}"));
    }
}

fn manager(log: &Log) -> Manager {
    let mut f = Factory::new();
    let (a, b, c, d) = (log.clone(), log.clone(), log.clone(), log.clone());
    f.register("answerer", move || Answerer(a.clone())).unwrap();
    f.register_listener("server", "answerer").unwrap();
    f.register("asker", move || Asker(b.clone())).unwrap();
    f.register("room", || Room).unwrap();
    f.register_listener("room_server", "room").unwrap();
    f.register("alice", move || Member(c.clone(), "alice"))
        .unwrap();
    f.register("bob", move || Member(d.clone(), "bob")).unwrap();
    Manager::new(f, ManagerConfig::default()).unwrap()
}

/// Runs `update` until `done` holds.
fn run_until(mgr: &mut Manager, what: &str, mut done: impl FnMut(&mut Manager) -> bool) {
    let start = Instant::now();
    while !done(mgr) {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        mgr.update(Duration::from_millis(10)).unwrap();
    }
}

fn local() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

#[test]
fn connect_send_answer_close_as_in_the_seed() {
    let log = Log::default();
    let mut mgr = manager(&log);
    let server = mgr.create("server").unwrap();
    let addr = mgr.listen(server, local()).unwrap();
    assert_eq!(mgr.state(server), Some(State::Listening));
    let client = mgr.create("asker").unwrap();
    assert_eq!(mgr.state(client), Some(State::Idle));
    mgr.connect(client, addr).unwrap();
    assert_eq!(mgr.state(client), Some(State::Connecting));
    run_until(&mut mgr, "client disconnect", |_| {
        log.has("client", "disconnect")
    });
    run_until(&mut mgr, "server disconnect", |_| {
        log.has("server", "disconnect")
    });
    // The client closes after flushing (a half-close), so its own close
    // is reported once the server closed its side too.
    let client_side = log.of("client");
    assert_eq!(
        client_side[..2],
        ["connect", "msg Map({\"answer\": Int(42)})"]
    );
    assert!(client_side[2].starts_with("disconnect"), "{client_side:?}");
    assert_eq!(client_side.len(), 3);
    let server_side = log.of("server");
    assert_eq!(server_side[..2], ["connect", "msg Map({\"n\": Int(41)})"]);
    assert!(server_side[2].starts_with("disconnect"), "{server_side:?}");
    // The outgoing connection is idle again and can reconnect; the accepted
    // one is gone.
    assert_eq!(mgr.state(client), Some(State::Idle));
    let ids: Vec<ConnId> = mgr.connections().iter().map(|c| c.0).collect();
    assert_eq!(ids, vec![server, client]);
    mgr.connect(client, addr).unwrap();
    run_until(&mut mgr, "second answer", |_| {
        log.of("client")
            .iter()
            .filter(|e| e.starts_with("msg"))
            .count()
            == 2
    });
}

#[test]
fn wrong_calls_are_clear_errors() {
    let log = Log::default();
    let mut mgr = manager(&log);
    assert!(matches!(
        mgr.create("nope"),
        Err(ManagerError::UnknownType(_))
    ));
    let server = mgr.create("server").unwrap();
    let client = mgr.create("asker").unwrap();
    let err = mgr.listen(client, local()).unwrap_err();
    assert!(
        matches!(err, ManagerError::WrongType { op: "listen", .. }),
        "{err}"
    );
    let addr = mgr.listen(server, local()).unwrap();
    assert!(matches!(
        mgr.connect(server, addr),
        Err(ManagerError::WrongType { op: "connect", .. })
    ));
    // Listening twice: on the same listener, and on the same address.
    assert!(matches!(
        mgr.listen(server, local()),
        Err(ManagerError::WrongState { op: "listen", .. })
    ));
    let second = mgr.create("server").unwrap();
    match mgr.listen(second, addr) {
        Err(ManagerError::AlreadyListening(a)) => assert_eq!(a, addr),
        other => panic!("expected AlreadyListening, got {other:?}"),
    }
    // An address another socket holds: the system's error.
    let other = TcpListener::bind("127.0.0.1:0").unwrap();
    let err = mgr.listen(second, other.local_addr().unwrap()).unwrap_err();
    assert!(matches!(err, ManagerError::Net(_)), "{err}");
    assert_eq!(mgr.state(second), Some(State::Idle));
    // Send and close need a connection.
    assert!(matches!(
        mgr.send(client, &1),
        Err(ManagerError::WrongState { op: "send", .. })
    ));
    assert!(matches!(
        mgr.close(client),
        Err(ManagerError::WrongState { .. })
    ));
    assert!(matches!(
        mgr.send(999, &1),
        Err(ManagerError::NoSuchConnection(999))
    ));
    // Connecting twice.
    mgr.connect(client, addr).unwrap();
    assert!(matches!(
        mgr.connect(client, addr),
        Err(ManagerError::WrongState { op: "connect", .. })
    ));
    // Too large.
    run_until(&mut mgr, "connected", |m| {
        m.state(client) == Some(State::Connected)
    });
    let big = Value::Bytes(vec![0; 2 << 20]);
    assert!(matches!(
        mgr.send(client, &big),
        Err(ManagerError::TooLarge { .. })
    ));
    // Closing a listener frees its address for another listener.
    mgr.close(server).unwrap();
    assert_eq!(mgr.state(server), Some(State::Idle));
    assert_eq!(mgr.listen(second, addr).unwrap(), addr);
}

#[test]
fn a_failed_connect_reports_and_leaves_the_connection_reusable() {
    let log = Log::default();
    let mut mgr = manager(&log);
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = mgr.create("asker").unwrap();
    mgr.connect(client, dead).unwrap();
    run_until(&mut mgr, "connect failure", |_| {
        log.has("client", "disconnect")
    });
    assert!(!log.has("client", "connect"), "{:?}", log.of("client"));
    assert_eq!(mgr.state(client), Some(State::Idle));
    let server = mgr.create("server").unwrap();
    let addr = mgr.listen(server, local()).unwrap();
    mgr.connect(client, addr).unwrap();
    run_until(&mut mgr, "answer", |_| log.has("client", "msg"));
}

#[test]
fn bad_input_closes_only_that_connection() {
    let log = Log::default();
    let mut mgr = manager(&log);
    let server = mgr.create("server").unwrap();
    let addr = mgr.listen(server, local()).unwrap();
    // Not MessagePack: 0xc1 is never valid.
    let mut bad = TcpStream::connect(addr).unwrap();
    bad.write_all(&[0, 0, 0, 1, 0xc1]).unwrap();
    // Declares a frame over max_body.
    let mut huge = TcpStream::connect(addr).unwrap();
    huge.write_all(&[0x7f, 0, 0, 0]).unwrap();
    // A good one, by hand: the wire is a 4-byte length and MessagePack.
    let mut good = TcpStream::connect(addr).unwrap();
    let body = rmp_serde::to_vec_named(&Value::map([("n", Value::Int(1))])).unwrap();
    good.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    good.write_all(&body).unwrap();
    run_until(&mut mgr, "two disconnects and an answer", |_| {
        let s = log.of("server");
        s.iter().filter(|e| e.starts_with("disconnect")).count() == 2
            && s.iter().any(|e| e.contains("Int(1)"))
    });
    for s in [&mut bad, &mut huge] {
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    good.set_read_timeout(Some(WAIT)).unwrap();
    let mut len = [0u8; 4];
    good.read_exact(&mut len).unwrap();
    let mut answer = vec![0; u32::from_be_bytes(len) as usize];
    good.read_exact(&mut answer).unwrap();
    let v: Value = rmp_serde::from_slice(&answer).unwrap();
    assert_eq!(v.get("answer").and_then(Value::as_int), Some(2));
}

#[test]
fn callbacks_reach_other_connections() {
    let log = Log::default();
    let mut mgr = manager(&log);
    let room = mgr.create("room_server").unwrap();
    let addr = mgr.listen(room, local()).unwrap();
    let alice = mgr.create("alice").unwrap();
    let bob = mgr.create("bob").unwrap();
    mgr.connect(alice, addr).unwrap();
    mgr.connect(bob, addr).unwrap();
    run_until(&mut mgr, "both connected and accepted", |m| {
        m.state(alice) == Some(State::Connected)
            && m.state(bob) == Some(State::Connected)
            && m.connections().iter().filter(|c| c.1 == "room").count() == 2
    });
    mgr.send(alice, &"hi all").unwrap();
    run_until(&mut mgr, "broadcast", |_| {
        log.has("alice", "msg") && log.has("bob", "msg")
    });
    assert_eq!(log.of("bob"), vec!["msg Str(\"hi all\")".to_string()]);
}

#[test]
fn update_returns_promptly_when_nothing_happens() {
    let log = Log::default();
    let mut mgr = manager(&log);
    let start = Instant::now();
    for _ in 0..100 {
        mgr.update(Duration::ZERO).unwrap();
    }
    assert!(start.elapsed() < Duration::from_secs(5));
    let start = Instant::now();
    mgr.update(Duration::from_millis(50)).unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(40),
        "waited for events"
    );
}
