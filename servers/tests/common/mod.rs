//! What the end-to-end and reliability tests (`im_flow.rs`, `hostile.rs`,
//! `faults.rs`, `exhaustion.rs`) share: server processes started on
//! ephemeral ports (read from their `LISTEN <name> <addr>` lines), their resident memory and CPU time from `/proc`, a
//! users file with many accounts, and a few client helpers.

#![allow(dead_code)] // each test file uses its own subset

pub mod cluster;
pub mod groups;
pub use testkit::{nats, pg};

use servers::client::ImClient;
use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Read and connect timeout of the helpers.
pub const T: Duration = Duration::from_secs(10);

/// A server process, killed (SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub listens: Vec<(String, SocketAddr)>,
    /// A database file (and its WAL files) removed after the process.
    pub db: Option<PathBuf>,
}

impl Proc {
    /// Starts `bin` and waits for `expect` LISTEN lines.
    pub fn start(bin: &str, args: &[&str], expect: usize) -> Proc {
        let mut cmd = Command::new(bin);
        cmd.args(args);
        Proc::start_cmd(cmd, expect)
    }

    /// Starts a prepared command (e.g. with a `pre_exec` or behind
    /// `ip netns exec`) and waits for `expect` LISTEN lines.
    pub fn start_cmd(cmd: Command, expect: usize) -> Proc {
        let mut child = testkit::spawn_piped(cmd);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut listens = Vec::new();
        while listens.len() < expect {
            let line = lines
                .next()
                .expect("server exited before listening")
                .unwrap();
            if let Some(rest) = line.strip_prefix("LISTEN ") {
                let (name, addr) = rest.split_once(' ').unwrap();
                listens.push((name.to_string(), addr.parse().unwrap()));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Proc {
            child,
            listens,
            db: None,
        }
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.listens.iter().find(|(n, _)| n == name).unwrap().1
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Resident memory in KiB (`VmRSS`).
    pub fn rss_kb(&self) -> u64 {
        rss_kb(self.pid())
    }

    /// User + system CPU time in clock ticks (`/proc/<pid>/stat`).
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split(' ').collect();
        // Fields 14 and 15 of stat(5); `after` starts at field 3.
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }

    /// Open file descriptors of the process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(db) = &self.db {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", db.display()));
            }
        }
    }
}

/// `VmRSS` of `pid` in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

pub fn login_server(msg_port: u16, extra: &[&str]) -> Proc {
    let port = msg_port.to_string();
    let mut args = vec![
        "--ClientPort",
        "0",
        "--HttpPort",
        "0",
        "--MsgServerPort",
        &port,
    ];
    args.extend(extra);
    Proc::start(env!("CARGO_BIN_EXE_login_server"), &args, 3)
}

/// A users file with accounts `u1`..`u<n>` (ids 1..n, password `pw<id>`),
/// in the target directory, named after `tag`.
pub fn users_file(tag: &str, n: u32) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let path = dir.join(format!("users-{tag}-{}.txt", std::process::id()));
    let mut text = String::new();
    for id in 1..=n {
        text.push_str(&servers::users::user_line(
            id,
            &format!("u{id}"),
            &format!("s{id}"),
            &format!("pw{id}"),
        ));
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    path
}

/// A users file like [`users_file`] whose accounts are all in department
/// `dept` (declared in the file).
pub fn users_file_in_dept(tag: &str, n: u32, dept: u32) -> PathBuf {
    let path = users_file(tag, n);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut out = format!("dept {dept} 0 Everyone\n");
    for line in text.lines() {
        out.push_str(&format!("{line} {dept}\n"));
    }
    std::fs::write(&path, out).unwrap();
    path
}

/// A fresh database path in the target directory, named after `tag`
/// (removed first, with its WAL files, if a previous run left one).
pub fn db_path(tag: &str) -> PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let n = N.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!("msg-{tag}-{}-{n}.db", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    path
}

/// msg_server with `users`, registering with `login` if given; its database
/// is a fresh file unless `extra` names one (`--DbPath`).
pub fn msg_server(users: &std::path::Path, login: Option<SocketAddr>, extra: &[&str]) -> Proc {
    let users = users.to_str().unwrap().to_string();
    let fresh = db_path("t");
    let db = fresh.to_str().unwrap().to_string();
    let mut args = vec![
        "--ListenPort",
        "0",
        "--UsersFile",
        &users,
        "--LinkRetryMinMs",
        "100",
    ];
    if !extra.contains(&"--DbPath") {
        args.extend(["--DbPath", &db]);
    }
    let (ip, port);
    if let Some(l) = login {
        ip = l.ip().to_string();
        port = l.port().to_string();
        args.extend(["--LoginServerIP1", &ip, "--LoginServerPort1", &port]);
    }
    args.extend(extra);
    let mut p = Proc::start(env!("CARGO_BIN_EXE_msg_server"), &args, 1);
    if !extra.contains(&"--DbPath") {
        p.db = Some(fresh);
    }
    p
}

