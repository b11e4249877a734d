//! Who may register a message server with login_server (the real binaries):
//! only allowed networks, and with a shared key only links that prove it.
//! A stranger that could register would have every client sent to it.

mod common;

use common::{Proc, T};
use pdu::proto::{ImLinkChallenge, ImLinkProof, ImMsgServInfo};
use pdu::{cid, sid, FrameDecoder, Header, Message, Pdu};
use servers::client::query_msg_server;
use servers::login::link_auth;
use socket2::{Domain, Socket, Type};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn login_server(extra: &[&str]) -> Proc {
    common::login_server(0, extra)
}

/// The msg_server port login_server hands to clients, if any.
fn chosen(login: &Proc) -> Option<u16> {
    query_msg_server(login.addr("client"), T)
        .ok()
        .map(|a| a.port())
}

fn send<M: Message>(s: &mut TcpStream, service: u16, command: u16, msg: &M) {
    let mut wire = Vec::new();
    Pdu::encode_message_into(&mut wire, &Header::new(service, command), msg).unwrap();
    s.write_all(&wire).unwrap();
}

fn recv(s: &mut TcpStream) -> Option<Pdu> {
    let decoder = FrameDecoder::new();
    let mut buf = Vec::new();
    s.set_read_timeout(Some(T)).unwrap();
    loop {
        if let Some(f) = decoder.decode(&buf).unwrap() {
            return Some(f.to_pdu());
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// True if the peer closes `s` within `within` (anything sent first is skipped).
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        s.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true,
        }
    }
    false
}

fn info(port: u32) -> ImMsgServInfo {
    ImMsgServInfo {
        ip1: "127.0.0.1".into(),
        ip2: "127.0.0.1".into(),
        port,
        max_conn_cnt: 100,
        cur_conn_cnt: 0,
        host_name: "stranger".into(),
    }
}

/// A fake msg_server's link: connects (from `from` if given), reads the
/// challenge.
fn link(login: &Proc, from: Option<&str>) -> (TcpStream, Vec<u8>) {
    let to = login.addr("msg_server");
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    if let Some(ip) = from {
        let a: SocketAddr = format!("{ip}:0").parse().unwrap();
        sock.bind(&a.into()).unwrap();
    }
    sock.connect_timeout(&to.into(), T).unwrap();
    let mut s: TcpStream = sock.into();
    let challenge = recv(&mut s).expect("a challenge on every accepted link");
    assert_eq!(
        (challenge.service_id(), challenge.command_id()),
        (sid::INTERNAL, cid::internal::LINK_CHALLENGE)
    );
    let nonce = challenge.decode_body::<ImLinkChallenge>().unwrap().nonce;
    assert_eq!(nonce.len(), link_auth::NONCE_LEN);
    (s, nonce)
}

#[test]
fn the_real_msg_server_registers_when_it_proves_the_key() {
    let login = login_server(&["--MsgServerKey", "s3cret"]);
    let users = common::users_file("linkauth-good", 2);
    let msg = common::msg_server(
        &users,
        Some(login.addr("msg_server")),
        &["--LoginServerKey", "s3cret"],
    );
    let port = msg.addr("client").port();
    common::eventually("registered", T, || chosen(&login) == Some(port));
    // Clients sent there can log in: the whole path works.
    let addr = query_msg_server(login.addr("client"), T).unwrap();
    common::user(addr, 1);
}

#[test]
fn a_msg_server_with_the_wrong_key_or_none_never_registers() {
    let login = login_server(&["--MsgServerKey", "s3cret"]);
    let users = common::users_file("linkauth-bad", 2);
    let _wrong = common::msg_server(
        &users,
        Some(login.addr("msg_server")),
        &["--LoginServerKey", "guess"],
    );
    let _none = common::msg_server(&users, Some(login.addr("msg_server")), &[]);
    // Both retry every 100 ms+ (backing off); none is ever believed.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(
            chosen(&login),
            None,
            "a msg_server without the key registered"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn strangers_without_a_proof_or_with_a_wrong_one_are_closed() {
    let login = login_server(&["--MsgServerKey", "s3cret"]);

    // No proof: registration straight away (TeamTalk's msg_server).
    let (mut s, _) = link(&login, None);
    send(&mut s, sid::OTHER, cid::other::MSG_SERV_INFO, &info(9001));
    assert!(closed_within(&mut s, T));

    // A proof under another key.
    let (mut s, nonce) = link(&login, None);
    let mac = link_auth::proof(b"guess", &nonce);
    send(
        &mut s,
        sid::INTERNAL,
        cid::internal::LINK_PROOF,
        &ImLinkProof { mac },
    );
    send(&mut s, sid::OTHER, cid::other::MSG_SERV_INFO, &info(9002));
    assert!(closed_within(&mut s, T));

    // A proof replayed from another connection (right key, wrong nonce).
    let (_first, old_nonce) = link(&login, None);
    let (mut s, _) = link(&login, None);
    let mac = link_auth::proof(b"s3cret", &old_nonce);
    send(
        &mut s,
        sid::INTERNAL,
        cid::internal::LINK_PROOF,
        &ImLinkProof { mac },
    );
    assert!(closed_within(&mut s, T));
    assert_eq!(chosen(&login), None);

    // The documented exchange registers.
    let (mut s, nonce) = link(&login, None);
    let mac = link_auth::proof(b"s3cret", &nonce);
    send(
        &mut s,
        sid::INTERNAL,
        cid::internal::LINK_PROOF,
        &ImLinkProof { mac },
    );
    send(&mut s, sid::OTHER, cid::other::MSG_SERV_INFO, &info(9004));
    common::eventually("proven link registered", T, || chosen(&login) == Some(9004));
}

#[test]
fn links_from_networks_outside_the_allow_list_are_refused() {
    // Loopback is 127.0.0.0/8: 127.0.0.1 is allowed, 127.0.0.2 is not.
    let login = login_server(&["--MsgServerAllow", "127.0.0.1/32;10.0.0.0/8"]);
    let to = login.addr("msg_server");
    let sock = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    sock.bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    sock.connect_timeout(&to.into(), T).unwrap();
    let mut stranger: TcpStream = sock.into();
    // It may get its registration out before the close lands; it never counts.
    let mut wire = Vec::new();
    Pdu::encode_message_into(
        &mut wire,
        &Header::new(sid::OTHER, cid::other::MSG_SERV_INFO),
        &info(9101),
    )
    .unwrap();
    let _ = stranger.write_all(&wire);
    assert!(closed_within(&mut stranger, T));
    assert_eq!(chosen(&login), None);

    // From an allowed address the same registration counts (no key set).
    let (mut s, _) = link(&login, Some("127.0.0.1"));
    send(&mut s, sid::OTHER, cid::other::MSG_SERV_INFO, &info(9102));
    common::eventually("allowed link registered", T, || {
        chosen(&login) == Some(9102)
    });
}

#[test]
fn by_default_only_loopback_may_register() {
    let s = servers::login::LoginSettings::default();
    let ok = |ip: &str| {
        s.msg_server_allow
            .iter()
            .any(|n| n.contains(ip.parse().unwrap()))
    };
    assert!(ok("127.0.0.1") && ok("::1"));
    assert!(!ok("192.168.1.10") && !ok("10.0.0.1") && !ok("fe80::1"));
    assert_eq!(s.msg_server_key, None);
}
