//! End-to-end tests of the `login_server` binary over loopback.
//!
//! Each test starts the real binary on port 0 (`--ClientPort 0` ...), reads
//! its `LISTEN <name> <addr>` lines, and talks to it as clients, HTTP
//! clients and fake message servers (plain `TcpStream`s speaking PDUs). The
//! server is killed when its guard drops. Registration travels on a different
//! connection than the question, so tests that depend on it poll with a
//! deadline ([`eventually`]) instead of sleeping a fixed time.

use pdu::proto::{
    ImHeartBeat, ImLoginReq, ImMsgServInfo, ImMsgServReq, ImMsgServRsp, ImUserCntUpdate,
    USER_CNT_DEC, USER_CNT_INC,
};
use pdu::{cid, sid, FrameDecoder, Header, Message, Pdu};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// A running `login_server`; killed on drop.
struct LoginServer {
    child: Child,
    client: SocketAddr,
    http: SocketAddr,
    msg_server: SocketAddr,
}

impl LoginServer {
    fn start(extra: &[&str]) -> LoginServer {
        let mut args = vec![
            "--ClientListenIP",
            "127.0.0.1",
            "--ClientPort",
            "0",
            "--HttpListenIP",
            "127.0.0.1",
            "--HttpPort",
            "0",
            "--MsgServerListenIP",
            "127.0.0.1",
            "--MsgServerPort",
            "0",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_login_server"))
            .args(&args)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or("error".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start login_server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut server = LoginServer {
            child,
            client: "0.0.0.0:0".parse().unwrap(),
            http: "0.0.0.0:0".parse().unwrap(),
            msg_server: "0.0.0.0:0".parse().unwrap(),
        };
        let mut seen = 0;
        while seen < 3 {
            let line = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("login_server announced its listeners");
            let parts: Vec<&str> = line.split_whitespace().collect();
            if let ["LISTEN", name, addr] = parts[..] {
                let addr: SocketAddr = addr.parse().expect("LISTEN address");
                match name {
                    "client" => server.client = addr,
                    "http" => server.http = addr,
                    "msg_server" => server.msg_server = addr,
                    other => panic!("unexpected listener {other}"),
                }
                seen += 1;
            }
        }
        server
    }

    /// Asks for a message server over TCP on a new connection.
    fn ask(&self) -> ImMsgServRsp {
        let mut c = connect(self.client);
        send(
            &mut c,
            sid::LOGIN,
            cid::login::MSG_SERV_REQ,
            1,
            &ImMsgServReq {},
        );
        let (h, rsp) = recv::<ImMsgServRsp>(&mut c);
        assert_eq!(h.command_id, cid::login::MSG_SERV_RSP);
        rsp
    }

    /// The port of the chosen message server, or the refusal code.
    fn pick(&self) -> Result<u32, i32> {
        let rsp = self.ask();
        match rsp.result_code {
            0 => Ok(rsp.port.expect("port in a successful answer")),
            code => Err(code),
        }
    }
}

impl Drop for LoginServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

fn send<M: Message>(s: &mut TcpStream, service: u16, command: u16, seq: u16, msg: &M) {
    let mut wire = Vec::new();
    Pdu::encode_message_into(
        &mut wire,
        &Header::new(service, command).with_seq_num(seq),
        msg,
    )
    .unwrap();
    s.write_all(&wire).expect("send pdu");
}

/// Reads one whole frame.
fn recv_frame(s: &mut TcpStream) -> Pdu {
    let mut buf = Vec::new();
    let decoder = FrameDecoder::new();
    loop {
        if let Some(frame) = decoder.decode(&buf).expect("valid frame") {
            return frame.to_pdu();
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).expect("read frame");
        assert!(n > 0, "connection closed before a whole frame arrived");
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn recv<M: Message + Default>(s: &mut TcpStream) -> (Header, M) {
    let frame = recv_frame(s);
    let msg = frame.decode_body::<M>().expect("decodable body");
    (*frame.header(), msg)
}

/// True if the server closes `s` (end-of-stream or reset) within `within`;
/// anything it sends first is skipped.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false
            }
            Err(_) => return true, // reset
        }
    }
    false
}

/// Polls `f` until it returns true, for at most 5 s.
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A test-side message server: a link that registers and reports users.
struct FakeMsgServer {
    link: TcpStream,
}

