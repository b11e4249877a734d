//! End to end: the real login_server and msg_server binaries on ephemeral
//! loopback ports (started through `common::Proc`), driven by the blocking
//! client from `servers::client`.

mod common;

use common::Proc;
use servers::client::{query_msg_server, query_msg_server_http, ImClient};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

/// The demo accounts (alice/alice123 = 1, bob/bob123 = 2, carol/carol123 = 3).
const DEMO_USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/users.txt");

fn login_server(msg_port: u16) -> Proc {
    common::login_server(msg_port, &[])
}

fn msg_server(login: Option<SocketAddr>, extra: &[&str]) -> Proc {
    common::msg_server(std::path::Path::new(DEMO_USERS), login, extra)
}

fn logged_in(addr: SocketAddr, user: &str, password: &str, mobile: bool) -> ImClient {
    let mut c = ImClient::connect(addr, T).unwrap();
    let res = c.login(user, password, mobile, T).unwrap();
    assert_eq!(res.result_code, 0, "login of {user}");
    c
}

fn assert_closed(c: &mut ImClient) {
    let s = c.stream();
    s.set_read_timeout(Some(T)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue, // frames sent before the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected close, got {e}"),
        }
    }
}

#[test]
fn two_users_exchange_a_thousand_messages_in_order_with_acks() {
    let msg = msg_server(None, &[]);
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123", false);
    let mut bob = logged_in(addr, "bob", "bob123", false);
    let receiver = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = Vec::new();
        while got.len() < 1000 {
            let m = bob
                .next_message(deadline)
                .unwrap()
                .expect("message in time");
            assert_eq!(m.from_user_id, 1);
            got.push(String::from_utf8(m.msg_data).unwrap());
        }
        // And one back.
        bob.send_text(1, "thanks").unwrap();
        bob.wait_ack(Instant::now() + T).unwrap();
        got
    });
    for i in 0..1000 {
        alice.send_text(2, &format!("message {i}")).unwrap();
    }
    alice
        .wait_acks(1000, Instant::now() + Duration::from_secs(30))
        .unwrap();
    let mut ids = alice.acked.clone();
    ids.dedup();
    assert_eq!(ids.len(), 1000, "every message acked once");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids increase");
    let got = receiver.join().unwrap();
    let want: Vec<String> = (0..1000).map(|i| format!("message {i}")).collect();
    assert_eq!(got, want);
    let back = alice.next_message(Instant::now() + T).unwrap().unwrap();
    assert_eq!(back.msg_data, b"thanks");
}

#[test]
fn offline_user_gets_messages_at_login() {
    let msg = msg_server(None, &[]);
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123", false);
    for i in 0..5 {
        alice
            .send_text(3, &format!("while you were out {i}"))
            .unwrap();
    }
    alice.wait_acks(5, Instant::now() + T).unwrap();
    let mut carol = logged_in(addr, "carol", "carol123", false);
    for i in 0..5 {
        let m = carol
            .next_message(Instant::now() + T)
            .unwrap()
            .expect("queued message");
        assert_eq!(m.msg_data, format!("while you were out {i}").as_bytes());
    }
}

/// A delivery not acked before its connection drops is delivered again at
/// the next login: nothing acknowledged to the sender is lost.
#[test]
fn unacked_deliveries_survive_a_dropped_connection() {
    let msg = msg_server(None, &[]);
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123", false);
    let mut bob = logged_in(addr, "bob", "bob123", false);
    alice.send_text(2, "do not lose me").unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    // Bob's connection receives it but never acks, then dies.
    let mut frame = [0u8; 16];
    bob.stream().set_read_timeout(Some(T)).unwrap();
    bob.stream().read_exact(&mut frame).unwrap();
    drop(bob);
    std::thread::sleep(Duration::from_millis(200));
    let mut bob = logged_in(addr, "bob", "bob123", false);
    let m = bob
        .next_message(Instant::now() + T)
        .unwrap()
        .expect("redelivered");
    assert_eq!(m.msg_data, b"do not lose me");
}

