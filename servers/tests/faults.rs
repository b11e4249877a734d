//! Injected faults: the real binaries, with a process killed (SIGKILL) or
//! the network between them cut, while users chat.
//!
//! - login_server killed under load and restarted: logged-in users keep
//!   chatting (they never talk to it), the msg_servers re-register, and the
//!   counts they register with are the live ones - checked through the
//!   login_server's choice between two msg_servers whose loads changed
//!   while it was down;
//! - one of two msg_servers killed: new logins go to the other;
//! - a partition between msg_server and login_server, each in its own
//!   network namespace joined by a veth pair, made with nft drop rules (tc
//!   netem is not available in this kernel): the heartbeat timeout notices
//!   it, the link comes back after it heals. Needs root (`ip netns`, nft);
//!   without it the test prints SKIP and passes.
//!
//! Run with `cargo test -p servers --test faults -- --nocapture`.

mod common;

use common::*;
use servers::client::{query_msg_server, query_msg_server_http, ImClient};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use testkit::{in_ns, run, spawn_in, NetnsPair};

/// What `n` successive lookups on the login_server's client port answered.
fn answers(login: SocketAddr, n: usize) -> BTreeSet<SocketAddr> {
    (0..n)
        .map(|_| query_msg_server(login, T).unwrap())
        .collect()
}

/// [`answers`] for polling: `None` while a lookup is refused (no msg_server
/// registered yet, e.g. just after a start or restart).
fn lookups(login: SocketAddr, n: usize) -> Option<BTreeSet<SocketAddr>> {
    (0..n).map(|_| query_msg_server(login, T).ok()).collect()
}

fn set(addrs: &[SocketAddr]) -> BTreeSet<SocketAddr> {
    addrs.iter().copied().collect()
}

/// Two users exchanging acknowledged messages back and forth on a thread
/// until stopped; every exchange is checked (a lost or wrong message panics
/// the thread). Returns when each exchange completed.
struct Chat {
    stop: Arc<AtomicBool>,
    /// Exchanges completed so far.
    exchanges: Arc<AtomicUsize>,
    thread: JoinHandle<Vec<Instant>>,
}

impl Chat {
    /// `connect` runs on the chat thread, inside network namespace `ns` if
    /// given.
    fn start(
        ns: Option<&str>,
        connect: impl FnOnce() -> (ImClient, ImClient) + Send + 'static,
    ) -> Chat {
        let stop = Arc::new(AtomicBool::new(false));
        let exchanges = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), exchanges.clone());
        let body = move || {
            let (mut a, mut b) = connect();
            let mut done = Vec::new();
            let mut i = 0u64;
            while !flag.load(Ordering::Relaxed) {
                if i % 2 == 0 {
                    still_chatting(&mut a, &mut b, &format!("a->b {i}"));
                } else {
                    still_chatting(&mut b, &mut a, &format!("b->a {i}"));
                }
                done.push(Instant::now());
                count.fetch_add(1, Ordering::Relaxed);
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            done
        };
        let thread = match ns {
            Some(ns) => spawn_in(ns, body),
            None => std::thread::spawn(body),
        };
        Chat {
            stop,
            exchanges,
            thread,
        }
    }

    fn exchanges(&self) -> usize {
        self.exchanges.load(Ordering::Relaxed)
    }

    fn finish(self) -> Vec<Instant> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("chat failed")
    }
}

fn between(times: &[Instant], from: Instant, to: Instant) -> usize {
    times.iter().filter(|t| **t >= from && **t <= to).count()
}

