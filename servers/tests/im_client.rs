//! im_client as a person uses it, driven as a real process (stdin/stdout)
//! against the real servers: names and local times, prompt, status lines,
//! unknown users, a kick that stops it (no ping-pong), a refused password
//! that ends it, reconnects that back off, the script forms, history, and
//! group chat.

mod common;

use common::{Proc, T};
use pdu::proto::{GroupModifyType, ImMsgData, MsgType};
use pdu::{cid, sid};
use servers::client::{Event, ImClient, Peer};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const CLIENT: &str = env!("CARGO_BIN_EXE_im_client");
const DEMO_USERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/users.txt");

fn demo_server(extra: &[&str]) -> Proc {
    common::msg_server(std::path::Path::new(DEMO_USERS), None, extra)
}

/// A running im_client: stdin to type into, stdout and stderr lines.
struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

/// How a client finds its msg_server.
#[derive(Clone, Copy)]
enum Via {
    /// `--msg-server`: straight to it.
    Msg(SocketAddr),
    /// `--login`: asks the login_server.
    Login(SocketAddr),
}

/// An account, and how its clients find the server.
#[derive(Clone, Copy)]
struct Account<'a> {
    via: Via,
    user: &'a str,
    password: &'a str,
}

impl<'a> Account<'a> {
    fn new(via: Via, user: &'a str, password: &'a str) -> Account<'a> {
        Account {
            via,
            user,
            password,
        }
    }

    /// im_client running `command` (empty: chat mode).
    fn run(self, command: &[&str]) -> Client {
        Client::run(self, command)
    }

    /// Runs a script form to its end: it prints a line with `what` (which
    /// is returned) and exits with `code`.
    fn script(self, command: &[&str], what: &str, code: i32) -> String {
        let mut c = self.run(command);
        let line = c.expect(what);
        assert_eq!(c.exit_code(T), Some(code), "{command:?}: {:#?}", c.seen);
        line
    }
}

impl Client {
    /// im_client as `user` with `password`, finding the server `via`, running
    /// `command` (empty: chat mode).
    fn run(
        Account {
            via,
            user,
            password,
        }: Account,
        command: &[&str],
    ) -> Client {
        let (flag, addr) = match via {
            Via::Msg(a) => ("--msg-server", a),
            Via::Login(a) => ("--login", a),
        };
        let mut child = Command::new(CLIENT)
            .args([
                flag,
                &addr.to_string(),
                "--user",
                user,
                "--password",
                password,
            ])
            .args(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {l}"));
            }
        });
        Client {
            stdin: child.stdin.take(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn chat(server: SocketAddr, user: &str, password: &str) -> Client {
        Client::run(Account::new(Via::Msg(server), user, password), &[])
    }

    fn type_line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// The first new line containing `what`, within `within`.
    fn expect_within(&mut self, what: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(what) {
                        return l;
                    }
                }
                Err(_) => panic!("no line with {what:?} in {within:?}; saw {:#?}", self.seen),
            }
        }
    }

    fn expect(&mut self, what: &str) -> String {
        self.expect_within(what, T)
    }

    /// Exit status within `within`.
    fn exit_code(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn logged_in(addr: SocketAddr, user: &str, password: &str) -> ImClient {
    let mut c = ImClient::connect(addr, T).unwrap();
    assert_eq!(c.login(user, password, false, T).unwrap().result_code, 0);
    c
}

/// Waits until user `id` is online (asked as carol, 0x020a).
fn wait_online(addr: SocketAddr, id: u32) {
    let mut probe = logged_in(addr, "carol", "carol123");
    common::eventually("user online", T, || {
        let req = pdu::proto::ImUsersStatReq {
            user_id: probe.user_id,
            user_id_list: vec![id],
            attach_data: None,
        };
        let rsp: pdu::proto::ImUsersStatRsp = probe
            .call(
                pdu::sid::BUDDY_LIST,
                pdu::cid::buddy::USERS_STATUS_REQUEST,
                &req,
                pdu::cid::buddy::USERS_STATUS_RESPONSE,
                T,
            )
            .unwrap();
        rsp.user_stat_list.first().map(|s| s.status) == Some(1)
    });
}

/// `[YYYY-MM-DD HH:MM:SS] ` at the start of `s` (after a prompt, if any).
fn has_local_timestamp(s: &str) -> bool {
    let Some(at) = s.find('[') else {
        return false;
    };
    let b = s.as_bytes();
    let stamp = &b[at + 1..];
    stamp.len() > 20
        && stamp[..19].iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b' ',
            13 | 16 => *c == b':',
            _ => c.is_ascii_digit(),
        })
        && stamp[19] == b']'
}

