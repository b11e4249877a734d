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
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What `n` successive lookups on the login_server's client port answered.
fn answers(login: SocketAddr, n: usize) -> BTreeSet<SocketAddr> {
    (0..n)
        .map(|_| query_msg_server(login, T).unwrap())
        .collect()
}

fn set(addrs: &[SocketAddr]) -> BTreeSet<SocketAddr> {
    addrs.iter().copied().collect()
}

/// Two users exchanging acknowledged messages back and forth on a thread
/// until stopped; every exchange is checked (a lost or wrong message panics
/// the thread). Returns when each exchange completed.
struct Chat {
    stop: Arc<AtomicBool>,
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
        let flag = stop.clone();
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
                i += 1;
                std::thread::sleep(Duration::from_millis(2));
            }
            done
        };
        let thread = match ns {
            Some(ns) => spawn_in(ns, body),
            None => std::thread::spawn(body),
        };
        Chat { stop, thread }
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
        answers(login.addr("client"), 4) == set(&[a1, a2])
    });

    // m1: u1 and u2 chatting plus u3..u5 idle (5 users); m2: u6 (1).
    let chat = Chat::start(None, move || (user(a1, 1), user(a1, 2)));
    let mut idle: Vec<ImClient> = (3..=5).map(|id| user(a1, id)).collect();
    let _u6 = user(a2, 6);
    eventually("the login_server to see m1 5, m2 1", T, || {
        answers(login.addr("client"), 4) == set(&[a2])
    });
    std::thread::sleep(Duration::from_millis(300)); // some load before the kill

    let mut login = login;
    let killed = Instant::now();
    login.child.kill().unwrap(); // SIGKILL
    login.child.wait().unwrap();
    // While it is down: m1 drops to 2 users, m2 grows to 5.
    idle.clear();
    let _late: Vec<ImClient> = (7..=10).map(|id| user(a2, id)).collect();
    std::thread::sleep(Duration::from_millis(700));
    let login = login_server(link_addr.port(), &[]);
    let restarted = Instant::now();
    let lookup = login.addr("client");
    eventually("both msg_servers reconnected", T, || {
        established_on(link_addr.port()) == 2
    });
    let reconnected = restarted.elapsed();
    // Registration is the first frame on a link; give it time to be read.
    std::thread::sleep(Duration::from_millis(500));
    // Right counts (m1 2, m2 5): always m1. Stale counts (5 and 1) would
    // answer m2; zeros would rotate between both.
    assert_eq!(
        answers(lookup, 6),
        set(&[a1]),
        "choice after re-registration"
    );

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
        answers(lookup, 4) == set(&[a1, a2])
    });
    more.push(user(a1, 14));
    eventually("m1 6 and m2 5: m2", T, || answers(lookup, 4) == set(&[a2]));

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
        answers(lookup, 4) == set(&[a1, a2])
    });
    let chat = Chat::start(None, move || (user(a1, 1), user(a1, 2)));
    eventually("m1 more loaded than m2", T, || {
        answers(lookup, 4) == set(&[a2])
    });
    let mut u3 = user(query_msg_server(lookup, T).unwrap(), 3);

    let killed = Instant::now();
    m2.child.kill().unwrap();
    m2.child.wait().unwrap();
    eventually("new logins sent to m1", T, || {
        answers(lookup, 4) == set(&[a1])
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

/// Two network namespaces joined by a veth pair (10.200.0.1 in `a`,
/// 10.200.0.2 in `b`), deleted when dropped (also on panic), with whatever
/// is still inside them.
struct Netns {
    a: String,
    b: String,
}

const ADDR_A: &str = "10.200.0.1";
const ADDR_B: &str = "10.200.0.2";

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// `None` (after printing why) when namespaces or nft are unavailable.
    fn create() -> Option<Netns> {
        let tag = format!("netlib-{}", std::process::id());
        let (a, b) = (format!("{tag}-a"), format!("{tag}-b"));
        if let Err(e) = run("ip", &["netns", "add", &a]) {
            eprintln!(
                "\n*** SKIP partition test: cannot create a network namespace \
                 (needs root / CAP_SYS_ADMIN + CAP_NET_ADMIN and iproute2): {e} ***\n"
            );
            return None;
        }
        let ns = Netns {
            a: a.clone(),
            b: b.clone(),
        };
        if let Err(e) = run("nft", &["--version"]) {
            eprintln!("\n*** SKIP partition test: nft not available (apt-get install nftables): {e} ***\n");
            return None;
        }
        let setup = || -> Result<(), String> {
            run("ip", &["netns", "add", &b])?;
            run(
                "ip",
                &[
                    "-n", &a, "link", "add", "va", "type", "veth", "peer", "name", "vb", "netns",
                    &b,
                ],
            )?;
            for (n, dev, addr) in [(&a, "va", ADDR_A), (&b, "vb", ADDR_B)] {
                run(
                    "ip",
                    &["-n", n, "addr", "add", &format!("{addr}/24"), "dev", dev],
                )?;
                run("ip", &["-n", n, "link", "set", dev, "up"])?;
                run("ip", &["-n", n, "link", "set", "lo", "up"])?;
            }
            Ok(())
        };
        setup().expect("namespace setup");
        Some(ns)
    }

    /// Starts `bin` inside namespace `ns` (`ip netns exec` execs it, so the
    /// child's pid is the server's).
    fn start(ns: &str, bin: &str, args: &[&str], expect: usize) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, bin]).args(args);
        let p = Proc::start_cmd(cmd, expect);
        let exe = std::fs::read_link(format!("/proc/{}/exe", p.pid())).unwrap();
        assert!(exe.ends_with(std::path::Path::new(bin).file_name().unwrap()));
        p
    }

    /// Runs `nft` in namespace `ns` with `script` as its input file.
    fn nft(ns: &str, script: &str) {
        let path = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("nft-{}.nft", std::process::id()));
        std::fs::write(&path, script).unwrap();
        run(
            "ip",
            &["netns", "exec", ns, "nft", "-f", path.to_str().unwrap()],
        )
        .unwrap();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

/// Runs `f` on a new thread inside network namespace `ns`.
fn spawn_in<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> JoinHandle<R> {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a valid namespace descriptor; only this thread moves.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    spawn_in(ns, f).join().unwrap()
}

#[test]
fn a_partition_is_detected_by_heartbeats_and_the_link_returns_after_it_heals() {
    let Some(ns) = Netns::create() else {
        return;
    };
    let users = users_file("faults-partition", 4);
    let login = Netns::start(
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
    let mut msg = Netns::start(
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
    Netns::nft(
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
