//! Test support shared by the workspace's tests (a dev-dependency, and a
//! dependency of the bench crate's drivers): running a command and getting
//! its error text, starting a server process with its output piped, a
//! temporary directory ([`TempDir`]), a
//! temporary PostgreSQL server ([`pg`]) and a nats-server ([`nats`]), a TCP
//! proxy a test can cut ([`proxy`]: one process losing a server, no root), a pair of
//! network namespaces joined by a veth pair ([`NetnsPair`]) and a LAN of
//! namespaces on one bridge ([`Lan`]) that a test creates, cuts with
//! nft and deletes - with whatever still runs inside - when dropped (also
//! on panic). Needs root (CAP_SYS_ADMIN + CAP_NET_ADMIN), iproute2 and
//! nftables; [`NetnsPair::create`] and [`Lan::create`] return `None` after printing SKIP when
//! they are missing, so a test can pass without them.
#![warn(missing_docs)]

pub mod nats;
pub mod pg;
pub mod proxy;
mod tempdir;

pub use tempdir::TempDir;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Runs `cmd args...`; `Err` with its stderr if it fails.
pub fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
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

/// Starts `cmd` with its stdout piped for the test to read, its stderr
/// shown only when `NETLIB_TEST_LOGS` is set (the servers' logs).
pub fn spawn_piped(mut cmd: Command) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(if std::env::var_os("NETLIB_TEST_LOGS").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Takes `child`'s piped stdout (see [`spawn_piped`]) and collects its
/// lines, as they come, into the returned list (a reader thread ends at
/// EOF).
pub fn collect_lines(child: &mut Child) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let out = child.stdout.take().expect("stdout piped");
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            match line {
                Ok(line) => l.lock().unwrap_or_else(|p| p.into_inner()).push(line),
                Err(_) => return,
            }
        }
    });
    lines
}

/// Two network namespaces `a` and `b` joined by a veth pair (`va` in `a`,
/// `vb` in `b`), with the addresses given to [`create`](Self::create) on a
/// /24 and loopback up in both.
#[derive(Debug)]
pub struct NetnsPair {
    /// The first namespace's name.
    pub a: String,
    /// The second namespace's name.
    pub b: String,
}

impl NetnsPair {
    /// Creates `<tag>-<pid>-a` and `<tag>-<pid>-b` with `addr_a` and
    /// `addr_b`; `None` (after printing SKIP and why) without root or nft.
    /// Panics if the setup fails half-way (what was made is removed).
    pub fn create(tag: &str, addr_a: &str, addr_b: &str) -> Option<NetnsPair> {
        let base = format!("{tag}-{}", std::process::id());
        let (a, b) = (format!("{base}-a"), format!("{base}-b"));
        if let Err(e) = run("ip", &["netns", "add", &a]) {
            eprintln!(
                "\n*** SKIP: cannot create a network namespace \
                 (needs root / CAP_SYS_ADMIN + CAP_NET_ADMIN and iproute2): {e} ***\n"
            );
            return None;
        }
        let pair = NetnsPair {
            a: a.clone(),
            b: b.clone(),
        };
        if let Err(e) = run("nft", &["--version"]) {
            eprintln!("\n*** SKIP: nft not available (apt-get install nftables): {e} ***\n");
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
            for (n, dev, addr) in [(&a, "va", addr_a), (&b, "vb", addr_b)] {
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
        Some(pair)
    }

    /// A command running `bin` inside namespace `ns` (`ip netns exec`
    /// execs it, so the child's pid is `bin`'s).
    pub fn command(ns: &str, bin: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, bin]);
        cmd
    }

    /// Runs `nft` in namespace `ns` with `script` as its input file.
    /// Panics if nft refuses it.
    pub fn nft(&self, ns: &str, script: &str) {
        nft_in(ns, script);
    }
}