#[test]
fn login_server_killed_under_load_comes_back_with_the_right_counts() {
    let users = users_file("faults-kill", 16);
    let login = login_server(0, &[]);
    let link_addr = login.addr("msg_server");
    let m1 = msg_server(&users, Some(link_addr), &[]);
    let m2 = msg_server(&users, Some(link_addr), &[]);
    let (a1, a2) = (m1.addr("client"), m2.addr("client"));
    eventually("both msg_servers registered", T, || {
        lookups(login.addr("client"), 4) == Some(set(&[a1, a2]))
    });

    // m1: u1 and u2 chatting plus u3..u5 idle (5 users); m2: u6 (1).
    let chat = Chat::start(None, move || (user(a1, 1), user(a1, 2)));
    let mut idle: Vec<ImClient> = (3..=5).map(|id| user(a1, id)).collect();
    let _u6 = user(a2, 6);
    eventually("the login_server to see m1 5, m2 1", T, || {
        lookups(login.addr("client"), 4) == Some(set(&[a2]))
    });
    std::thread::sleep(Duration::from_millis(300)); // some load before the kill

    let mut login = login;
    let killed = Instant::now();
    login.child.kill().unwrap(); // SIGKILL
    login.child.wait().unwrap();
    // While it is down: m1 drops to 2 users, m2 grows to 5, and u1/u2
    // keep chatting (bounded wait: a loaded machine is slow, not wrong).
    idle.clear();
    let _late: Vec<ImClient> = (7..=10).map(|id| user(a2, id)).collect();
    let at_kill = chat.exchanges();
    eventually("20 exchanges while the login_server is down", T, || {
        chat.exchanges() >= at_kill + 20
    });
    let log = std::env::temp_dir().join(format!("faults-login-{}.log", std::process::id()));
    let login = login_server_logging_to(link_addr.port(), &log);
    let restarted = Instant::now();
    let lookup = login.addr("client");
    // The registrations the msg_servers sent on their new links, as the
    // login_server logged them (it logs each one before using it).
    let registered = || registrations(&log, &[a1, a2]);
    eventually("both msg_servers re-registered", T, || {
        registered().iter().all(Option::is_some)
    });
    let reconnected = restarted.elapsed();
    assert_eq!(
        registered(),
        [Some(2), Some(5)],
        "user counts m1 and m2 registered with (live: 2 and 5; stale: 5 and 1)"
    );
    // Right counts (m1 2, m2 5): always m1. Stale counts (5 and 1) would
    // answer m2; zeros would rotate between both.
    assert_eq!(
        answers(lookup, 6),
        set(&[a1]),
        "choice after re-registration"
    );
    let _ = std::fs::remove_file(&log);

    // Updates after the restart are counted too: m1 up to 5 ties with m2,
    // one more makes m2 the choice.
    let mut more = Vec::new();
    for id in 11..=13 {
        let at = query_msg_server(lookup, T).unwrap();
        assert_eq!(at, a1, "login of u{id} sent to the less loaded m1");
        more.push(user(at, id));
        std::thread::sleep(Duration::from_millis(50));
    }
    eventually("m1 5 and m2 5: rotation", T, || {
        lookups(lookup, 4) == Some(set(&[a1, a2]))
    });
    more.push(user(a1, 14));
    eventually("m1 6 and m2 5: m2", T, || {
        lookups(lookup, 4) == Some(set(&[a2]))
    });

    let times = chat.finish();
    let during = between(&times, killed, restarted);
    println!(
        "kill -9 login_server: down {:?}; {} exchanges between u1 and u2 while it was down, {} in all, \
         every one acked and delivered; both msg_servers re-registered {reconnected:?} after the restart; \
         counts after (m1 2, m2 5) chose m1 6/6 times, then followed 4 logins to m1 (tie, then m2)",
        restarted - killed,
        during,
        times.len(),
    );
    assert!(during > 0, "no messages while the login_server was down");
}

/// [`login_server`] on `msg_port` with its log (info level) in `log`
/// instead of nowhere.
fn login_server_logging_to(msg_port: u16, log: &std::path::Path) -> Proc {
    let mut cmd = std::process::Command::new("sh");
    // `exec` keeps the pid, so dropping the Proc kills the server itself.
    cmd.args(["-c", "exec \"$0\" \"$@\" 2>\"$FAULTS_LOG\""])
        .arg(env!("CARGO_BIN_EXE_login_server"))
        .args(["--ClientPort", "0", "--HttpPort", "0", "--MsgServerPort"])
        .arg(msg_port.to_string())
        .env("FAULTS_LOG", log)
        .env("RUST_LOG", "info");
    Proc::start_cmd(cmd, 3)
}

/// The user count each of `servers` (by client address) last registered
/// with, read from a login_server log (`... registered: ip/ip:port cur/max
/// users`); `None` for one not registered yet.
fn registrations(log: &std::path::Path, servers: &[SocketAddr]) -> Vec<Option<u32>> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    servers
        .iter()
        .map(|s| {
            let key = format!(":{} ", s.port());
            text.lines()
                .rev()
                .filter(|l| l.contains(" registered: "))
                .find_map(|l| {
                    let rest = &l[l.find(&key)? + key.len()..];
                    rest.split('/').next()?.parse().ok()
                })
        })
        .collect()
}

#[test]
fn killing_one_of_two_msg_servers_sends_new_logins_to_the_other() {
    let users = users_file("faults-two", 8);
    let login = login_server(0, &[]);
    let lookup = login.addr("client");
    let link_addr = login.addr("msg_server");
    let m1 = msg_server(&users, Some(link_addr), &[]);
    let mut m2 = msg_server(&users, Some(link_addr), &[]);
    let (a1, a2) = (m1.addr("client"), m2.addr("client"));
    eventually("both msg_servers registered", T, || {
        lookups(lookup, 4) == Some(set(&[a1, a2]))
    });
    let chat = Chat::start(None, move || (user(a1, 1), user(a1, 2)));
    eventually("m1 more loaded than m2", T, || {
        lookups(lookup, 4) == Some(set(&[a2]))
    });
    let mut u3 = user(query_msg_server(lookup, T).unwrap(), 3);

    let killed = Instant::now();
    m2.child.kill().unwrap();
    m2.child.wait().unwrap();
    eventually("new logins sent to m1", T, || {
        lookups(lookup, 4) == Some(set(&[a1]))
    });
    let failover = killed.elapsed();
    let at = query_msg_server(lookup, T).unwrap();
    let mut u4 = user(at, 4);
    let mut u5 = user(query_msg_server(lookup, T).unwrap(), 5);
    still_chatting(&mut u4, &mut u5, "on the survivor");
    // u3's connection died with m2; logging in again lands on m1.
    assert!(u3.next_message(Instant::now() + T).is_err());
    let mut u3 = user(query_msg_server(lookup, T).unwrap(), 3);
    still_chatting(&mut u3, &mut u4, "u3 is back");
    let times = chat.finish();
    println!(
        "kill -9 one of two msg_servers: the login_server stopped handing it out {failover:?} after the kill; \
         3 new logins went to the survivor; u1/u2 on the survivor made {} exchanges meanwhile",
        between(&times, killed, Instant::now()),
    );
}