#[test]
fn wrong_password_gets_result_6_and_is_closed() {
    let msg = msg_server(None, &[]);
    let mut c = ImClient::connect(msg.addr("client"), T).unwrap();
    let res = c.login("alice", "not-her-password", false, T).unwrap();
    assert_eq!(res.result_code, 6);
    assert_closed(&mut c);
}

#[test]
fn the_password_travels_as_its_md5_hex_never_as_typed() {
    use pdu::proto::ImLoginReq;
    use pdu::{cid, sid};
    let msg = msg_server(None, &[]);
    let login = |password: String| {
        let mut c = ImClient::connect(msg.addr("client"), T).unwrap();
        let req = ImLoginReq {
            user_name: "alice".into(),
            password,
            ..Default::default()
        };
        c.send_pdu(sid::LOGIN, cid::login::REQ_USERLOGIN, &req)
            .unwrap();
        let pdu = c.recv_pdu(Instant::now() + T).unwrap();
        assert_eq!(pdu.command_id(), cid::login::RES_USERLOGIN);
        pdu.decode_body::<pdu::proto::ImLoginRes>()
            .unwrap()
            .result_code
    };
    // What a TeamTalk client sends: md5("alice123") in lowercase hex.
    assert_eq!(login("7abdccbea8473767e91378e37850d296".into()), 0);
    // The typed password itself is not a credential.
    assert_eq!(login("alice123".into()), 6);
    // The users file holds neither.
    let file = std::fs::read_to_string(DEMO_USERS).unwrap();
    let data: String = file.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!data.contains("alice123") && !data.contains("7abdccbea8473767"));
}

#[test]
fn command_before_login_closes_the_connection() {
    let msg = msg_server(None, &[]);
    let mut c = ImClient::connect(msg.addr("client"), T).unwrap();
    c.send_text(2, "sneaky").unwrap();
    assert_closed(&mut c);
}

#[test]
fn no_login_within_the_deadline_closes_the_connection() {
    let msg = msg_server(None, &["--LoginTimeoutMs", "300"]);
    let mut c = ImClient::connect(msg.addr("client"), T).unwrap();
    let start = Instant::now();
    assert_closed(&mut c);
    assert!(start.elapsed() >= Duration::from_millis(300));
}

#[test]
fn duplicate_login_kicks_the_older_session() {
    let msg = msg_server(None, &[]);
    let addr = msg.addr("client");
    let mut first = logged_in(addr, "alice", "alice123", false);
    let mut mobile = logged_in(addr, "alice", "alice123", true);
    let _second = logged_in(addr, "alice", "alice123", false);
    let err = first.next_message(Instant::now() + T).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted, "{err}");
    assert_closed(&mut first);
    // The mobile session is another client class: it stays.
    mobile.send_text(2, "still here").unwrap();
    mobile.wait_ack(Instant::now() + T).unwrap();
}

#[test]
fn malformed_frame_closes_only_the_offender() {
    let msg = msg_server(None, &[]);
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123", false);
    let mut bob = logged_in(addr, "bob", "bob123", false);
    let mut bad = logged_in(addr, "carol", "carol123", false);
    // A header declaring a 3-byte frame.
    bad.stream()
        .write_all(&[0, 0, 0, 3, 0, 1, 0, 0, 0, 3, 3, 1, 0, 0, 0, 0])
        .unwrap();
    assert_closed(&mut bad);
    alice.send_text(2, "unaffected").unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    let m = bob.next_message(Instant::now() + T).unwrap().unwrap();
    assert_eq!(m.msg_data, b"unaffected");
}

