//! Shared by the `memcached_*` integration tests: start the
//! `netlib-memcached` binary on a free loopback port and kill it afterwards,
//! plus a tiny blocking text-protocol client.
//!
//! The server is started with `-p 0 --port-file=<tmp>`: it binds a free
//! port itself and writes the number to the file, so tests never race for a
//! port they guessed. [`ServerProcess`] kills the process when dropped, even
//! when the test panics.

#![allow(dead_code)] // each test binary uses a different part

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// How long a test waits for the server to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `netlib-memcached`, killed on drop.
pub struct ServerProcess {
    child: Child,
    pub addr: SocketAddr,
    port_file: PathBuf,
}

impl ServerProcess {
    /// Starts the server with `args` added to `-p 0 -l 127.0.0.1`.
    pub fn start(args: &[&str]) -> ServerProcess {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let port_file = std::env::temp_dir().join(format!(
            "netlib-memcached-test-{}-{}.port",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&port_file);
        let child = Command::new(env!("CARGO_BIN_EXE_netlib-memcached"))
            .args(["-p", "0", "-l", "127.0.0.1"])
            .arg(format!("--port-file={}", port_file.display()))
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn netlib-memcached");
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            port_file,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(text) = std::fs::read_to_string(&server.port_file) {
                if let Ok(port) = text.trim().parse::<u16>() {
                    server.addr.set_port(port);
                    return server;
                }
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("netlib-memcached exited during start-up: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "netlib-memcached did not write its port within {START_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.port_file);
    }
}

/// Runs `command` with a time limit; returns (exit status, or None if it
/// could not start or was killed for taking too long; stdout + stderr).
pub fn run_with_timeout(command: &mut Command, limit: Duration) -> (Option<i32>, String) {
    let spawned = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => return (None, format!("cannot start {command:?}: {e}")),
    };
    let mut stdout = child.stdout.take().expect("stdout");
    let mut stderr = child.stderr.take().expect("stderr");
    let out = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stdout.read_to_end(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status.code(),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let mut text = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    text.push_str(&String::from_utf8_lossy(&err.join().unwrap_or_default()));
    (status, text)
}

/// Whether `program` can be found on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// A blocking text-protocol client for the checks the tools do not make.
pub struct TextClient {
    reader: BufReader<TcpStream>,
}

impl TextClient {
    pub fn connect(addr: SocketAddr) -> TextClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        TextClient {
            reader: BufReader::new(stream),
        }
    }

    pub fn stream(&mut self) -> &mut TcpStream {
        self.reader.get_mut()
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    /// One reply line, `\r\n` included; empty at end-of-stream.
    pub fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line
    }

    pub fn read_exact(&mut self, n: usize) -> Vec<u8> {
        let mut buf = vec![0; n];
        self.reader.read_exact(&mut buf).expect("read value");
        buf
    }

    /// `set key 0 0 len` + value; asserts STORED.
    pub fn set(&mut self, key: &str, value: &[u8]) {
        let mut request = format!("set {key} 0 0 {}\r\n", value.len()).into_bytes();
        request.extend_from_slice(value);
        request.extend_from_slice(b"\r\n");
        self.send(&request);
        assert_eq!(self.line(), "STORED\r\n", "set {key}");
    }

    /// `get key`: the value, or None on a miss.
    pub fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        self.send(format!("get {key}\r\n").as_bytes());
        let header = self.line();
        if header == "END\r\n" {
            return None;
        }
        let len: usize = header
            .trim_end()
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("bad VALUE line {header:?}"));
        assert!(header.starts_with(&format!("VALUE {key} ")), "{header:?}");
        let value = self.read_exact(len);
        assert_eq!(self.read_exact(2), b"\r\n");
        assert_eq!(self.line(), "END\r\n");
        Some(value)
    }

    /// `stats`: the value of one statistic.
    pub fn stat(&mut self, name: &str) -> String {
        self.send(b"stats\r\n");
        let mut found = None;
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "connection closed during stats");
            if line == "END\r\n" {
                break;
            }
            let mut parts = line.trim_end().splitn(3, ' ');
            if let (Some("STAT"), Some(n), Some(v)) = (parts.next(), parts.next(), parts.next()) {
                if n == name {
                    found = Some(v.to_string());
                }
            }
        }
        found.unwrap_or_else(|| panic!("no stat {name}"))
    }
}