impl FakeMsgServer {
    fn register(login: &LoginServer, port: u32, cur: u32, max: u32) -> FakeMsgServer {
        let mut fake = FakeMsgServer {
            link: connect(login.msg_server),
        };
        fake.info(port, cur, max);
        fake
    }

    fn info(&mut self, port: u32, cur: u32, max: u32) {
        let info = ImMsgServInfo {
            ip1: format!("10.0.0.{}", port % 256),
            ip2: format!("10.1.0.{}", port % 256),
            port,
            max_conn_cnt: max,
            cur_conn_cnt: cur,
            host_name: format!("ms-{port}"),
        };
        send(
            &mut self.link,
            sid::OTHER,
            cid::other::MSG_SERV_INFO,
            0,
            &info,
        );
    }

    fn users(&mut self, action: u32, times: usize) {
        for i in 0..times {
            let update = ImUserCntUpdate {
                user_action: action,
                user_id: i as u32,
            };
            send(
                &mut self.link,
                sid::OTHER,
                cid::other::USER_CNT_UPDATE,
                0,
                &update,
            );
        }
    }
}

/// Sends raw bytes as an HTTP request; returns (status, body) of the
/// response and whether the server then closed the connection.
fn http(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = connect(addr);
    s.write_all(request).expect("send request");
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => {}
        // The server may reset after answering an oversized request.
        Err(e) if e.kind() == ErrorKind::ConnectionReset && !raw.is_empty() => {}
        Err(e) => panic!("reading the response (server must close after it): {e}"),
    }
    let text = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .expect("Content-Length");
    assert_eq!(body.len(), length, "Content-Length matches the body");
    assert!(head.contains("Connection: close"));
    (status, body.to_string())
}

fn get_msg_server(login: &LoginServer) -> (u16, String) {
    http(
        login.http,
        b"GET /msg_server HTTP/1.1\r\nHost: login\r\nConnection: close\r\n\r\n",
    )
}

#[test]
fn no_msg_server_is_result_1_over_tcp_and_http() {
    let login = LoginServer::start(&[]);
    let mut c = connect(login.client);
    send(
        &mut c,
        sid::LOGIN,
        cid::login::MSG_SERV_REQ,
        4242,
        &ImMsgServReq {},
    );
    let (h, rsp) = recv::<ImMsgServRsp>(&mut c);
    assert_eq!(
        (h.service_id, h.command_id),
        (sid::LOGIN, cid::login::MSG_SERV_RSP)
    );
    assert_eq!(h.seq_num, 4242, "seq_num is echoed");
    assert_eq!(rsp.result_code, 1);
    assert_eq!(rsp.prior_ip, None);
    assert!(
        closed_within(&mut c, Duration::from_secs(3)),
        "answered clients are closed, as in TeamTalk"
    );

    let (status, body) = get_msg_server(&login);
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"code":1,"msg":"没有msg_server"}"#);
}

#[test]
fn least_loaded_wins_and_user_counts_move_the_choice() {
    let login = LoginServer::start(&[]);
    let mut a = FakeMsgServer::register(&login, 8001, 5, 100);
    let mut b = FakeMsgServer::register(&login, 8002, 2, 100);
    eventually("b, the least loaded, is chosen", || {
        login.pick() == Ok(8002)
    });
    assert_eq!(login.pick(), Ok(8002));
    let rsp = login.ask();
    assert_eq!(rsp.prior_ip.as_deref(), Some("10.0.0.66"));
    assert_eq!(rsp.backip_ip.as_deref(), Some("10.1.0.66"));

    b.users(USER_CNT_INC, 4); // b: 6 > a: 5
    eventually("a after b gained users", || login.pick() == Ok(8001));

    // Ten departures from five users stop at zero; one arrival makes one.
    a.users(USER_CNT_DEC, 10);
    a.users(USER_CNT_INC, 1);
    b.users(USER_CNT_DEC, 6); // b: 0 < a: 1, unless a went below zero
    eventually("b once it is emptier than a", || login.pick() == Ok(8002));
    for _ in 0..3 {
        assert_eq!(login.pick(), Ok(8002), "a's count never went below zero");
    }
}

#[test]
fn equally_loaded_servers_take_turns() {
    let login = LoginServer::start(&[]);
    let _a = FakeMsgServer::register(&login, 8001, 0, 100);
    let _b = FakeMsgServer::register(&login, 8002, 0, 100);
    eventually("both registered", || login.pick() == Ok(8002));
    let picks: Vec<u32> = (0..6).map(|_| login.pick().unwrap()).collect();
    for pair in picks.windows(2) {
        assert_ne!(pair[0], pair[1], "ties rotate: {picks:?}");
    }
}