// ---- network namespaces --------------------------------------------------

// Two namespaces joined by a veth pair (testkit::NetnsPair): the login_server
// in `a`, the msg_server in `b`.
const ADDR_A: &str = "10.200.0.1";
const ADDR_B: &str = "10.200.0.2";

/// Starts `bin` inside namespace `ns` and waits for `expect` LISTEN lines.
fn start_in(ns: &str, bin: &str, args: &[&str], expect: usize) -> Proc {
    let mut cmd = NetnsPair::command(ns, bin);
    cmd.args(args);
    let p = Proc::start_cmd(cmd, expect);
    let exe = std::fs::read_link(format!("/proc/{}/exe", p.pid())).unwrap();
    assert!(exe.ends_with(std::path::Path::new(bin).file_name().unwrap()));
    p
}

#[test]
fn a_partition_is_detected_by_heartbeats_and_the_link_returns_after_it_heals() {
    let Some(ns) = NetnsPair::create("netlib", ADDR_A, ADDR_B) else {
        return;
    };
    let users = users_file("faults-partition", 4);
    let login = start_in(
        &ns.a,
        env!("CARGO_BIN_EXE_login_server"),
        &[
            "--ClientListenIP",
            ADDR_A,
            "--ClientPort",
            "0",
            "--HttpListenIP",
            ADDR_A,
            "--HttpPort",
            "0",
            "--MsgServerListenIP",
            ADDR_A,
            "--MsgServerPort",
            "0",
            "--MsgServerHeartbeatMs",
            "200",
            "--MsgServerTimeoutMs",
            "1000",
            // msg_server registers from the other namespace, proving a key.
            "--MsgServerAllow",
            "10.200.0.2/32",
            "--MsgServerKey",
            "partition-key",
        ],
        3,
    );
    let http = login.addr("http");
    let link_port = login.addr("msg_server").port().to_string();
    let db = common::db_path("partition");
    let mut msg = start_in(
        &ns.b,
        env!("CARGO_BIN_EXE_msg_server"),
        &[
            "--DbPath",
            db.to_str().unwrap(),
            "--ListenIP",
            ADDR_B,
            "--ListenPort",
            "0",
            "--UsersFile",
            users.to_str().unwrap(),
            "--LoginServerIP1",
            ADDR_A,
            "--LoginServerPort1",
            &link_port,
            "--LinkRetryMinMs",
            "100",
            "--LinkHeartbeatMs",
            "200",
            "--LinkIdleMs",
            "1000",
            "--LoginServerKey",
            "partition-key",
        ],
        1,
    );
    msg.db = Some(db.clone());
    let ms_addr = msg.addr("client");
    // Asked from inside the login_server's namespace.
    let lookup = |ns: &str| in_ns(ns, move || query_msg_server_http(http, T).ok());
    eventually("msg_server registered", T, || {
        lookup(&ns.a) == Some(ms_addr)
    });
    let chat = Chat::start(Some(&ns.b), move || (user(ms_addr, 1), user(ms_addr, 2)));

    let cut = Instant::now();
    ns.nft(
        &ns.a,
        &format!(
            "table inet netlib_partition {{\n\
             chain in {{ type filter hook input priority 0; policy accept; ip saddr {ADDR_B} drop; }}\n\
             chain out {{ type filter hook output priority 0; policy accept; ip daddr {ADDR_B} drop; }}\n\
             }}\n"
        ),
    );
    eventually("the login_server to drop the link", T, || {
        lookup(&ns.a).is_none()
    });
    let detected = cut.elapsed();
    std::thread::sleep(Duration::from_secs(2));
    let healed = Instant::now();
    run(
        "ip",
        &[
            "netns",
            "exec",
            &ns.a,
            "nft",
            "delete",
            "table",
            "inet",
            "netlib_partition",
        ],
    )
    .unwrap();
    eventually("the link to return", Duration::from_secs(30), || {
        lookup(&ns.a) == Some(ms_addr)
    });
    let recovered = healed.elapsed();
    let times = chat.finish();
    let during = between(&times, cut, healed);
    println!(
        "partition (nft drop both ways, heartbeat 200 ms, idle limit 1000 ms): login_server dropped the \
         msg_server {detected:?} after the cut; link back and registered {recovered:?} after healing; \
         users on the msg_server made {during} exchanges during the partition ({} in all)",
        times.len()
    );
    assert!(during > 0, "users stopped chatting during the partition");
    drop(msg);
    drop(login);
    drop(ns);
}
