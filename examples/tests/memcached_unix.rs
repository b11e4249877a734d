//! `netlib-memcached -s <path> [-a <mask>]`: listening on a Unix-domain
//! socket instead of TCP, byte for byte as memcached 1.6.18 answers over
//! it - replies, `stats settings`, `stats conns`, the file's permission
//! bits, a stale file from a dead server, a live one left alone, the file
//! removed at shutdown, and `-c` at its limit. Each test starts its own
//! server process in its own temp directory (killed on drop) and bounds
//! every wait.

mod memcached_common;

use memcached_common::run_with_timeout;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(20);

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_netlib-memcached")
}

/// A fresh directory for one test.
fn temp_dir(name: &str) -> testkit::TempDir {
    testkit::TempDir::new(&format!("netlib-mc-unix-{name}")).unwrap()
}

/// The test's socket in `dir`.
fn socket_in(dir: &testkit::TempDir) -> PathBuf {
    dir.join("mc.sock")
}

/// A server on a Unix socket, killed on drop.
struct UnixServer {
    child: Child,
    path: PathBuf,
}

impl UnixServer {
    /// Starts `netlib-memcached -s <path>` plus `args`; returns once a
    /// client can connect.
    fn start(path: &Path, args: &[&str]) -> UnixServer {
        let child = Command::new(bin())
            .arg("-s")
            .arg(path)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn netlib-memcached");
        let mut server = UnixServer {
            child,
            path: path.to_path_buf(),
        };
        let deadline = Instant::now() + TIMEOUT;
        while UnixStream::connect(path).is_err() {
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("netlib-memcached exited during start-up: {status}");
            }
            assert!(Instant::now() < deadline, "no socket at {path:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    fn client(&self) -> Client {
        Client::connect(&self.path)
    }

    /// Waits for the process to exit; its exit code.
    fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "server still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for UnixServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking text-protocol client over the Unix socket.
struct Client {
    reader: BufReader<UnixStream>,
}

impl Client {
    fn connect(path: &Path) -> Client {
        let stream = UnixStream::connect(path).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        Client {
            reader: BufReader::new(stream),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read line");
        line
    }

    /// Sends each request and reads exactly its expected reply's length.
    fn exchange(&mut self, pairs: &[(&str, &str)]) {
        for (request, expected) in pairs {
            self.send(request.as_bytes());
            let mut reply = vec![0; expected.len()];
            self.reader.read_exact(&mut reply).expect("reply");
            assert_eq!(
                String::from_utf8_lossy(&reply),
                *expected,
                "reply to {request:?}"
            );
        }
    }

    /// The lines of a multi-line reply up to and including `END`.
    fn until_end(&mut self, request: &str) -> Vec<String> {
        self.send(request.as_bytes());
        let mut lines = Vec::new();
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "closed during {request:?}");
            let end = line == "END\r\n";
            lines.push(line);
            if end {
                return lines;
            }
        }
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn commands_over_the_unix_socket_answer_byte_for_byte() {
    let dir = temp_dir("commands");
    let server = UnixServer::start(&socket_in(&dir), &["-t", "2"]);
    let mut c = server.client();
    c.exchange(&[
        ("set k 5 0 5\r\nhello\r\n", "STORED\r\n"),
        ("get k\r\n", "VALUE k 5 5\r\nhello\r\nEND\r\n"),
        ("append k 0 0 1\r\n!\r\n", "STORED\r\n"),
        ("get k\r\n", "VALUE k 5 6\r\nhello!\r\nEND\r\n"),
        ("set n 0 0 1\r\n9\r\n", "STORED\r\n"),
        ("incr n 1\r\n", "10\r\n"),
        ("decr n 20\r\n", "0\r\n"),
        ("delete k\r\n", "DELETED\r\n"),
        ("get k\r\n", "END\r\n"),
        // decr keeps the length in place, padding with spaces, as memcached does.
        ("mg n v\r\n", "VA 2\r\n0 \r\n"),
        ("bogus\r\n", "ERROR\r\n"),
    ]);
    // Another connection (on either loop) sees the same cache.
    let mut other = server.client();
    other.exchange(&[("get n\r\n", "VALUE n 0 2\r\n0 \r\nEND\r\n")]);
    // quit closes this connection only.
    c.send(b"quit\r\n");
    assert_eq!(c.line(), "");
    other.exchange(&[("version\r\n", "VERSION 1.6.21\r\n")]);
}

#[test]
fn stats_show_the_socket_as_memcached_does() {
    let dir = temp_dir("stats");
    let path = socket_in(&dir);
    let server = UnixServer::start(&path, &["-a", "640"]);
    let mut c = server.client();
    let settings = c.until_end("stats settings\r\n");
    let shown = path.display();
    assert!(
        settings.contains(&format!("STAT domain_socket {shown}\r\n")),
        "{settings:?}"
    );
    assert!(
        settings.contains(&"STAT umask 640\r\n".to_string()),
        "{settings:?}"
    );
    // memcached reports its -p setting even though -s turns TCP off.
    assert!(
        settings.contains(&"STAT tcpport 11211\r\n".to_string()),
        "{settings:?}"
    );

    let conns = c.until_end("stats conns\r\n");
    // The listener, then this connection: ids are ours, the text memcached's.
    let text: Vec<String> = conns
        .iter()
        .map(|l| {
            let (_, rest) = l.split_once(':').unwrap_or(("", l));
            rest.to_string()
        })
        .collect();
    assert_eq!(
        text,
        vec![
            format!("addr unix:{shown}\r\n"),
            "state conn_listening\r\n".to_string(),
            text[2].clone(),
            "addr ?:<AF 0>\r\n".to_string(),
            format!("listen_addr unix:{shown}\r\n"),
            "state conn_parse_cmd\r\n".to_string(),
            text[6].clone(),
            "END\r\n".to_string(),
        ],
        "{conns:?}"
    );
    assert!(text[2].starts_with("secs_since_last_cmd "), "{conns:?}");
    // This connection's last command is this one (a second boundary may
    // fall between reading the clock for it and for the reply).
    assert!(
        ["secs_since_last_cmd 0\r\n", "secs_since_last_cmd 1\r\n"].contains(&text[6].as_str()),
        "{conns:?}"
    );
}

#[test]
fn the_socket_file_gets_the_dash_a_bits_and_tcp_is_off() {
    let dir = temp_dir("mode");
    let path = socket_in(&dir);
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tcp.local_addr().unwrap().port();
    drop(tcp);
    for (args, bits) in [
        (vec![], 0o700),
        (vec!["-a", "766"], 0o766),
        (vec!["-a", "0600"], 0o600),
    ] {
        let port_arg = port.to_string();
        let mut all = vec!["-p", port_arg.as_str(), "-l", "127.0.0.1"];
        all.extend(args);
        let server = UnixServer::start(&path, &all);
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(mode(&path), bits, "{all:?}");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "-s must disable TCP"
        );
        server
            .client()
            .exchange(&[("version\r\n", "VERSION 1.6.21\r\n")]);
    }
}

#[test]
fn a_stale_file_is_replaced_and_a_live_socket_refused() {
    let dir = temp_dir("stale");
    let path = socket_in(&dir);
    // A server that died without removing its socket.
    drop(UnixListener::bind(&path).unwrap());
    let server = UnixServer::start(&path, &[]);
    server
        .client()
        .exchange(&[("version\r\n", "VERSION 1.6.21\r\n")]);

    // A second server on the same path refuses to start and leaves it be.
    let (status, text) = run_with_timeout(Command::new(bin()).arg("-s").arg(&path), TIMEOUT);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("another process listens on it"), "{text}");
    server
        .client()
        .exchange(&[("version\r\n", "VERSION 1.6.21\r\n")]);

    // Nor does it replace a file that is not a socket.
    let file = dir.join("notes.txt");
    std::fs::write(&file, b"keep").unwrap();
    let (status, text) = run_with_timeout(Command::new(bin()).arg("-s").arg(&file), TIMEOUT);
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("is not a socket"), "{text}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep");
}

