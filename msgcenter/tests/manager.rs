//! xx_connection's manager (`msgcenter::manager`): types and factories,
//! the state rules, and a client/server exchange driven by `update` from
//! the test's own loop, over loopback.

use msgcenter::manager::{decode, Conn, ConnCx, ConnId, ConnectionManager, ManagerError, State};
use netlib::CloseReason;
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener};
use std::rc::Rc;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(20);

/// What the connections saw, in order.
type Log = Rc<RefCell<Vec<String>>>;

/// Echoes every string back with a prefix; closes on "bye".
struct Echo(Log);
impl Conn for Echo {
    fn on_connect(&mut self, cx: &mut ConnCx<'_, '_>) {
        self.0
            .borrow_mut()
            .push(format!("echo {} connected", cx.id()));
    }
    fn on_value(&mut self, cx: &mut ConnCx<'_, '_>, body: &[u8]) {
        let s: String = decode(body).unwrap();
        if s == "bye" {
            cx.close();
        } else {
            cx.send(&format!("echo: {s}")).unwrap();
        }
    }
    fn on_disconnect(&mut self, cx: &mut ConnCx<'_, '_>, _reason: CloseReason) {
        self.0
            .borrow_mut()
            .push(format!("echo {} disconnected", cx.id()));
    }
}

/// Records what it gets.
struct Client(Log);
impl Conn for Client {
    fn on_connect(&mut self, _cx: &mut ConnCx<'_, '_>) {
        self.0.borrow_mut().push("client connected".into());
    }
    fn on_value(&mut self, _cx: &mut ConnCx<'_, '_>, body: &[u8]) {
        let s: String = decode(body).unwrap();
        self.0.borrow_mut().push(s);
    }
    fn on_disconnect(&mut self, _cx: &mut ConnCx<'_, '_>, reason: CloseReason) {
        self.0
            .borrow_mut()
            .push(format!("client disconnected: {reason}"));
    }
}

fn manager(log: &Log) -> ConnectionManager {
    let mut m = ConnectionManager::new().unwrap();
    let (a, b) = (log.clone(), log.clone());
    m.register("echo", true, move || Box::new(Echo(a.clone())));
    m.register("client", false, move || Box::new(Client(b.clone())));
    m
}

fn until(
    m: &mut ConnectionManager,
    what: &str,
    mut done: impl FnMut(&mut ConnectionManager) -> bool,
) {
    let start = Instant::now();
    while !done(m) {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        m.update(Duration::from_millis(10)).unwrap();
    }
}

fn has(log: &Log, line: &str) -> bool {
    log.borrow().iter().any(|l| l == line)
}

#[test]
fn a_client_and_a_server_exchange_values_through_update() {
    let log = Log::default();
    let mut m = manager(&log);
    let server = m.create("echo").unwrap();
    let addr = m.listen(server, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert_eq!(m.state(server).unwrap(), State::Listening(addr));
    let client = m.create("client").unwrap();
    m.connect(client, addr).unwrap();
    assert_eq!(m.state(client).unwrap(), State::Connecting);
    until(&mut m, "connected", |m| {
        m.state(client).unwrap() == State::Connected
    });
    for i in 0..10 {
        m.send(client, &format!("hello {i}")).unwrap();
    }
    until(&mut m, "echoes", |_| has(&log, "echo: hello 9"));
    let echoes: Vec<String> = log
        .borrow()
        .iter()
        .filter(|l| l.starts_with("echo: "))
        .cloned()
        .collect();
    assert_eq!(
        echoes,
        (0..10)
            .map(|i| format!("echo: hello {i}"))
            .collect::<Vec<_>>()
    );
    // The accepted side is a new connection of the listener's type.
    let ids = m.ids();
    assert_eq!(ids.len(), 3, "{ids:?}");
    let accepted: ConnId = *ids
        .iter()
        .find(|id| ![server, client].contains(id))
        .unwrap();
    assert!(has(&log, &format!("echo {accepted} connected")));
    // The server closes on "bye": the client hears it and is idle again.
    m.send(client, &"bye").unwrap();
    until(&mut m, "client disconnect", |m| {
        m.state(client).unwrap() == State::Idle
    });
    assert!(log
        .borrow()
        .iter()
        .any(|l| l.starts_with("client disconnected")));
    // Idle again: it may connect anew.
    m.connect(client, addr).unwrap();
    until(&mut m, "reconnected", |m| {
        m.state(client).unwrap() == State::Connected
    });
}

#[test]
fn the_rules_of_the_states_are_errors_not_surprises() {
    let log = Log::default();
    let mut m = manager(&log);
    assert!(matches!(
        m.create("nope"),
        Err(ManagerError::UnknownType(_))
    ));
    let client = m.create("client").unwrap();
    assert!(matches!(
        m.listen(client, "127.0.0.1:0".parse().unwrap()),
        Err(ManagerError::NotListenable(id)) if id == client
    ));
    assert!(matches!(
        m.send(client, &1u8),
        Err(ManagerError::InvalidState {
            state: State::Idle,
            ..
        })
    ));
    let a = m.create("echo").unwrap();
    let addr = m.listen(a, "127.0.0.1:0".parse().unwrap()).unwrap();
    assert!(matches!(
        m.listen(a, "127.0.0.1:0".parse().unwrap()),
        Err(ManagerError::InvalidState { .. })
    ));
    let b = m.create("echo").unwrap();
    let err = m.listen(b, addr).unwrap_err();
    assert!(
        matches!(err, ManagerError::AlreadyListening(x) if x == addr),
        "{err}"
    );
    assert!(err.to_string().contains("already listening"));
    m.connect(client, addr).unwrap();
    assert!(matches!(
        m.connect(client, addr),
        Err(ManagerError::InvalidState {
            state: State::Connecting,
            ..
        })
    ));
    assert!(matches!(m.state(999), Err(ManagerError::UnknownConn(999))));
    // Closing the listener frees the address for another connection.
    m.close(a).unwrap();
    assert_eq!(m.state(a).unwrap(), State::Idle);
    m.update(Duration::from_millis(10)).unwrap();
    assert_eq!(m.listen(b, addr).unwrap(), addr);
}

#[test]
fn a_failed_connect_is_a_disconnect_and_leaves_the_connection_idle() {
    let log = Log::default();
    let mut m = manager(&log);
    let nowhere: SocketAddr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = m.create("client").unwrap();
    m.connect(client, nowhere).unwrap();
    until(&mut m, "the failure", |m| {
        m.state(client).unwrap() == State::Idle
    });
    assert!(
        log.borrow()
            .iter()
            .any(|l| l.starts_with("client disconnected")),
        "{log:?}"
    );
    m.remove(client).unwrap();
    assert!(m.ids().is_empty());
}