/// Runs `nft` in namespace `ns` with `script` as its input file.
/// Panics if nft refuses it.
pub fn nft_in(ns: &str, script: &str) {
    let path = std::env::temp_dir().join(format!("{ns}.nft"));
    std::fs::write(&path, script).unwrap();
    let result = run(
        "ip",
        &["netns", "exec", ns, "nft", "-f", path.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&path);
    result.unwrap();
}

/// Hosts in namespaces of their own, each with `eth0` on `<subnet>.<octet>/24`,
/// joined by veth pairs to a bridge in a "switch" namespace; everything is
/// deleted on drop.
#[derive(Debug)]
pub struct Lan {
    base: String,
    subnet: String,
    hosts: Vec<String>,
}

impl Lan {
    /// Hosts `<subnet>.<o>` for each `o` in `octets` (`subnet` like
    /// `"10.78.0"`), in namespaces `<tag><pid>-<o>`; `None` (after printing
    /// SKIP and why) without root or nft. Panics if the setup fails
    /// half-way (what was made is removed).
    pub fn create(tag: &str, subnet: &str, octets: &[u8]) -> Option<Lan> {
        let base = format!("{tag}{}", std::process::id());
        let sw = format!("{base}-sw");
        if let Err(e) = run("ip", &["netns", "add", &sw]) {
            eprintln!(
                "\n*** SKIP: cannot create a network namespace \
                 (needs root / CAP_SYS_ADMIN + CAP_NET_ADMIN and iproute2): {e} ***\n"
            );
            return None;
        }
        let mut lan = Lan {
            base: base.clone(),
            subnet: subnet.to_string(),
            hosts: Vec::new(),
        };
        if let Err(e) = run("nft", &["--version"]) {
            eprintln!("\n*** SKIP: nft not available (apt-get install nftables): {e} ***\n");
            return None;
        }
        run("ip", &["-n", &sw, "link", "add", "br0", "type", "bridge"]).unwrap();
        run("ip", &["-n", &sw, "link", "set", "br0", "up"]).unwrap();
        for &o in octets {
            let ns = lan.ns(o);
            run("ip", &["netns", "add", &ns]).unwrap();
            lan.hosts.push(ns.clone());
            let port = format!("p{o}");
            run(
                "ip",
                &[
                    "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port,
                    "netns", &sw,
                ],
            )
            .unwrap();
            run("ip", &["-n", &sw, "link", "set", &port, "master", "br0"]).unwrap();
            run("ip", &["-n", &sw, "link", "set", &port, "up"]).unwrap();
            let addr = format!("{}/24", lan.addr(o));
            run("ip", &["-n", &ns, "addr", "add", &addr, "dev", "eth0"]).unwrap();
            run("ip", &["-n", &ns, "link", "set", "eth0", "up"]).unwrap();
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]).unwrap();
        }
        Some(lan)
    }

    /// The namespace of host `octet`.
    pub fn ns(&self, octet: u8) -> String {
        format!("{}-{octet}", self.base)
    }

    /// The address of host `octet` (`<subnet>.<octet>`).
    pub fn addr(&self, octet: u8) -> String {
        format!("{}.{octet}", self.subnet)
    }

    /// Drops all traffic between host `a` and host `b`, both ways, with
    /// an nft table `lancut` in `a` (see [`heal`](Self::heal)).
    pub fn cut(&self, a: u8, b: u8) {
        let peer = self.addr(b);
        nft_in(
            &self.ns(a),
            &format!(
                "table inet lancut {{\n\
                 chain in {{ type filter hook input priority 0; ip saddr {peer} drop; }}\n\
                 chain out {{ type filter hook output priority 0; ip daddr {peer} drop; }}\n\
                 }}\n"
            ),
        );
    }

    /// Removes host `a`'s cuts.
    pub fn heal(&self, a: u8) {
        nft_in(&self.ns(a), "delete table inet lancut\n");
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        for ns in &self.hosts {
            let _ = run("ip", &["netns", "del", ns]);
        }
        let _ = run("ip", &["netns", "del", &format!("{}-sw", self.base)]);
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for n in [&self.a, &self.b] {
            let _ = run("ip", &["netns", "del", n]);
        }
    }
}

/// Runs `f` on a new thread inside network namespace `ns` (sockets it
/// opens live there).
pub fn spawn_in<R: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> R + Send + 'static,
) -> JoinHandle<R> {
    use std::os::fd::AsRawFd;
    let path = format!("/var/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        // SAFETY: a valid namespace descriptor; setns moves only this thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Runs `f` inside namespace `ns` and returns its result.
pub fn in_ns<R: Send + 'static>(ns: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    spawn_in(ns, f).join().unwrap()
}
