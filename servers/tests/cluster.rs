//! Several msg_servers as one service: one shared PostgreSQL (started by
//! the test), routing over Debian's nats-server (started by the test), on
//! loopback. A message crosses servers to every connection of its receiver,
//! exactly once and in order; a second login on another server kicks the
//! first; with NATS down messages are still acknowledged and reach their
//! receiver from the database at its next login or, if it stays online,
//! when NATS is back; routing resumes then, without a restart. The same
//! when one server alone loses NATS (its link through a proxy the test
//! cuts), and buddy status changed meanwhile is told when the link is back.

mod common;

use common::cluster::*;
use common::nats::Nats;
use common::pg::TempPostgres;
use common::*;
use std::time::{Duration, Instant};

/// Sends `n` texts `prefix-i` to `to`, waiting for each ack.
fn send(c: &mut servers::client::ImClient, to: u32, prefix: &str, n: usize) {
    for i in 0..n {
        c.send_text(to, &format!("{prefix}-{i}")).unwrap();
        c.wait_ack(Instant::now() + T).unwrap();
    }
}

/// Receives until `n` messages arrived (acking each), panicking after `T`;
/// then checks nothing more comes for a moment.
fn receive(c: &mut servers::client::ImClient, n: usize) -> Vec<(u32, u32, Vec<u8>)> {
    let deadline = Instant::now() + T;
    let mut got = Vec::new();
    while got.len() < n {
        let m = c
            .next_message(deadline)
            .unwrap()
            .unwrap_or_else(|| panic!("only {} of {n} messages arrived", got.len()));
        got.push((m.from_user_id, m.msg_id, m.msg_data));
    }
    got.extend(drain(c, Duration::from_millis(300)));
    got
}

fn texts(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

#[test]
fn messages_cross_servers_to_every_connection_exactly_once_in_order() {
    let c = cluster("cluster-cross", 2, 4);
    let mut alice = user(c.addr(0), 1);
    // Bob on the other server, with a PC and a phone (both get everything).
    let mut bob = user(c.addr(1), 2);
    let mut bob_phone = servers::client::ImClient::connect(c.addr(1), T).unwrap();
    assert_eq!(
        bob_phone.login("u2", "pw2", true, T).unwrap().result_code,
        0
    );
    // Carol on the first server, with Alice: a local receiver still works.
    let mut carol = user(c.addr(0), 3);
    const N: usize = 100;
    send(&mut alice, 2, "ab", N);
    send(&mut alice, 3, "ac", N);
    for b in [&mut bob, &mut bob_phone] {
        let got = receive(b, N);
        let ids: Vec<u32> = got.iter().map(|m| m.1).collect();
        assert_eq!(ids, (1..=N as u32).collect::<Vec<_>>(), "once, in order");
        assert_eq!(
            got.iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
            texts("ab", N)
        );
    }
    assert_eq!(receive(&mut carol, N).len(), N);
    // The other way, and the acks emptied the shared mailboxes.
    send(&mut bob, 1, "ba", 10);
    assert_eq!(receive(&mut alice, 10).len(), 10);
    drop((alice, bob, bob_phone, carol));
    let mut bob = user(c.addr(0), 2);
    assert!(
        drain(&mut bob, Duration::from_millis(500)).is_empty(),
        "all acked before"
    );
}

#[test]
fn the_senders_other_connections_get_a_copy_on_any_server() {
    let c = cluster("cluster-copy", 2, 2);
    let mut alice = user(c.addr(0), 1);
    let mut alice_phone = servers::client::ImClient::connect(c.addr(1), T).unwrap();
    assert_eq!(
        alice_phone.login("u1", "pw1", true, T).unwrap().result_code,
        0
    );
    let mut bob = user(c.addr(1), 2);
    send(&mut alice, 2, "copy", 3);
    assert_eq!(receive(&mut bob, 3).len(), 3);
    let copies = receive(&mut alice_phone, 3);
    assert_eq!(
        copies.iter().map(|m| (m.0, m.1)).collect::<Vec<_>>(),
        [(1, 1), (1, 2), (1, 3)],
        "alice's own messages, once each"
    );
}

#[test]
fn a_login_on_another_server_kicks_the_same_class() {
    let c = cluster("cluster-kick", 2, 2);
    let mut first = user(c.addr(0), 1);
    let mut phone = servers::client::ImClient::connect(c.addr(0), T).unwrap();
    assert_eq!(phone.login("u1", "pw1", true, T).unwrap().result_code, 0);
    let _second = user(c.addr(1), 1);
    let err = first
        .next_message(Instant::now() + T)
        .expect_err("the PC session on the first server is kicked");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionAborted);
    // The phone (another class) stays.
    let mut other = user(c.addr(1), 2);
    other.send_text(1, "still here").unwrap();
    other.wait_ack(Instant::now() + T).unwrap();
    let got = receive(&mut phone, 1);
    assert_eq!(got[0].2, b"still here");
}