/// login_server killed and restarted while msg_server runs: msg_server
/// re-registers and clients get its address again.
#[test]
fn login_server_restart_msg_server_reregisters() {
    let login = login_server(0);
    let msg_port = login.addr("msg_server");
    let msg = msg_server(Some(msg_port), &[]);
    let msg_addr = msg.addr("client");
    let wait_for_registration = |login: &Proc| {
        let deadline = Instant::now() + T;
        loop {
            match query_msg_server(login.addr("client"), T) {
                Ok(a) => return a,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                Err(e) => panic!("msg_server never registered: {e}"),
            }
        }
    };
    assert_eq!(wait_for_registration(&login), msg_addr);
    drop(login); // kill -9
    let login = login_server(msg_port.port());
    assert_eq!(wait_for_registration(&login), msg_addr);
    // And the whole path works: ask (over TCP and HTTP), connect, log in.
    let addr = query_msg_server(login.addr("client"), T).unwrap();
    assert_eq!(query_msg_server_http(login.addr("http"), T).unwrap(), addr);
    logged_in(addr, "alice", "alice123", false);
}

/// While a user's mailbox is fed to one of its connections (paced by that
/// connection's acks), its other connection - another client type - gets
/// new messages at once and acks them; the fed connection still gets every
/// message, the new ones after the backlog, each once and in order; and
/// once all are acked the mailbox is empty.
#[test]
fn a_second_connection_gets_live_messages_while_the_first_is_fed_the_mailbox() {
    const BACKLOG: u32 = 2000;
    const LIVE: u32 = 20;
    let msg = msg_server(None, &["--MsgRateLimit", "100000"]);
    let addr = msg.addr("client");
    let mut alice = logged_in(addr, "alice", "alice123", false);
    for i in 0..BACKLOG {
        alice.send_text(2, &format!("backlog {i}")).unwrap();
    }
    alice
        .wait_acks(BACKLOG as usize, Instant::now() + Duration::from_secs(30))
        .unwrap();

    // The desktop connection is fed the mailbox; it reads nothing for now,
    // so the feed stalls at its window of unacknowledged deliveries.
    let mut desktop = logged_in(addr, "bob", "bob123", false);
    let mut mobile = logged_in(addr, "bob", "bob123", true);
    for i in 0..LIVE {
        alice.send_text(2, &format!("live {i}")).unwrap();
    }
    alice
        .wait_acks((BACKLOG + LIVE) as usize, Instant::now() + T)
        .unwrap();
    let mut live = Vec::new();
    for _ in 0..LIVE {
        let m = mobile
            .next_message(Instant::now() + T)
            .unwrap()
            .expect("a live message on the connection not being fed");
        live.push((m.msg_id, String::from_utf8(m.msg_data).unwrap()));
    }
    let want: Vec<(u32, String)> = (0..LIVE)
        .map(|i| (BACKLOG + 1 + i, format!("live {i}")))
        .collect();
    assert_eq!(
        live, want,
        "the mobile connection got the live messages in order"
    );

    // The fed connection gets the backlog and then the live messages (which
    // the mobile connection has acked meanwhile), each once, in order.
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < (BACKLOG + LIVE) as usize {
        match desktop.next_message(deadline).unwrap() {
            Some(m) => got.push((m.from_user_id, m.msg_id, m.msg_data)),
            None => break,
        }
    }
    got.extend(common::drain(&mut desktop, Duration::from_millis(300)));
    let ids: Vec<u32> = got.iter().map(|(_, id, _)| *id).collect();
    let want_ids: Vec<u32> = (1..=BACKLOG + LIVE).collect();
    assert_eq!(
        ids.len(),
        want_ids.len(),
        "the fed connection got {} messages",
        ids.len()
    );
    assert_eq!(ids, want_ids, "every message once, in order");
    assert_eq!(got[0].2, b"backlog 0");
    assert_eq!(got[BACKLOG as usize].2, b"live 0");
    assert!(
        common::drain(&mut mobile, Duration::from_millis(300)).is_empty(),
        "the mobile connection is not fed the backlog"
    );

    // Every delivery was acked: a new login finds the mailbox empty.
    drop(desktop);
    drop(mobile);
    let mut again = logged_in(addr, "bob", "bob123", false);
    assert!(
        common::drain(&mut again, Duration::from_millis(500)).is_empty(),
        "acked deliveries left the mailbox"
    );
}
