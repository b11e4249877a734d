//! Debian's `nats-server` for a test, on a loopback port; killed when
//! dropped, and startable again on the same port (outage tests).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running nats-server.
pub struct Nats {
    child: Child,
    /// Its client address.
    pub addr: SocketAddr,
}

impl Nats {
    /// On a free loopback port.
    pub fn start() -> Nats {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Nats::start_on(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// On `addr` (again).
    pub fn start_on(addr: SocketAddr) -> Nats {
        let child = Command::new("nats-server")
            .args(["-a", &addr.ip().to_string(), "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server (Debian's nats-server package) must be installed");
        let start = Instant::now();
        while TcpStream::connect(addr).is_err() {
            assert!(start.elapsed() < super::T, "nats-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Nats { child, addr }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
