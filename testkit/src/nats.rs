//! Debian's `nats-server` on a loopback port, for tests and benchmarks
//! that need a NATS broker (servers' cluster tests, `bench im_cluster`).
//! The server is killed when its [`Nats`] is dropped, and can be started
//! again on the same address (outage tests).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a starting nats-server gets to listen.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `nats-server` runs at all (what [`Nats`] needs), for a caller
/// that would rather say why it skips than panic.
pub fn available() -> bool {
    Command::new("nats-server")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// A running nats-server.
pub struct Nats {
    child: Child,
    /// Its client address.
    pub addr: SocketAddr,
}

impl Nats {
    /// On a free loopback port; panics if it cannot start.
    pub fn start() -> Nats {
        Nats::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// On `addr` (again); panics if it cannot start.
    pub fn start_on(addr: SocketAddr) -> Nats {
        Nats::try_start_on(addr).unwrap_or_else(|e| panic!("{e}"))
    }

    /// On a free loopback port, or why not.
    pub fn try_start() -> Result<Nats, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free loopback port: {e}"))?
            .port();
        Nats::try_start_on(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// On `addr`, once it accepts connections (at most 10 s), or why not:
    /// nats-server is not installed, exited, or did not listen in time.
    pub fn try_start_on(addr: SocketAddr) -> Result<Nats, String> {
        let child = Command::new("nats-server")
            .args(["-a", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("nats-server (Debian's nats-server package): {e}"))?;
        // Dropped (killed) on every error below.
        let mut nats = Nats { child, addr };
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = nats.child.try_wait() {
                return Err(format!("nats-server on {addr} exited: {status}"));
            }
            if start.elapsed() > START_TIMEOUT {
                return Err(format!("nats-server did not listen on {addr}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nats)
    }

    /// Its process id (to measure its CPU).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