/// Two msg_servers, alice (user 1) on the first and bob (2) on the second,
/// linked over NATS; then NATS is killed and alice sends `n` texts
/// `prefix-i` to bob, each acknowledged. Returns NATS's address, to start
/// it again on.
fn alice_sends_with_nats_down(
    tag: &str,
    prefix: &str,
    n: usize,
) -> (
    Cluster,
    std::net::SocketAddr,
    servers::client::ImClient,
    servers::client::ImClient,
) {
    let mut c = cluster(tag, 2, 2);
    let nats_addr = c.nats.addr;
    let mut alice = user(c.addr(0), 1);
    let mut bob = user(c.addr(1), 2);
    send(&mut alice, 2, "live", 3);
    assert_eq!(receive(&mut bob, 3).len(), 3, "linked");
    c.nats = Nats::start_on(free_addr()); // the old one is killed
    send(&mut alice, 2, prefix, n); // still acknowledged
    (c, nats_addr, alice, bob)
}

#[test]
fn without_nats_messages_wait_in_the_database_and_routing_resumes() {
    let (mut c, nats_addr, mut alice, mut bob) =
        alice_sends_with_nats_down("cluster-outage", "stored", 5);
    assert!(drain(&mut bob, Duration::from_millis(500)).is_empty());
    // Bob's next login reads them from the database.
    drop(bob);
    let mut bob = user(c.addr(1), 2);
    let got = receive(&mut bob, 5);
    assert_eq!(
        got.iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
        texts("stored", 5)
    );

    // NATS comes back on its address: the links reconnect by themselves.
    c.nats = Nats::start_on(nats_addr);
    let deadline = Instant::now() + T;
    let mut n = 0;
    loop {
        assert!(Instant::now() < deadline, "routing did not resume");
        alice.send_text(2, &format!("again-{n}")).unwrap();
        alice.wait_ack(Instant::now() + T).unwrap();
        n += 1;
        if let Some(m) = bob
            .next_message(Instant::now() + Duration::from_millis(300))
            .unwrap()
        {
            assert!(m.msg_data.starts_with(b"again-"));
            break;
        }
    }
}

