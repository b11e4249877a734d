//! 1,000 concurrent clients doing mixed get/set against `netlib-memcached`
//! see correct values.
//!
//! The clients run on netlib itself: one [`EventDispatch`] on the test
//! thread opens all 1,000 connections, waits until every one is connected,
//! then each client runs its own sequence of 40 operations (70 % get, 30 %
//! set, values of 1 to 4,000 bytes) on four keys of its own, one request in
//! flight at a time. Each client knows exactly what its keys hold, so every
//! reply is compared byte for byte with the reply it must be. A watchdog
//! timer bounds the test.

mod memcached_common;

use memcached_common::{ServerProcess, TextClient};
use netlib::{ConnectOptions, Context, Event, EventDispatch, Handle, Handler};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

const CLIENTS: usize = 1000;
const OPS_PER_CLIENT: usize = 40;
const KEYS_PER_CLIENT: usize = 4;
const WATCHDOG: Duration = Duration::from_secs(90);

/// What the test reads after the loop stops.
#[derive(Default)]
struct Report {
    connected: usize,
    finished: usize,
    operations: usize,
    failures: Vec<String>,
    timed_out: bool,
}

struct Client {
    id: usize,
    rng: u64,
    ops_done: usize,
    /// What each of this client's keys holds, as far as it knows.
    values: [Option<Vec<u8>>; KEYS_PER_CLIENT],
    /// The exact reply the request in flight must get.
    expected: Vec<u8>,
    /// The value a set in flight stores once STORED arrives.
    storing: Option<(usize, Vec<u8>)>,
    input: Vec<u8>,
    /// Request bytes the kernel has not taken yet.
    output: Vec<u8>,
    done: bool,
}

impl Client {
    fn new(id: usize) -> Client {
        Client {
            id,
            rng: 0x9e37_79b9_7f4a_7c15 ^ (id as u64 + 1).wrapping_mul(0xbf58_476d_1ce4_e5b9),
            ops_done: 0,
            values: Default::default(),
            expected: Vec::new(),
            storing: None,
            input: Vec::new(),
            output: Vec::new(),
            done: false,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn key(&self, k: usize) -> String {
        format!("client{}:key{}", self.id, k)
    }

    /// Queues the next request and the reply it must get.
    fn next_request(&mut self) {
        let k = (self.next_random() % KEYS_PER_CLIENT as u64) as usize;
        let key = self.key(k);
        self.expected.clear();
        if self.next_random() % 10 < 3 {
            let len = 1 + (self.next_random() % 4000) as usize;
            let mut value = format!("{key}:op{}:", self.ops_done).into_bytes();
            let fill = b'a' + (self.next_random() % 26) as u8;
            value.resize(len.max(value.len()), fill);
            self.output
                .extend_from_slice(format!("set {key} 0 0 {}\r\n", value.len()).as_bytes());
            self.output.extend_from_slice(&value);
            self.output.extend_from_slice(b"\r\n");
            self.expected.extend_from_slice(b"STORED\r\n");
            self.storing = Some((k, value));
        } else {
            self.output
                .extend_from_slice(format!("get {key}\r\n").as_bytes());
            if let Some(value) = &self.values[k] {
                self.expected
                    .extend_from_slice(format!("VALUE {key} 0 {}\r\n", value.len()).as_bytes());
                self.expected.extend_from_slice(value);
                self.expected.extend_from_slice(b"\r\n");
            }
            self.expected.extend_from_slice(b"END\r\n");
        }
    }
}

/// Serves all 1,000 client sockets (one handler, a map of client states).
struct Clients {
    clients: HashMap<Handle, Client>,
    report: Rc<RefCell<Report>>,
}

impl Clients {
    fn fail(&mut self, ctx: &mut Context, h: Handle, why: String) {
        if let Some(c) = self.clients.get_mut(&h) {
            if !c.done {
                c.done = true;
                self.report
                    .borrow_mut()
                    .failures
                    .push(format!("client {}: {why}", c.id));
            }
        }
        let _ = ctx.close(h);
        self.maybe_stop(ctx);
    }

    fn maybe_stop(&self, ctx: &mut Context) {
        let report = self.report.borrow();
        if report.finished + report.failures.len() >= CLIENTS {
            ctx.stop();
        }
    }

    fn flush(&mut self, ctx: &mut Context, h: Handle) {
        let Some(c) = self.clients.get_mut(&h) else {
            return;
        };
        if c.output.is_empty() {
            return;
        }
        match ctx.send(h, &c.output) {
            Ok(n) => {
                c.output.drain(..n);
            }
            Err(e) if e.is_would_block() => {}
            Err(e) => self.fail(ctx, h, format!("send: {e}")),
        }
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match ctx.recv(h, &mut buf) {
                Ok(0) => return, // Close follows
                Ok(n) => {
                    if let Some(c) = self.clients.get_mut(&h) {
                        c.input.extend_from_slice(&buf[..n]);
                    }
                }
                Err(e) if e.is_would_block() => break,
                Err(_) => return,
            }
        }
        let Some(c) = self.clients.get_mut(&h) else {
            return;
        };
        if c.done || c.input.len() < c.expected.len() {
            return;
        }
        if c.input != c.expected {
            let got = String::from_utf8_lossy(&c.input[..c.input.len().min(200)]).into_owned();
            let want =
                String::from_utf8_lossy(&c.expected[..c.expected.len().min(200)]).into_owned();
            let why = format!("op {}: got {got:?}, want {want:?}", c.ops_done);
            return self.fail(ctx, h, why);
        }
        c.input.clear();
        if let Some((k, value)) = c.storing.take() {
            c.values[k] = Some(value);
        }
        c.ops_done += 1;
        self.report.borrow_mut().operations += 1;
        if c.ops_done == OPS_PER_CLIENT {
            c.done = true;
            self.report.borrow_mut().finished += 1;
            let _ = ctx.close(h);
            self.maybe_stop(ctx);
            return;
        }
        c.next_request();
        self.flush(ctx, h);
    }
}

impl Handler for Clients {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Confirm => {
                let connected = {
                    let mut report = self.report.borrow_mut();
                    report.connected += 1;
                    report.connected
                };
                // Start only once all 1,000 are connected at the same time.
                if connected == CLIENTS {
                    let handles: Vec<Handle> = self.clients.keys().copied().collect();
                    for h in handles {
                        if let Some(c) = self.clients.get_mut(&h) {
                            c.next_request();
                        }
                        self.flush(ctx, h);
                    }
                }
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => self.flush(ctx, h),
            Event::Close(reason) if self.clients.get(&h).is_some_and(|c| !c.done) => {
                self.fail(ctx, h, format!("connection closed early: {reason}"));
            }
            _ => {}
        }
    }
}

