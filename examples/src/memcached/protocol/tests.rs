//! Tests for the ASCII protocol session, driven the way a network layer
//! drives it: bytes in, replies out, unconsumed bytes kept for next time.
//! This file holds the harness; the tests are split by command family.

use std::sync::Arc;

use super::*;
use crate::memcached::clock::ManualClock;
use crate::memcached::config::{DEFAULT_ITEM_SIZE_MAX, DEFAULT_MAX_LINE};
use crate::memcached::store::item_size;

const T0: u64 = 1_700_000_000;

/// A store, a session, and the input buffer a network layer would keep.
struct Conn {
    store: Store,
    clock: Arc<ManualClock>,
    session: Session,
    pending: Vec<u8>,
    closed: Option<CloseReason>,
}

impl Conn {
    fn new() -> Self {
        Conn::with_config(Config::default())
    }

    fn with_config(config: Config) -> Self {
        let clock = Arc::new(ManualClock::new(T0));
        Conn {
            store: Store::new(&config, clock.clone()),
            clock,
            session: Session::new(),
            pending: Vec::new(),
            closed: None,
        }
    }

    /// A second connection to the same store.
    fn session(&self) -> Session {
        Session::new()
    }

    /// Delivers `input` in one read and returns everything written back.
    fn send_bytes(&mut self, input: &[u8]) -> Vec<u8> {
        self.pending.extend_from_slice(input);
        let mut written = Vec::new();
        let mut out = Vec::new();
        loop {
            let (used, progress) = self.session.process(&self.store, &self.pending, &mut out);
            assert!(used <= self.pending.len());
            self.pending.drain(..used);
            match progress {
                Progress::Continue => break,
                Progress::OutputFull => written.append(&mut out),
                Progress::Close(reason) => {
                    self.closed = Some(reason);
                    break;
                }
            }
        }
        written.append(&mut out);
        written
    }

    fn send(&mut self, input: &str) -> String {
        String::from_utf8(self.send_bytes(input.as_bytes())).expect("replies are ASCII here")
    }

    /// `gets key` parsed into (value, cas).
    fn gets(&mut self, key: &str) -> Option<(String, u64)> {
        let reply = self.send(&format!("gets {key}\r\n"));
        let mut lines = reply.split("\r\n");
        let header = lines.next()?;
        if header == "END" {
            return None;
        }
        let cas = header.rsplit(' ').next()?.parse().ok()?;
        Some((lines.next()?.to_string(), cas))
    }

    fn stat(&mut self, name: &str) -> u64 {
        let reply = self.send("stats\r\n");
        let prefix = format!("STAT {name} ");
        reply
            .split("\r\n")
            .find_map(|line| line.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no stat {name} in {reply}"))
            .parse()
            .expect("numeric stat")
    }
}

/// Feeds `script` to a fresh connection in pieces of the given sizes
/// (cycled), as a network layer with small reads would, and returns the
/// output and whether the session asked to close.
fn run_chunked(config: &Config, script: &[u8], sizes: &[usize]) -> (Vec<u8>, Option<CloseReason>) {
    let store = Store::new(config, Arc::new(ManualClock::new(T0)));
    let mut session = Session::new();
    let mut buffer = Vec::new();
    let mut out = Vec::new();
    let mut written = Vec::new();
    let mut offset = 0;
    let mut next_size = sizes.iter().cycle();
    while offset < script.len() {
        let n = (*next_size.next().expect("cycle")).clamp(1, script.len() - offset);
        buffer.extend_from_slice(&script[offset..offset + n]);
        offset += n;
        loop {
            let (used, progress) = session.process(&store, &buffer, &mut out);
            buffer.drain(..used);
            match progress {
                Progress::Continue => break,
                Progress::OutputFull => written.append(&mut out),
                Progress::Close(reason) => {
                    written.append(&mut out);
                    return (written, Some(reason));
                }
            }
        }
    }
    written.append(&mut out);
    (written, None)
}

mod chunking;
mod control;
mod keyed;
mod limits;
mod storage;
