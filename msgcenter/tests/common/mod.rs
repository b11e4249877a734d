//! Shared vocabulary of the msgcenter tests: outcome collectors, bounded
//! waits, and a hand-driven peer that speaks the wire format from
//! PROTOCOL.md over a plain `TcpStream` (to misbehave on purpose).
#![allow(dead_code)]

use msgcenter::frame::{self, Header, Hello, Kind, HEADER_LEN};
use msgcenter::{Center, Config, Handlers, Message, MsgId, Outcome};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const WAIT: Duration = Duration::from_secs(20);

/// Waits until `done` holds, or panics naming `what` after [`WAIT`].
pub fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Every outcome reported, by message id (more than one is a bug).
#[derive(Clone, Default)]
pub struct Outcomes(pub Arc<Mutex<HashMap<MsgId, Vec<Outcome>>>>);

impl Outcomes {
    pub fn track(&self, msg: Message) -> Message {
        let me = self.clone();
        msg.on_done(move |id, o| me.0.lock().unwrap().entry(id).or_default().push(o))
    }

    pub fn get(&self, id: MsgId) -> Vec<Outcome> {
        self.0.lock().unwrap().get(&id).cloned().unwrap_or_default()
    }

    pub fn count(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits for the outcome of `id` and returns it (asserting it is one).
    pub fn wait(&self, id: MsgId) -> Outcome {
        wait_for(&format!("outcome of {id}"), || !self.get(id).is_empty());
        let all = self.get(id);
        assert_eq!(all.len(), 1, "message {id} has outcomes {all:?}");
        all[0]
    }

    /// Asserts no message has more than one outcome.
    pub fn assert_single(&self) {
        for (id, all) in self.0.lock().unwrap().iter() {
            assert_eq!(all.len(), 1, "message {id} has outcomes {all:?}");
        }
    }
}

/// A config with short timers for tests.
pub fn quick() -> Config {
    let mut c = Config::default();
    c.retry.interval = Duration::from_millis(50);
    c.retry.max_retries = 200;
    c.retry.deadline = Duration::from_secs(8);
    c.reconnect_min = Duration::from_millis(20);
    c.reconnect_max = Duration::from_millis(200);
    c.connect_timeout = Duration::from_secs(1);
    c.handshake_timeout = Duration::from_secs(1);
    c
}

/// A peer driven by hand over a plain socket.
pub struct Fake {
    pub stream: TcpStream,
    buf: Vec<u8>,
    pub hello: Hello,
}

pub fn hello(node_id: u64, incarnation: u64) -> Hello {
    Hello {
        node_id,
        incarnation,
        dedup_window_ms: 60_000,
        max_body: 1 << 20,
    }
}

impl Fake {
    fn new(stream: TcpStream, hello: Hello) -> Fake {
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Fake {
            stream,
            buf: Vec::new(),
            hello,
        }
    }

    /// Connects to a center as node `hello`, advertising `from`, and
    /// completes the handshake; returns the center's WELCOME.
    pub fn connect(to: SocketAddr, from: SocketAddr, hello: Hello) -> (Fake, Hello) {
        let (f, wh, body) = Fake::connect_raw(to, from, hello);
        assert_eq!(wh.kind, Kind::Welcome);
        (f, Hello::from_body(&body).unwrap())
    }

    /// Like [`connect`](Self::connect), returning the answer as it came.
    pub fn connect_raw(to: SocketAddr, from: SocketAddr, hello: Hello) -> (Fake, Header, Vec<u8>) {
        let mut f = Fake::new(TcpStream::connect(to).unwrap(), hello);
        f.write_preamble();
        let h = Header {
            from,
            to,
            ..Header::new(Kind::Hello)
        };
        f.send(&h, &hello.to_body());
        f.read_preamble();
        let (wh, body) = f.recv().expect("an answer to HELLO");
        (f, wh, body)
    }

    /// Accepts a center's connection and completes the handshake.
    pub fn accept(listener: &TcpListener, hello: Hello) -> Fake {
        let (s, _) = listener.accept().unwrap();
        let mut f = Fake::new(s, hello);
        f.read_preamble();
        let (hh, _) = f.recv().expect("HELLO");
        assert_eq!(hh.kind, Kind::Hello);
        f.write_preamble();
        let from = listener.local_addr().unwrap();
        f.send(
            &Header {
                from,
                ..Header::new(Kind::Welcome)
            },
            &hello.to_body(),
        );
        f
    }

    pub fn write_preamble(&mut self) {
        let mut p = Vec::new();
        frame::encode_preamble(&mut p);
        self.stream.write_all(&p).unwrap();
    }

    pub fn send(&mut self, h: &Header, body: &[u8]) {
        let mut w = Vec::new();
        frame::encode_frame(&mut w, h, body).unwrap();
        self.stream.write_all(&w).unwrap();
    }

    fn fill(&mut self, deadline: Instant) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return false,
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return true;
                }
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return false,
            }
        }
        false
    }

    pub fn read_preamble(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            match frame::decode_preamble(&self.buf).unwrap() {
                Some(n) => {
                    self.buf.drain(..n);
                    return;
                }
                None => assert!(self.fill(deadline), "no preamble"),
            }
        }
    }

    /// The next frame other than a heartbeat, or `None` on end of stream
    /// or after `within`.
    pub fn recv_within(&mut self, within: Duration) -> Option<(Header, Vec<u8>)> {
        let deadline = Instant::now() + within;
        loop {
            if let Some((f, n)) = frame::decode_frame(&self.buf, 1 << 24).unwrap() {
                let out = (f.header, f.body.to_vec());
                self.buf.drain(..n);
                if out.0.kind == Kind::Heartbeat {
                    continue;
                }
                return Some(out);
            }
            if !self.fill(deadline) {
                return None;
            }
        }
    }

    pub fn recv(&mut self) -> Option<(Header, Vec<u8>)> {
        self.recv_within(WAIT)
    }

    /// Whether the other side closed within `within` (frames skipped).
    pub fn closed_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut chunk = [0u8; 4096];
        while Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return true,
                Ok(_) => {}
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return true,
            }
        }
        false
    }

    pub fn ack(&mut self, id: u64, msg_type: u32, flags: u8) {
        let h = Header {
            id,
            msg_type,
            flags,
            ..Header::new(Kind::Ack)
        };
        self.send(&h, &[]);
    }
}

pub fn header_len() -> usize {
    HEADER_LEN
}

/// A loopback address nothing listens on (bound once, then released).
pub fn free_addr() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A sender center, and a plain listener for a hand-driven peer to accept on.
pub fn sender_and_listener(
    cfg: msgcenter::Config,
) -> (TcpListener, SocketAddr, msgcenter::Running, Outcomes) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let to = listener.local_addr().unwrap();
    let tx = Center::spawn(cfg, Handlers::new()).unwrap();
    (listener, to, tx, Outcomes::default())
}

/// A center whose type-1 handler counts calls per id and forwards bodies.
pub fn counting_receiver(
    cfg: msgcenter::Config,
) -> (msgcenter::Running, Arc<Mutex<HashMap<u64, u32>>>) {
    let calls: Arc<Mutex<HashMap<u64, u32>>> = Arc::default();
    let c = calls.clone();
    let rx = Center::spawn(
        cfg,
        Handlers::new().on(1, move |_, m| {
            *c.lock().unwrap().entry(m.id).or_default() += 1;
        }),
    )
    .unwrap();
    (rx, calls)
}
