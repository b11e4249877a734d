//! Shared test vocabulary: run a dispatcher until a condition holds (bounded
//! in time, tolerant of spurious wakeups), record events, read everything.
#![allow(dead_code)]

use netlib::{Context, Event, EventDispatch, Handle, ListenOptions};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(10);

pub fn localhost() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Turns the loop until `done()` or panics after `TIMEOUT`.
pub fn run_until(d: &mut EventDispatch, what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for: {what}");
        d.run_once(Some(Duration::from_millis(10))).unwrap();
    }
}

/// What a recording handler saw.
#[derive(Default)]
pub struct Record {
    pub events: Vec<(Handle, Event)>,
    pub data: HashMap<Handle, Vec<u8>>,
    pub closed: HashMap<Handle, netlib::CloseReason>,
}

pub type Shared = Rc<RefCell<Record>>;

impl Record {
    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }
    pub fn accepted(&self) -> Vec<Handle> {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, Event::Connect { .. }))
            .map(|(h, _)| *h)
            .collect()
    }
}

/// Reads until WouldBlock or end-of-stream, appending to the record.
pub fn drain(ctx: &mut Context, h: Handle, rec: &Shared) {
    let mut buf = [0u8; 8192];
    loop {
        match ctx.recv(h, &mut buf) {
            Ok(0) => return,
            Ok(n) => rec
                .borrow_mut()
                .data
                .entry(h)
                .or_default()
                .extend_from_slice(&buf[..n]),
            Err(_) => return,
        }
    }
}

/// A handler that records every event and reads everything.
pub fn recorder(rec: Shared) -> impl FnMut(&mut Context, Handle, Event) {
    move |ctx, h, ev| {
        rec.borrow_mut().events.push((h, ev));
        match ev {
            Event::Read => drain(ctx, h, &rec),
            Event::Close(r) => {
                rec.borrow_mut().closed.insert(h, r);
            }
            _ => {}
        }
    }
}

/// An echo handler that queues nothing: for small messages only.
pub fn echo(ctx: &mut Context, h: Handle, ev: Event) {
    if let Event::Read = ev {
        let mut buf = [0u8; 16384];
        while let Ok(n) = ctx.recv(h, &mut buf) {
            if n == 0 {
                break;
            }
            let mut off = 0;
            while off < n {
                match ctx.send(h, &buf[off..n]) {
                    Ok(k) => off += k,
                    Err(_) => return,
                }
            }
        }
    }
}

pub fn listen_echo(d: &mut EventDispatch) -> SocketAddr {
    let ctx = d.context();
    let l = ctx
        .listen(localhost(), &ListenOptions::default(), echo)
        .unwrap();
    ctx.local_addr(l).unwrap()
}

/// Raises the soft descriptor limit to the hard one (tests open thousands).
pub fn raise_nofile() {
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Starts an echo server on its own thread (a dispatcher is not `Send`, so
/// it is built there). Stop it with the returned poster.
pub fn spawn_echo_server() -> (SocketAddr, netlib::Poster, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut d = EventDispatch::new().unwrap();
        let addr = listen_echo(&mut d);
        tx.send((addr, d.poster())).unwrap();
        d.run().unwrap();
    });
    let (addr, poster) = rx.recv().unwrap();
    (addr, poster, thread)
}