#[test]
fn chat_names_senders_shows_local_times_status_and_refuses_unknown_users() {
    let msg = demo_server(&[]);
    let addr = msg.addr("client");
    let mut alice = Client::chat(addr, "alice", "alice123");
    alice.expect("logged in as alice (id 1)");
    let mut bob = logged_in(addr, "bob", "bob123");
    // bob is in alice's department: she sees him arrive.
    alice.expect("* bob is online");

    bob.send_text(1, "hi alice").unwrap();
    let line = alice.expect("bob: hi alice");
    assert!(has_local_timestamp(&line), "{line:?}");
    let year = line.split('[').nth(1).unwrap()[..4].parse::<u32>().unwrap();
    assert!(year >= 2024, "{line:?}");
    assert!(alice.seen.iter().any(|l| l.contains("alice> ")), "a prompt");

    // By name and by id.
    alice.type_line("send bob hello bob");
    alice.type_line("send 2 again");
    for text in ["hello bob", "again"] {
        let m = bob.next_message(Instant::now() + T).unwrap().expect(text);
        assert_eq!(
            (m.from_user_id, m.msg_data.as_slice()),
            (1, text.as_bytes())
        );
    }
    alice.type_line("send zed are you there");
    alice.expect("no such user: zed");
    alice.type_line("send 99 hello?");
    alice.expect("no such user: 99");
    alice.type_line("users");
    alice.expect("users: alice (1), bob (2), carol (3)");

    drop(bob);
    alice.expect("* bob went offline");
    alice.type_line("quit");
    assert_eq!(alice.exit_code(T), Some(0));
}

#[test]
fn a_client_kicked_by_a_login_elsewhere_says_so_and_stops() {
    let msg = demo_server(&[]);
    let addr = msg.addr("client");
    let mut first = Client::chat(addr, "alice", "alice123");
    first.expect("logged in as alice");
    let mut second = Client::chat(addr, "alice", "alice123");
    second.expect("logged in as alice");
    first.expect("signed out: alice logged in elsewhere");
    assert_eq!(first.exit_code(T), Some(1));
    // No ping-pong: the second one stays logged in and gets messages.
    let mut bob = logged_in(addr, "bob", "bob123");
    bob.send_text(1, "to the one that stayed").unwrap();
    second.expect("bob: to the one that stayed");
    assert!(!second.seen.iter().any(|l| l.contains("signed out")));
    assert_eq!(second.exit_code(Duration::from_millis(200)), None);
}

#[test]
fn a_refused_password_ends_chat_with_a_clear_message() {
    let msg = demo_server(&[]);
    let started = Instant::now();
    let mut c = Client::chat(msg.addr("client"), "alice", "not-her-password");
    c.expect("login refused: wrong user name or password");
    assert_eq!(c.exit_code(T), Some(1));
    assert!(started.elapsed() < T);
    assert!(
        !c.seen.iter().any(|l| l.contains("retrying")),
        "{:?}",
        c.seen
    );
}

#[test]
fn reconnects_after_a_lost_server_back_off_and_resume() {
    let mut msg = demo_server(&[]);
    let addr = msg.addr("client");
    let mut alice = Client::chat(addr, "alice", "alice123");
    alice.expect("logged in as alice");
    msg.child.kill().unwrap();
    msg.child.wait().unwrap();
    alice.expect("connection lost");
    alice.expect("retrying in 1 s");
    alice.expect_within("retrying in 2 s", Duration::from_secs(5));
    alice.expect_within("retrying in 4 s", Duration::from_secs(5));
    let port = addr.port().to_string();
    let _back = demo_server(&["--ListenPort", &port]);
    alice.expect_within("logged in as alice", Duration::from_secs(10));
    alice.type_line("quit");
    assert_eq!(alice.exit_code(T), Some(0));
}