#[test]
fn full_servers_are_result_2() {
    let login = LoginServer::start(&[]);
    let mut a = FakeMsgServer::register(&login, 8001, 3, 3);
    let _b = FakeMsgServer::register(&login, 8002, 0, 0);
    eventually("all full", || login.pick() == Err(2));
    let (status, body) = get_msg_server(&login);
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"code":2,"msg":"负载过高"}"#);
    a.users(USER_CNT_DEC, 1);
    eventually("a has room again", || login.pick() == Ok(8001));
}

#[test]
fn re_registration_replaces_and_closing_the_link_removes() {
    let login = LoginServer::start(&[]);
    let mut a = FakeMsgServer::register(&login, 8001, 0, 100);
    eventually("a registered", || login.pick() == Ok(8001));
    a.info(8005, 0, 100);
    eventually("a's new entry", || login.pick() == Ok(8005));
    for _ in 0..3 {
        assert_eq!(login.pick(), Ok(8005), "the old entry is gone, not tied");
    }
    drop(a);
    eventually("no msg_server after the link closed", || {
        login.pick() == Err(1)
    });
}

#[test]
fn http_answers_with_teamtalk_json() {
    let login = LoginServer::start(&[
        "--msfs",
        "http://files.example:8700/",
        "--discovery",
        "http://disc.example/api/discovery",
    ]);
    let _a = FakeMsgServer::register(&login, 8000, 1, 10);
    eventually("registered", || login.pick() == Ok(8000));
    let (status, body) = get_msg_server(&login);
    assert_eq!(status, 200);
    assert_eq!(
        body,
        r#"{"backupIP":"10.1.0.64","code":0,"discovery":"http://disc.example/api/discovery","msfsBackup":"http://files.example:8700/","msfsPrior":"http://files.example:8700/","msg":"","port":"8000","priorIP":"10.0.0.64"}"#
    );
    // A query string is fine; so is HTTP/1.0.
    let (status, _) = http(login.http, b"GET /msg_server?v=1 HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
}

#[test]
fn http_other_paths_are_404_and_other_methods_405() {
    let login = LoginServer::start(&[]);
    let (status, _) = http(login.http, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(status, 404);
    let (status, _) = http(login.http, b"GET /msg_serverX HTTP/1.1\r\n\r\n");
    assert_eq!(status, 404);
    let (status, _) = http(login.http, b"DELETE /msg_server HTTP/1.1\r\n\r\n");
    assert_eq!(status, 405);
}

#[test]
fn http_malformed_and_oversized_requests_are_400_and_closed() {
    let login = LoginServer::start(&[]);
    let (status, _) = http(login.http, b"\x16\x03\x01 not http at all\r\n\r\n");
    assert_eq!(status, 400);
    let (status, _) = http(login.http, b"GET /msg_server HTTP/1.1\r\nno colon\r\n\r\n");
    assert_eq!(status, 400);
    // A head that never ends: refused once it passes 8 KiB.
    let mut big = b"GET /msg_server HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend_from_slice(&[b'a'; 16 * 1024]);
    let (status, _) = http(login.http, &big);
    assert_eq!(status, 400);
    // The server is still fine.
    let (status, _) = get_msg_server(&login);
    assert_eq!(status, 200);
}

#[test]
fn http_incomplete_request_is_closed_at_the_deadline() {
    let login = LoginServer::start(&["--HttpTimeoutMs", "300"]);
    let mut slow = connect(login.http);
    slow.write_all(b"GET /msg_server HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    assert!(closed_within(&mut slow, Duration::from_secs(3)));
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn idle_clients_are_closed_but_heartbeats_keep_them() {
    let login = LoginServer::start(&["--ClientTimeoutMs", "500"]);
    let mut idle = connect(login.client);
    let mut busy = connect(login.client);
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        send(
            &mut busy,
            sid::OTHER,
            cid::other::HEARTBEAT,
            0,
            &ImHeartBeat {},
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(2)),
        "idle client closed"
    );
    send(
        &mut busy,
        sid::LOGIN,
        cid::login::MSG_SERV_REQ,
        9,
        &ImMsgServReq {},
    );
    let (h, rsp) = recv::<ImMsgServRsp>(&mut busy);
    assert_eq!((h.seq_num, rsp.result_code), (9, 1));
}

#[test]
fn clients_sending_other_commands_or_bad_frames_are_closed_alone() {
    let login = LoginServer::start(&[]);
    let mut link = FakeMsgServer::register(&login, 8001, 0, 10);
    let mut bystander = connect(login.client);

    let mut wrong = connect(login.client);
    let req = ImLoginReq {
        user_name: "u".into(),
        password: "p".into(),
        ..Default::default()
    };
    send(&mut wrong, sid::LOGIN, cid::login::REQ_USERLOGIN, 1, &req);
    assert!(closed_within(&mut wrong, Duration::from_secs(3)));

    // Declared length 5: shorter than the header.
    let mut bad = connect(login.client);
    bad.write_all(&[0, 0, 0, 5, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_within(&mut bad, Duration::from_secs(3)));

    // A frame far over the limit.
    let mut huge = connect(login.client);
    huge.write_all(&[0, 0x10, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_within(&mut huge, Duration::from_secs(3)));

    send(
        &mut bystander,
        sid::LOGIN,
        cid::login::MSG_SERV_REQ,
        3,
        &ImMsgServReq {},
    );
    let (_, rsp) = recv::<ImMsgServRsp>(&mut bystander);
    assert_eq!(rsp.result_code, 0);
    assert_eq!(rsp.port, Some(8001));
    link.users(USER_CNT_INC, 1); // the link is still up
    assert_eq!(login.pick(), Ok(8001));
}

#[test]
fn msg_server_links_get_heartbeats_and_silent_ones_are_dropped() {
    let login = LoginServer::start(&[
        "--MsgServerHeartbeatMs",
        "100",
        "--MsgServerTimeoutMs",
        "600",
    ]);
    let mut quiet = FakeMsgServer::register(&login, 8001, 0, 10);
    let mut chatty = FakeMsgServer::register(&login, 8002, 5, 10);
    eventually("quiet registered", || login.pick() == Ok(8001));

    // The login server heartbeats a link it has not written to (after the
    // challenge every link gets first).
    let challenge = recv_frame(&mut quiet.link);
    assert_eq!(challenge.command_id(), cid::internal::LINK_CHALLENGE);
    let frame = recv_frame(&mut quiet.link);
    assert_eq!(
        (frame.service_id(), frame.command_id()),
        (sid::OTHER, cid::other::HEARTBEAT)
    );

    // Chatty keeps its link alive with heartbeats; quiet says nothing more.
    let started = Instant::now();
    while started.elapsed() < Duration::from_millis(1200) {
        send(
            &mut chatty.link,
            sid::OTHER,
            cid::other::HEARTBEAT,
            0,
            &ImHeartBeat {},
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(closed_within(&mut quiet.link, Duration::from_secs(2)));
    assert_eq!(login.pick(), Ok(8002), "the silent link's entry is gone");
}

#[test]
fn links_that_never_register_are_dropped() {
    let login = LoginServer::start(&["--MsgServerTimeoutMs", "300"]);
    let mut link = connect(login.msg_server);
    let started = Instant::now();
    // Heartbeats keep the link from going idle but do not register it.
    let mut closed = false;
    while !closed && started.elapsed() < Duration::from_secs(3) {
        let mut wire = Vec::new();
        let hb = Header::new(sid::OTHER, cid::other::HEARTBEAT);
        Pdu::encode_message_into(&mut wire, &hb, &ImHeartBeat {}).unwrap();
        closed =
            link.write_all(&wire).is_err() || closed_within(&mut link, Duration::from_millis(100));
    }
    assert!(closed, "an unregistered link is closed at the deadline");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[test]
fn a_link_sending_a_bad_frame_loses_only_its_entry() {
    let login = LoginServer::start(&[]);
    let mut bad = FakeMsgServer::register(&login, 8001, 0, 10);
    let _good = FakeMsgServer::register(&login, 8002, 3, 10);
    eventually("bad one chosen first", || login.pick() == Ok(8001));
    bad.link
        .write_all(&[0, 0, 0, 3, 0, 1, 0, 0, 0, 7, 7, 9, 0, 0, 0, 0])
        .unwrap();
    assert!(closed_within(&mut bad.link, Duration::from_secs(3)));
    eventually("only the good one left", || login.pick() == Ok(8002));
}