fn run_clients(addr: SocketAddr) -> Report {
    let report = Rc::new(RefCell::new(Report::default()));
    let mut dispatch = EventDispatch::new().expect("dispatcher");
    let ctx = dispatch.context();
    let clients = ctx.add_handler(Clients {
        clients: HashMap::new(),
        report: report.clone(),
    });
    let options = ConnectOptions {
        timeout: Some(Duration::from_secs(20)),
        ..ConnectOptions::default()
    };
    for id in 0..CLIENTS {
        let h = ctx.connect_with(addr, &options, clients).expect("connect");
        ctx.with_handler::<Clients, _>(clients, |all, _| {
            all.clients.insert(h, Client::new(id));
        })
        .expect("clients handler");
    }
    let watchdog = report.clone();
    ctx.add_timer(WATCHDOG, move |ctx, _| {
        watchdog.borrow_mut().timed_out = true;
        ctx.stop();
    });
    dispatch.run().expect("client loop");
    Rc::try_unwrap(report)
        .map(RefCell::into_inner)
        .unwrap_or_else(|shared| std::mem::take(&mut *shared.borrow_mut()))
}

#[test]
fn thousand_concurrent_clients_see_their_own_values() {
    let server = ServerProcess::start(&["-c", "2048"]);
    let started = Instant::now();
    let report = run_clients(server.addr);
    let elapsed = started.elapsed();
    assert!(
        report.failures.is_empty(),
        "{} of {CLIENTS} clients failed, first: {:?}",
        report.failures.len(),
        &report.failures[..report.failures.len().min(5)]
    );
    assert!(
        !report.timed_out,
        "clients did not finish within {WATCHDOG:?}"
    );
    assert_eq!(report.connected, CLIENTS);
    assert_eq!(report.finished, CLIENTS);
    assert_eq!(report.operations, CLIENTS * OPS_PER_CLIENT);
    println!(
        "{CLIENTS} clients x {OPS_PER_CLIENT} ops in {elapsed:?} ({} ops)",
        report.operations
    );

    // The server saw every connection, and notices every close.
    let mut stats = TextClient::connect(server.addr);
    let total: u64 = stats.stat("total_connections").parse().unwrap();
    assert!(total > CLIENTS as u64, "total_connections {total}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let open: u64 = stats.stat("curr_connections").parse().unwrap();
        if open == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "curr_connections stuck at {open}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
