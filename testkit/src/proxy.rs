//! A TCP proxy on loopback that a test can cut and restore: what one
//! process's link to a shared server goes through, so that process alone
//! loses the server while the others keep it (one msg_server's NATS link,
//! say). No root needed, unlike [`NetnsPair`](crate::NetnsPair).
//!
//! Each accepted connection gets its own connection to the upstream and
//! two threads copying bytes, one per direction. [`CutProxy::cut`] closes
//! the listening socket, so connecting is refused (not accepted and then
//! closed: a client would count that as connected), then shuts down every
//! connection through the proxy, both sides. [`CutProxy::restore`] listens
//! again on the same address. Dropping it cuts and stops its threads.

use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

/// A cuttable proxy to one upstream address.
pub struct CutProxy {
    /// Where to connect instead of the upstream.
    pub addr: SocketAddr,
    shared: Arc<(Mutex<State>, Condvar)>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    /// Asked: refuse connections.
    cut: bool,
    /// Asked: end the accepting thread.
    stop: bool,
    /// The accepting thread has its socket open.
    listening: bool,
    /// Both sockets of every connection through the proxy since the last
    /// cut (clones, to shut them down).
    live: Vec<TcpStream>,
}

impl CutProxy {
    /// Listens on a free loopback port and forwards to `upstream`; panics
    /// if it cannot listen.
    pub fn start(upstream: SocketAddr) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new((Mutex::new(State::default()), Condvar::new()));
        let s = shared.clone();
        let accept = std::thread::spawn(move || serve(listener, upstream, &s));
        let p = CutProxy {
            addr,
            shared,
            accept: Some(accept),
        };
        p.wait_listening(true);
        p
    }

    /// Refuses new connections and closes every one through the proxy, on
    /// both sides, until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.state().cut = true;
        // Wakes the accepting thread, which closes its socket.
        let _ = TcpStream::connect(self.addr);
        self.wait_listening(false);
        for s in self.state().live.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Listens and forwards again, on the same address.
    pub fn restore(&self) {
        self.state().cut = false;
        self.shared.1.notify_all();
        self.wait_listening(true);
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.shared.0.lock().unwrap()
    }

    fn wait_listening(&self, listening: bool) {
        let mut st = self.state();
        while st.listening != listening {
            st = self.shared.1.wait(st).unwrap();
        }
    }
}

/// The accepting thread: forwards what `listener` accepts to `upstream`;
/// while cut, has no socket, then listens again on the same address.
fn serve(listener: TcpListener, upstream: SocketAddr, shared: &(Mutex<State>, Condvar)) {
    let (lock, cv) = shared;
    let addr = listener.local_addr().expect("local address");
    let mut listener = Some(listener);
    loop {
        {
            let mut st = lock.lock().unwrap();
            while st.cut && !st.stop {
                st = cv.wait(st).unwrap();
            }
            if st.stop {
                return;
            }
        }
        let l = listener.take().unwrap_or_else(|| bind_again(addr));
        lock.lock().unwrap().listening = true;
        cv.notify_all();
        for conn in l.incoming() {
            let mut st = lock.lock().unwrap();
            if st.cut || st.stop {
                break; // this one (the wake-up) is dropped
            }
            let Ok(down) = conn else { continue };
            let Ok(up) = TcpStream::connect(upstream) else {
                continue;
            };
            let _ = (down.set_nodelay(true), up.set_nodelay(true));
            let clones = (
                down.try_clone(),
                up.try_clone(),
                down.try_clone(),
                up.try_clone(),
            );
            let (Ok(d), Ok(u), Ok(d2), Ok(u2)) = clones else {
                continue;
            };
            st.live.extend([d, u]);
            std::thread::spawn(move || pump(down, up));
            std::thread::spawn(move || pump(u2, d2));
        }
        drop(l);
        lock.lock().unwrap().listening = false;
        cv.notify_all();
    }
}

/// Listens on `addr` again right after closing it: SO_REUSEADDR (std sets
/// it) allows that; a moment's retry covers anything else.
fn bind_again(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        match TcpListener::bind(addr) {
            Ok(l) => return l,
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
    panic!("cannot listen on {addr} again")
}

/// Copies `from` to `to` until either side ends, then shuts both down so
/// the other direction ends too.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.state().stop = true;
        self.shared.1.notify_all();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::time::Duration;

    /// An upstream that echoes each connection's bytes.
    fn echo() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = c.try_clone().unwrap();
                    let _ = std::io::copy(&mut r, &mut &c);
                });
            }
        });
        addr
    }

    fn round_trip(c: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        c.write_all(b"ping")?;
        let mut got = [0u8; 4];
        c.read_exact(&mut got)?;
        Ok(got.to_vec())
    }

    #[test]
    fn forwards_until_cut_refuses_while_cut_and_forwards_again_after() {
        let p = CutProxy::start(echo());
        let connect = || {
            let c = TcpStream::connect(p.addr).unwrap();
            c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            c
        };
        let mut c = connect();
        assert_eq!(round_trip(&mut c).unwrap(), b"ping");
        p.cut();
        assert!(round_trip(&mut c).is_err(), "the live connection is closed");
        assert!(TcpStream::connect(p.addr).is_err(), "new ones are refused");
        p.restore();
        assert_eq!(round_trip(&mut connect()).unwrap(), b"ping");
    }
}