/// User `id` of a [`users_file`], logged in.
pub fn user(addr: SocketAddr, id: u32) -> ImClient {
    let mut c = ImClient::connect(addr, T).unwrap();
    let res = c
        .login(&format!("u{id}"), &format!("pw{id}"), false, T)
        .unwrap();
    assert_eq!(res.result_code, 0, "login of u{id}");
    c
}

/// Reads until end-of-stream or reset; panics if `within` passes first.
/// Returns how long it took.
pub fn wait_closed(s: &mut TcpStream, within: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 16 * 1024];
    loop {
        let left = within.saturating_sub(start.elapsed());
        assert!(!left.is_zero(), "still open after {within:?}");
        s.set_read_timeout(Some(left)).unwrap();
        match s.read(&mut buf) {
            Ok(0) => return start.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(e) => panic!("expected close, got {e}"),
        }
    }
}

/// Polls `f` every 20 ms until it holds or `within` passes.
pub fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `alice` (u1) sends to `bob` (u2) and it arrives, acked.
pub fn still_chatting(alice: &mut ImClient, bob: &mut ImClient, text: &str) {
    alice.send_text(bob.user_id, text).unwrap();
    alice.wait_ack(Instant::now() + T).unwrap();
    let m = bob
        .next_message(Instant::now() + T)
        .unwrap()
        .expect("message delivered");
    assert_eq!(m.msg_data, text.as_bytes());
}

/// Raises this process's soft descriptor limit to the hard one (children
/// inherit it). Returns the new soft limit.
pub fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = lim.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
    lim.rlim_cur
}

/// A command for `bin` whose descriptor limit (soft and hard) is `nofile`.
pub fn with_nofile(bin: &str, args: &[&str], nofile: u64) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin);
    cmd.args(args);
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the
    // parent; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let lim = libc::rlimit {
                rlim_cur: nofile as libc::rlim_t,
                rlim_max: nofile as libc::rlim_t,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd
}

/// Established TCP connections in this network namespace whose local port
/// is `port` (the accepted side of connections to a listener on `port`).
pub fn established_on(port: u16) -> usize {
    let mut n = 0;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local_port = f
                .get(1)
                .and_then(|a| a.rsplit_once(':'))
                .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
            if local_port == Some(port) && f.get(3) == Some(&"01") {
                n += 1;
            }
        }
    }
    n
}

/// Sends `req` as (`service`, `command`) and returns the first answer with
/// command `answer` (frames in between - deliveries, acks - are skipped).
pub fn ask<Req: pdu::Message, Rsp: pdu::Message + Default>(
    c: &mut ImClient,
    service: u16,
    command: u16,
    req: &Req,
    answer: u16,
) -> Rsp {
    let seq = c.send_pdu(service, command, req).unwrap();
    let deadline = Instant::now() + T;
    loop {
        let pdu = c.recv_pdu(deadline).unwrap();
        if pdu.command_id() == answer {
            assert_eq!(
                pdu.seq_num(),
                seq,
                "answer {answer:#x} carries the request's seq"
            );
            return pdu.decode_body().unwrap();
        }
    }
}

/// A session's whole history as (msg_id, sender, text), oldest first,
/// fetched a page (0x0309) at a time.
pub fn history(c: &mut ImClient, peer: u32) -> Vec<(u32, u32, Vec<u8>)> {
    use pdu::proto::{ImGetMsgListReq, ImGetMsgListRsp, SessionType};
    let mut out = Vec::new();
    let mut begin = 0;
    loop {
        let req = ImGetMsgListReq {
            user_id: c.user_id,
            session_type: SessionType::Single as i32,
            session_id: peer,
            msg_id_begin: begin,
            msg_cnt: 100,
            attach_data: None,
        };
        let rsp: ImGetMsgListRsp = ask(
            c,
            pdu::sid::MSG,
            pdu::cid::msg::LIST_REQUEST,
            &req,
            pdu::cid::msg::LIST_RESPONSE,
        );
        let last = rsp.msg_list.last().map(|m| m.msg_id);
        out.extend(
            rsp.msg_list
                .into_iter()
                .map(|m| (m.msg_id, m.from_session_id, m.msg_data)),
        );
        match last {
            Some(id) if id > 1 => begin = id - 1,
            _ => break,
        }
    }
    out.reverse();
    out
}

/// Every message delivered to `c` until nothing arrives for `quiet`
/// (each is acked), as (sender, msg_id, text).
pub fn drain(c: &mut ImClient, quiet: Duration) -> Vec<(u32, u32, Vec<u8>)> {
    let mut got = Vec::new();
    while let Some(m) = c.next_message(Instant::now() + quiet).unwrap() {
        got.push((m.from_user_id, m.msg_id, m.msg_data));
    }
    got
}