#[test]
fn messages_sent_while_nats_is_down_reach_an_online_receiver_when_it_is_back() {
    let (mut c, nats_addr, _alice, mut bob) =
        alice_sends_with_nats_down("cluster-missed", "missed", 5);
    assert!(drain(&mut bob, Duration::from_millis(500)).is_empty());
    // NATS back: bob's server feeds him his mailbox, in order and once,
    // without a new login.
    c.nats = Nats::start_on(nats_addr);
    let got = receive(&mut bob, 5);
    assert_eq!(
        got.iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
        texts("missed", 5)
    );
    // After the session's 3 live messages.
    let ids: Vec<u32> = got.iter().map(|m| m.1).collect();
    assert_eq!(ids, [4, 5, 6, 7, 8]);
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// The next status notification about `about`, as (user, online).
fn status_of(c: &mut servers::client::ImClient, about: u32) -> bool {
    use servers::client::Event;
    let deadline = Instant::now() + T;
    loop {
        match c.next_event(deadline).unwrap() {
            Some(Event::Status(s)) if s.user_id == about => return s.status == 1,
            Some(_) => {}
            None => panic!("no status notification about user {about}"),
        }
    }
}

#[test]
fn buddy_status_reaches_the_department_on_every_server() {
    let path = users_file_in_dept("cluster-dept", 3, 7);
    let c = cluster_with(&path, 2);
    let mut alice = user(c.addr(0), 1);
    // Both servers' NATS links up first (a change published while a link
    // is still connecting is told at the next refresh, up to 10 s later).
    let mut carol = user(c.addr(1), 3);
    linked(&mut alice, &mut carol);
    let bob = user(c.addr(1), 2);
    assert!(
        status_of(&mut alice, 2),
        "bob on line, told on the other server"
    );
    drop(bob);
    assert!(!status_of(&mut alice, 2), "bob off line");
}

#[test]
fn a_login_while_nats_is_down_is_told_to_the_department_when_it_is_back() {
    let path = users_file_in_dept("cluster-dept-outage", 3, 7);
    let mut c = cluster_with(&path, 2);
    let mut alice = user(c.addr(0), 1);
    let mut carol = user(c.addr(1), 3);
    linked(&mut alice, &mut carol);
    let nats_addr = c.nats.addr;
    c.nats = Nats::start_on(free_addr()); // the old one is killed
    let _bob = user(c.addr(1), 2); // published to nobody
    c.nats = Nats::start_on(nats_addr);
    // Alice's server hears bob in the refresh the link-up asks for.
    assert!(
        status_of(&mut alice, 2),
        "bob on line, told when NATS is back"
    );
}

#[test]
fn a_link_lost_by_one_server_alone_loses_nothing_either_way() {
    use servers::client::Event;
    let path = users_file_in_dept("cluster-one-sided", 3, 7);
    let nats = Nats::start();
    let proxy = testkit::proxy::CutProxy::start(nats.addr);
    // The second server reaches NATS through the proxy; the first does not.
    let c = cluster_via(
        &path,
        2,
        nats,
        |i, addr| if i == 1 { proxy.addr } else { addr },
    );
    let mut alice = user(c.addr(0), 1);
    let mut bob = user(c.addr(1), 2);
    linked(&mut alice, &mut bob);
    proxy.cut();
    // The second server sees its link closed at once; the first keeps its
    // own, and NATS drops what it publishes for users of the second.
    std::thread::sleep(Duration::from_millis(300));
    send(&mut alice, 2, "to-bob", 3);
    send(&mut bob, 1, "to-alice", 3);
    let _carol = user(c.addr(1), 3);
    assert!(
        drain(&mut bob, Duration::from_millis(300)).is_empty(),
        "cut off"
    );
    assert!(
        drain(&mut alice, Duration::from_millis(300)).is_empty(),
        "cut off"
    );
    proxy.restore();
    // The second server's link comes back: it feeds bob his mailbox. The
    // first hears its ASK: it feeds alice hers and, from the refresh,
    // tells her of carol.
    let got = receive(&mut bob, 3);
    assert_eq!(
        got.iter().map(|m| m.2.clone()).collect::<Vec<_>>(),
        texts("to-bob", 3)
    );
    let deadline = Instant::now() + T;
    let (mut to_alice, mut carol_on) = (Vec::new(), false);
    while to_alice.len() < 3 || !carol_on {
        match alice.next_event(deadline).unwrap() {
            Some(Event::Message(m)) => to_alice.push(m.msg_data),
            Some(Event::Status(s)) if s.user_id == 3 => carol_on = s.status == 1,
            Some(_) => {}
            None => panic!(
                "link back: alice has {} of 3 messages; told carol is on line: {carol_on}",
                to_alice.len()
            ),
        }
    }
    assert_eq!(to_alice, texts("to-alice", 3), "in order, once");
    assert!(drain(&mut alice, Duration::from_millis(300)).is_empty());
}

/// Per-user share of the load test: (receiver, text), from a fixed LCG.
fn plan(users: u32, total: usize) -> Vec<Vec<(u32, String)>> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: u32| {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        ((x >> 33) % u64::from(n)) as u32 + 1
    };
    let mut out = vec![Vec::new(); users as usize];
    for i in 0..total {
        let from = next(users);
        let mut to = next(users);
        while to == from {
            to = next(users);
        }
        out[from as usize - 1].push((to, format!("m{i}")));
    }
    out
}