#[test]
fn script_forms_send_by_name_and_recv_through_the_login_server() {
    let login = common::login_server(0, &[]);
    let msg = common::msg_server(
        std::path::Path::new(DEMO_USERS),
        Some(login.addr("msg_server")),
        &[],
    );
    let via = Via::Login(login.addr("client"));
    let (as_alice, as_bob) = (
        Account::new(via, "alice", "alice123"),
        Account::new(via, "bob", "bob123"),
    );
    common::eventually("msg_server registered", T, || {
        servers::client::query_msg_server(login.addr("client"), T).is_ok()
    });
    let mut bob = as_bob.run(&["recv", "--count", "1", "--timeout", "10"]);
    // Wait until bob is online before alice sends.
    wait_online(msg.addr("client"), 2);
    as_alice.script(&["send", "bob", "hello", "bob"], "sent message", 0);
    let line = bob.expect("alice: hello bob");
    assert!(has_local_timestamp(&line), "{line:?}");
    assert_eq!(bob.exit_code(T), Some(0));

    as_alice.script(&["send", "zed", "hi"], "no such user: zed", 1);

    Account::new(via, "bob", "nope").script(&["recv"], "login refused", 1);
}

/// The client side of 0x0309 (session history), script form and chat mode.
#[test]
fn history_of_a_session_on_request() {
    let msg = demo_server(&[]);
    let addr = msg.addr("client");
    let mut bob = logged_in(addr, "bob", "bob123");
    for text in ["first", "second", "third"] {
        bob.send_text(1, text).unwrap();
        bob.wait_ack(Instant::now() + T).unwrap();
    }
    let mut script =
        Account::new(Via::Msg(addr), "alice", "alice123").run(&["history", "bob", "--count", "2"]);
    let second = script.expect("bob: second");
    assert!(has_local_timestamp(&second), "{second:?}");
    script.expect("bob: third");
    assert_eq!(script.exit_code(T), Some(0));
    assert!(
        !script.seen.iter().any(|l| l.contains("first")),
        "{:?}",
        script.seen
    );

    let mut alice = Client::chat(addr, "alice", "alice123");
    alice.expect("logged in as alice");
    alice.type_line("history bob 3");
    alice.expect("bob: first");
    alice.expect("bob: third");
}

const DEMO_GROUPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/groups.txt");

/// A demo msg_server with the demo groups (100 everyone: alice, bob,
/// carol; 101 engineering: alice, bob).
fn group_server() -> Proc {
    demo_server(&["--GroupsFile", DEMO_GROUPS])
}

#[test]
fn groups_listed_sent_to_shown_with_their_names_and_their_history() {
    let msg = group_server();
    let addr = msg.addr("client");
    let via = Via::Msg(addr);
    let (as_bob, as_carol) = (
        Account::new(via, "bob", "bob123"),
        Account::new(via, "carol", "carol123"),
    );

    // The list with names and members (0x0401 + 0x0403).
    let mut list = as_bob.run(&["groups"]);
    list.expect("everyone (100): normal group, members: alice, bob, carol");
    list.expect("engineering (101): normal group, members: alice, bob");
    assert_eq!(list.exit_code(T), Some(0));

    let mut alice = Client::chat(addr, "alice", "alice123");
    alice.expect("logged in as alice");
    let mut bob = logged_in(addr, "bob", "bob123");

    // In: named by group and sender, local time.
    bob.send_to(Peer::Group(100), "hi all").unwrap();
    bob.wait_ack(Instant::now() + T).unwrap();
    let line = alice.expect("[everyone] bob: hi all");
    assert!(has_local_timestamp(&line), "{line:?}");

    // Out, from chat mode by name and by id: group text (0x11) to the group.
    alice.type_line("send -g everyone hello all");
    alice.type_line("send --group 101 engineers only");
    for (group, text) in [(100, "hello all"), (101, "engineers only")] {
        let m = bob.next_message(Instant::now() + T).unwrap().expect(text);
        assert_eq!(
            (m.from_user_id, m.to_session_id, m.msg_type, m.msg_data),
            (
                1,
                group,
                MsgType::GroupText as i32,
                text.as_bytes().to_vec()
            )
        );
    }
    alice.type_line("send -g sales hello?");
    alice.expect("no such group: sales");
    alice.type_line("send -g 999 hello?");
    alice.expect("no such group: 999");
    alice.type_line("history -g everyone 5");
    alice.expect("[everyone] bob: hi all");
    alice.expect("[everyone] alice: hello all");

    // carol was offline: the script form gets the group message at login,
    // and may not send to a group she is not in.
    let mut carol = as_carol.run(&["recv", "--count", "2"]);
    carol.expect("[everyone] bob: hi all");
    carol.expect("[everyone] alice: hello all");
    assert_eq!(carol.exit_code(T), Some(0));
    as_carol.script(
        &["send", "--group", "engineering", "let me in"],
        "no such group: engineering",
        1,
    );
    as_carol.script(
        &["send", "-g", "100", "bye"],
        "sent message 3 to [everyone]",
        0,
    );
    let mut history = as_carol.run(&["history", "--group", "everyone", "--count", "2"]);
    history.expect("[everyone] alice: hello all");
    history.expect("[everyone] carol: bye");
    assert_eq!(history.exit_code(T), Some(0));
    assert!(!history.seen.iter().any(|l| l.contains("hi all")));

    // A temporary group created after alice logged in: its messages are
    // named once it is fetched, and membership changes are shown.
    let created = bob.create_group("lunch", &[1], T).unwrap();
    assert_eq!(created.result_code, 0);
    let lunch = created.group_id.unwrap();
    bob.send_to(Peer::Group(lunch), "noodles?").unwrap();
    alice.expect("[lunch] bob: noodles?");
    let added = bob
        .change_group(lunch, GroupModifyType::Add, &[3], T)
        .unwrap();
    assert_eq!(added.result_code, 0);
    alice.expect("* bob added carol to lunch");
    alice.type_line("groups");
    alice.expect(&format!(
        "lunch ({lunch}): temporary group, members: alice, bob, carol"
    ));

    // A voice message in a group (MSG_TYPE_GROUP_AUDIO, 0x12) is named as
    // such, not printed as bytes.
    let voice = ImMsgData {
        from_user_id: 2,
        to_session_id: 101,
        msg_id: 0,
        create_time: 0,
        msg_type: MsgType::GroupAudio as i32,
        msg_data: vec![0xff, 0xfe, 0, 1],
        attach_data: None,
    };
    bob.send_pdu(sid::MSG, cid::msg::DATA, &voice).unwrap();
    alice.expect("[engineering] bob: (voice message, 4 bytes)");
    alice.type_line("quit");
    assert_eq!(alice.exit_code(T), Some(0));
}