#[test]
fn the_file_is_removed_on_sigterm_and_on_shutdown() {
    let dir = temp_dir("cleanup");
    let path = socket_in(&dir);
    let mut server = UnixServer::start(&path, &[]);
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(
        unsafe { libc::kill(server.child.id() as i32, libc::SIGTERM) },
        0
    );
    assert_eq!(server.wait_exit(), Some(0));
    assert!(!path.exists(), "socket file left behind after SIGTERM");

    let mut server = UnixServer::start(&path, &["-A"]);
    let mut c = server.client();
    c.send(b"shutdown\r\n");
    assert_eq!(c.line(), "", "shutdown answers nothing and closes");
    assert_eq!(server.wait_exit(), Some(0));
    assert!(!path.exists(), "socket file left behind after shutdown");
}

#[test]
fn connections_past_dash_c_are_told_and_closed() {
    let dir = temp_dir("limit");
    let server = UnixServer::start(&socket_in(&dir), &["-c", "2"]);
    // The start-up probe's connection may still be closing: wait until two
    // clients are both admitted.
    let deadline = Instant::now() + TIMEOUT;
    let (mut a, mut b) = loop {
        let (mut a, mut b) = (server.client(), server.client());
        a.send(b"version\r\n");
        b.send(b"version\r\n");
        let (ra, rb) = (a.line(), b.line());
        if ra == "VERSION 1.6.21\r\n" && rb == "VERSION 1.6.21\r\n" {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "never two admitted: {ra:?} {rb:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut third = server.client();
    let mut refused = Vec::new();
    third.reader.read_to_end(&mut refused).unwrap();
    assert_eq!(refused, b"ERROR Too many open connections\r\n");
    a.exchange(&[("version\r\n", "VERSION 1.6.21\r\n")]);
    b.exchange(&[("stats\r\n", "STAT pid ")]);
}
