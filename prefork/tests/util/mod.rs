//! Test vocabulary for the process tests: a `prefork-demo` master in its
//! own process group (killed with the whole group when the test ends, pass
//! or fail), its status file, and a blocking client of the demo protocol.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const ECHO: u16 = 1;
pub const WHOAMI: u16 = 2;
pub const SLOW: u16 = 3;

/// A running `prefork-demo --processes N` and what it logs.
pub struct Demo {
    pub child: Child,
    pub addr: SocketAddr,
    pub status: PathBuf,
    pub dir: PathBuf,
    pub log: Arc<Mutex<String>>,
}

/// A fresh directory under the target dir's tmp, removed by `Demo`'s drop.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("prefork-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

impl Demo {
    /// Starts the demo binary at `exe` (the built one unless a test copied
    /// it) with `args` plus a free port and a status file in `dir`.
    pub fn start_with(exe: &Path, dir: PathBuf, args: &[&str]) -> Demo {
        let status = dir.join("status");
        let mut child = Command::new(exe)
            .args(["--port", "0", "--status-file"])
            .arg(&status)
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("start prefork-demo");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().unwrap();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("  | {line}");
                sink.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(a) = line.strip_prefix("listening on ") {
                    let _ = tx.send(a.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("prefork-demo did not say where it listens");
        Demo {
            child,
            addr,
            status,
            dir,
            log,
        }
    }

    pub fn start(name: &str, args: &[&str]) -> Demo {
        Demo::start_with(
            Path::new(env!("CARGO_BIN_EXE_prefork-demo")),
            temp_dir(name),
            args,
        )
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// The status file's lines, each as its kind and its fields.
    pub fn status(&self) -> Vec<(String, HashMap<String, String>)> {
        let text = std::fs::read_to_string(&self.status).unwrap_or_default();
        text.lines()
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let kind = words.next()?.to_string();
                let fields = words
                    .filter_map(|w| w.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                Some((kind, fields))
            })
            .collect()
    }

    /// `(slot, pid, generation, state)` of every worker line.
    pub fn workers(&self) -> Vec<(usize, i32, u32, String)> {
        self.status()
            .into_iter()
            .filter(|(k, _)| k == "worker")
            .map(|(_, f)| {
                (
                    f["slot"].parse().unwrap(),
                    f["pid"].parse().unwrap(),
                    f["generation"].parse().unwrap(),
                    f["state"].clone(),
                )
            })
            .collect()
    }

    /// Waits until `n` workers of generation `g` run; returns their pids by slot.
    pub fn wait_running(&self, n: usize, g: u32, within: Duration) -> Vec<i32> {
        let mut pids = Vec::new();
        wait_for(within, || {
            let mut ws: Vec<_> = self
                .workers()
                .into_iter()
                .filter(|w| w.2 == g && w.3 == "running")
                .collect();
            ws.sort();
            pids = ws.iter().map(|w| w.1).collect();
            pids.len() == n
        })
        .unwrap_or_else(|| {
            panic!(
                "{n} workers of generation {g} not running: {:?}",
                self.status()
            )
        });
        pids
    }

    /// Waits for the master to exit; its exit status.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // The master's process group holds every worker.
        // SAFETY: kill has no memory effects.
        unsafe { libc::kill(-self.pid(), libc::SIGKILL) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Polls `f` every 20 ms until it is true or `within` passed.
pub fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if f() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Whether a process exists (and is not a zombie of ours awaiting reaping).
pub fn alive(pid: i32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state follows the command name in parentheses.
    stat.rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// One connection speaking the demo protocol.
pub struct Client {
    stream: TcpStream,
    seq: u32,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> std::io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        stream.set_write_timeout(Some(Duration::from_secs(5)))?;
        Ok(Client { stream, seq: 0 })
    }

    /// Sends a request and returns the answer's status and body.
    pub fn call(&mut self, cmd: u16, body: &[u8]) -> std::io::Result<(u32, Vec<u8>)> {
        self.seq += 1;
        let mut wire = Vec::new();
        wire.extend_from_slice(&(18 + body.len() as u32).to_le_bytes());
        wire.extend_from_slice(&self.seq.to_le_bytes());
        wire.extend_from_slice(&cmd.to_le_bytes());
        wire.extend_from_slice(&0u32.to_le_bytes());
        wire.extend_from_slice(&7u32.to_le_bytes());
        wire.extend_from_slice(body);
        self.stream.write_all(&wire)?;
        let mut header = [0u8; 18];
        self.stream.read_exact(&mut header)?;
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize;
        let seq = u32::from_le_bytes(header[4..8].try_into().unwrap());
        let status = u32::from_le_bytes(header[10..14].try_into().unwrap());
        let user = u32::from_le_bytes(header[14..18].try_into().unwrap());
        let mut rest = vec![0u8; len.saturating_sub(18)];
        self.stream.read_exact(&mut rest)?;
        if seq != self.seq || user != 7 {
            return Err(std::io::Error::other(format!(
                "answer seq {seq} user {user} to request {}",
                self.seq
            )));
        }
        Ok((status, rest))
    }

    /// `whoami`, parsed: `pid`, `generation`, `tag`.
    pub fn whoami(&mut self) -> std::io::Result<HashMap<String, String>> {
        let (_, body) = self.call(WHOAMI, b"")?;
        Ok(String::from_utf8_lossy(&body)
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }
}