#[test]
fn temporary_groups_created_changed_and_left_from_the_client() {
    let msg = group_server();
    let addr = msg.addr("client");
    let via = Via::Msg(addr);
    let as_carol = Account::new(via, "carol", "carol123");
    let mut alice = Client::chat(addr, "alice", "alice123");
    alice.expect("logged in as alice");
    let mut bob = logged_in(addr, "bob", "bob123");

    let line = as_carol.script(
        &["group", "create", "tea", "alice", "bob"],
        "created tea (",
        0,
    );
    assert!(line.ends_with("members: alice, bob, carol"), "{line:?}");
    let tea: u32 = line["created tea (".len()..line.find(')').unwrap()]
        .parse()
        .unwrap();

    // Not told of the group at its creation: found when named, and named
    // when its first message arrives.
    alice.type_line("send -g tea tea for me");
    let m = bob.next_message(Instant::now() + T).unwrap().expect("tea");
    assert_eq!((m.from_user_id, m.to_session_id), (1, tea));
    bob.send_to(Peer::Group(tea), "green or black?").unwrap();
    alice.expect("[tea] bob: green or black?");
    alice.type_line("group remove tea bob");
    alice.expect("[tea]: members not changed: refused by the server");
    alice.type_line("group add tea");
    alice.expect("usage: group create");
    alice.type_line("group leave tea");
    alice.expect("left [tea]");
    let left = loop {
        match bob.next_event(Instant::now() + T).unwrap() {
            Some(Event::GroupChange(n)) => break n,
            Some(_) => continue,
            None => panic!("bob was not told"),
        }
    };
    assert_eq!(
        (
            left.user_id,
            left.group_id,
            left.chg_user_id_list,
            left.cur_user_id_list
        ),
        (1, tea, vec![1], vec![2, 3])
    );
    alice.type_line("send -g tea still there?");
    alice.expect("no such group: tea");

    as_carol.script(&["group", "add", "tea", "zed"], "no such user: zed", 1);
    as_carol.script(&["group", "frob", "tea"], "unrecognized subcommand", 2);
    as_carol.script(
        &["group", "remove", "tea", "bob"],
        "[tea]: removed bob; members: carol",
        0,
    );
    alice.type_line("quit");
    assert_eq!(alice.exit_code(T), Some(0));
}