/// Logs `id` in through the login_server (retrying while a dead msg_server
/// is still handed out).
fn login_via(login: std::net::SocketAddr, id: u32) -> servers::client::ImClient {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = servers::client::query_msg_server(login, T).and_then(|addr| {
            let mut c = servers::client::ImClient::connect(addr, T)?;
            let res = c.login(&format!("u{id}"), &format!("pw{id}"), false, T)?;
            assert_eq!(res.result_code, 0);
            Ok(c)
        });
        match attempt {
            Ok(c) => return c,
            Err(e) => {
                assert!(Instant::now() < deadline, "u{id} cannot log in again: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// What one connection received: no (sender, id) twice, ids increasing per
/// sender.
#[derive(Default)]
struct ConnLog {
    last: std::collections::HashMap<u32, u32>,
}

impl ConnLog {
    fn take(&mut self, from: u32, id: u32) {
        let last = self.last.entry(from).or_insert(0);
        assert!(
            id > *last,
            "per connection: {from}#{id} after #{last} (duplicate or out of order)"
        );
        *last = id;
    }
}

/// A message acknowledged to its sender: (from, to, text).
type Acked = (u32, u32, Vec<u8>);

/// Takes the messages arriving within `wait` of each other.
fn receive_logged(
    c: &mut servers::client::ImClient,
    conn: &mut ConnLog,
    got: &mut std::collections::HashSet<(u32, Vec<u8>)>,
    wait: Duration,
) -> std::io::Result<()> {
    while let Some(m) = c.next_message(Instant::now() + wait)? {
        conn.take(m.from_user_id, m.msg_id);
        got.insert((m.from_user_id, m.msg_data));
    }
    Ok(())
}

#[test]
#[ignore = "long (about a minute): scripts/im_cluster_tests.sh"]
fn ten_thousand_messages_over_three_servers_survive_a_kill_9() {
    let pg = TempPostgres::start();
    let nats = Nats::start();
    let users = users_file("cluster-load", USERS);
    let login = login_server(0, &[]);
    let (login_client, login_msg) = (login.addr("client"), login.addr("msg_server"));
    let (url, nats_addr) = (pg.url(), nats.addr.to_string());
    let args = cluster_args(&url, &nats_addr);
    let mut servers: Vec<Proc> = (0..3)
        .map(|_| msg_server(&users, Some(login_msg), &args))
        .collect();
    std::thread::sleep(Duration::from_millis(1500)); // registrations
    load_with_kill_9(login_client, &mut servers[2]);
}

const USERS: u32 = 30;
const TOTAL: usize = 10_000;

/// `USERS` users log in through `login_client` and send `TOTAL` messages
/// between random pairs; `victim` gets kill -9 a third of the way through.
/// Every message acknowledged to its sender arrives, once and in order per
/// connection; the victim's users log in again elsewhere.
fn load_with_kill_9(login_client: std::net::SocketAddr, victim: &mut Proc) {
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let acked: Arc<Mutex<HashSet<Acked>>> = Arc::default();
    let (sent, finished) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let again = Arc::new(AtomicUsize::new(0)); // logins after the kill
    let threads: Vec<_> = plan(USERS, TOTAL)
        .into_iter()
        .enumerate()
        .map(|(i, share)| {
            let me = i as u32 + 1;
            let (acked, sent, finished) = (acked.clone(), sent.clone(), finished.clone());
            let again = again.clone();
            std::thread::spawn(move || {
                let mut c = login_via(login_client, me);
                let mut conn = ConnLog::default();
                let mut got: HashSet<(u32, Vec<u8>)> = HashSet::new();
                for chunk in share.chunks(20) {
                    loop {
                        let before = c.acked.len();
                        let round = chunk
                            .iter()
                            .try_for_each(|(to, text)| c.send_text(*to, text).map(|_| ()))
                            .and_then(|_| c.wait_acks(before + chunk.len(), Instant::now() + T))
                            .and_then(|_| {
                                receive_logged(
                                    &mut c,
                                    &mut conn,
                                    &mut got,
                                    Duration::from_millis(1),
                                )
                            });
                        match round {
                            Ok(()) => break,
                            // Its msg_server died: log in again elsewhere;
                            // what was not acked is sent again.
                            Err(_) => {
                                c = login_via(login_client, me);
                                again.fetch_add(1, Ordering::Relaxed);
                                conn = ConnLog::default();
                            }
                        }
                    }
                    let mut a = acked.lock().unwrap();
                    for (to, text) in chunk {
                        a.insert((me, *to, text.clone().into_bytes()));
                    }
                    sent.fetch_add(chunk.len(), Ordering::Relaxed);
                }
                finished.fetch_add(1, Ordering::Relaxed);
                // Everything acked to its senders for me arrives.
                let deadline = Instant::now() + Duration::from_secs(90);
                loop {
                    if receive_logged(&mut c, &mut conn, &mut got, Duration::from_millis(200))
                        .is_err()
                    {
                        c = login_via(login_client, me);
                        again.fetch_add(1, Ordering::Relaxed);
                        conn = ConnLog::default();
                    }
                    if finished.load(Ordering::Relaxed) == USERS as usize {
                        let want: Vec<_> = acked
                            .lock()
                            .unwrap()
                            .iter()
                            .filter(|m| m.1 == me)
                            .map(|m| (m.0, m.2.clone()))
                            .collect();
                        let missing = want.iter().filter(|m| !got.contains(*m)).count();
                        if missing == 0 {
                            return want.len();
                        }
                        assert!(
                            Instant::now() < deadline,
                            "u{me}: {missing} acked messages never arrived"
                        );
                    }
                }
            })
        })
        .collect();
    // kill -9 of one msg_server a third of the way through.
    let start = Instant::now();
    while sent.load(Ordering::Relaxed) < TOTAL / 3 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    victim.child.kill().unwrap();
    let received: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(received, TOTAL, "every message acked and received");
    let again = again.load(Ordering::Relaxed);
    eprintln!("{again} users logged in again after the kill -9");
    assert!(again > 0, "the killed msg_server had users, who moved");
}

// ---- network namespaces ----------------------------------------------------

/// The hub's address: PostgreSQL, NATS and the login_server's msg_server
/// port, on a bridge in this namespace.
const HUB: &str = "10.201.0.1";

/// A bridge with `HUB` and one network namespace per msg_server joined to
/// it by a veth pair (10.201.0.11, .12, ...): separate addresses, as
/// separate machines would have. Removed when dropped.
struct Net {
    bridge: String,
    namespaces: Vec<String>,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Net {
    /// `None` (after saying why) without the rights to create namespaces.
    fn create(n: usize) -> Option<Net> {
        let tag = std::process::id() % 100_000;
        let mut net = Net {
            bridge: format!("imcb{tag}"),
            namespaces: Vec::new(),
        };
        if let Err(e) = ip(&["link", "add", &net.bridge, "type", "bridge"]) {
            eprintln!("\n*** SKIP: cannot create a bridge (needs root and iproute2): {e} ***\n");
            return None;
        }
        let setup = |net: &mut Net| -> Result<(), String> {
            ip(&["addr", "add", &format!("{HUB}/24"), "dev", &net.bridge])?;
            ip(&["link", "set", &net.bridge, "up"])?;
            for i in 0..n {
                let (ns, veth) = (format!("imc-{tag}-{i}"), format!("imc{tag}v{i}"));
                ip(&["netns", "add", &ns])?;
                net.namespaces.push(ns.clone());
                ip(&[
                    "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
                ])?;
                ip(&["link", "set", &veth, "master", &net.bridge, "up"])?;
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{}/24", Net::addr(i)),
                    "dev",
                    "eth0",
                ])?;
                ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
                ip(&["-n", &ns, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        setup(&mut net).expect("namespace setup");
        Some(net)
    }

    fn addr(i: usize) -> String {
        format!("10.201.0.{}", 11 + i)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in &self.namespaces {
            let _ = ip(&["netns", "del", ns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
    }
}

#[test]
#[ignore = "long, needs root: scripts/im_cluster_tests.sh"]
fn ten_thousand_messages_over_three_servers_in_namespaces_survive_a_kill_9() {
    let Some(net) = Net::create(3) else {
        return;
    };
    let pg = TempPostgres::start_on(Some((HUB, "10.201.0.0/24")));
    let nats = Nats::start_on(std::net::SocketAddr::new(
        HUB.parse().unwrap(),
        free_addr().port(),
    ));
    let users = users_file("cluster-netns", USERS);
    let login = login_server(
        0,
        &[
            "--MsgServerListenIP",
            HUB,
            "--MsgServerAllow",
            "10.201.0.0/24",
        ],
    );
    let login_msg = login.addr("msg_server");
    let (url, nats_addr) = (pg.url_on(HUB), nats.addr.to_string());
    let (users, port) = (
        users.to_str().unwrap().to_string(),
        login_msg.port().to_string(),
    );
    let mut servers: Vec<Proc> = net
        .namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| {
            let addr = Net::addr(i);
            let mut cmd = std::process::Command::new("ip");
            cmd.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_msg_server")])
                .args(["--ListenIP", &addr, "--ListenPort", "0", "--IpAddr1", &addr])
                .args(["--IpAddr2", &addr, "--UsersFile", &users])
                .args(["--LoginServerIP1", HUB, "--LoginServerPort1", &port])
                .args(cluster_args(&url, &nats_addr));
            let p = Proc::start_cmd(cmd, 1);
            assert_eq!(p.addr("client").ip().to_string(), addr);
            p
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500)); // registrations
    load_with_kill_9(login.addr("client"), &mut servers[2]);
}
