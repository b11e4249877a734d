//! im_soak: a bounded mixed load against a running login_server + msg_server
//! pair, checking that every acknowledged message arrives exactly once.
//!
//! ```text
//! im_soak users users.txt 50                      # writes accounts u1..u50 (password pw<id>)
//! im_soak --login 127.0.0.1:8008 --users 50 --minutes 10 [--rate 20] [--churn-secs 30]
//! ```
//!
//! Each of the `--users` users runs on its own thread: it asks the
//! login_server for a msg_server (alternating the PDU port and, with
//! `--http`, the HTTP port), logs in, and sends `--rate` messages a second to
//! random other users while acking what it receives. About every
//! `--churn-secs` it waits for its acks, disconnects, stays away one to three
//! seconds (messages to it queue offline meanwhile) and comes back. When the
//! time is up every user logs back in, sending stops, and everyone reads for
//! `--drain-secs`; then the acknowledged messages are compared with the ones
//! received. A progress line is printed every 10 s.
//!
//! Exit status 0 when no acknowledged message was lost or duplicated, 1
//! otherwise, 2 on bad arguments.

use servers::client::{query_msg_server, query_msg_server_http, ImClient};
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(5);

struct Opts {
    login: SocketAddr,
    http: Option<SocketAddr>,
    users: u32,
    minutes: f64,
    rate: f64,
    churn_secs: f64,
    drain_secs: u64,
}

fn usage() -> ! {
    eprintln!(
        "usage: im_soak --login HOST:PORT [--http HOST:PORT] --users N --minutes M \
         [--rate MSGS_PER_SEC_PER_USER] [--churn-secs S] [--drain-secs S]\n       \
         im_soak users FILE N"
    );
    std::process::exit(2)
}

fn parse(args: Vec<String>) -> Opts {
    let mut o = Opts {
        login: "127.0.0.1:8008".parse().unwrap_or_else(|_| usage()),
        http: None,
        users: 50,
        minutes: 10.0,
        rate: 20.0,
        churn_secs: 30.0,
        drain_secs: 10,
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--login" => o.login = v.parse().unwrap_or_else(|_| usage()),
            "--http" => o.http = Some(v.parse().unwrap_or_else(|_| usage())),
            "--users" => o.users = v.parse().unwrap_or_else(|_| usage()),
            "--minutes" => o.minutes = v.parse().unwrap_or_else(|_| usage()),
            "--rate" => o.rate = v.parse().unwrap_or_else(|_| usage()),
            "--churn-secs" => o.churn_secs = v.parse().unwrap_or_else(|_| usage()),
            "--drain-secs" => o.drain_secs = v.parse().unwrap_or_else(|_| usage()),
            _ => usage(),
        }
    }
    if o.users < 2 || o.rate <= 0.0 || o.churn_secs <= 0.0 {
        usage();
    }
    o
}

/// xorshift64*: the load only needs to be varied, not unpredictable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn secs(&mut self, mean: f64) -> Duration {
        // Uniform in [mean/2, 3*mean/2).
        Duration::from_secs_f64(mean * (0.5 + (self.next() % 1000) as f64 / 1000.0))
    }
}

/// What all user threads record.
#[derive(Default)]
struct Ledger {
    /// (sender, sequence) of every message the server acknowledged.
    acked: Mutex<Vec<(u32, u64)>>,
    /// How often each (sender, sequence) was received.
    received: Mutex<HashMap<(u32, u64), u32>>,
    sent: AtomicU64,
    acks: AtomicU64,
    deliveries: AtomicU64,
    logins: AtomicU64,
    unconfirmed: AtomicU64,
    errors: AtomicU64,
}

/// One user's connection and the sequence numbers it sent but has not had
/// acknowledged yet (acks come back in sending order on one connection).
struct Session {
    client: ImClient,
    in_flight: VecDeque<u64>,
}

struct User {
    id: u32,
    opts: Arc<Opts>,
    ledger: Arc<Ledger>,
    rng: Rng,
    next_seq: u64,
    logins: u64,
}

impl User {
    fn connect(&mut self) -> io::Result<Session> {
        // Alternate the two lookups when both are given.
        let msg_server = match self.opts.http {
            Some(http) if self.logins % 2 == 1 => query_msg_server_http(http, TIMEOUT)?,
            _ => query_msg_server(self.opts.login, TIMEOUT)?,
        };
        let mut client = ImClient::connect(msg_server, TIMEOUT)?;
        let id = self.id;
        let res = client.login(&format!("u{id}"), &format!("pw{id}"), false, TIMEOUT)?;
        if res.result_code != 0 {
            return Err(io::Error::other(format!(
                "login of u{id} refused: {}",
                res.result_code
            )));
        }
        self.logins += 1;
        self.ledger.logins.fetch_add(1, Relaxed);
        Ok(Session {
            client,
            in_flight: VecDeque::new(),
        })
    }

    /// Logs in, retrying for up to a minute (the servers may be busy).
    fn connect_retrying(&mut self) -> Session {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self.connect() {
                Ok(s) => return s,
                Err(e) => {
                    self.ledger.errors.fetch_add(1, Relaxed);
                    eprintln!("im_soak: u{}: {e}", self.id);
                    if Instant::now() > deadline {
                        eprintln!("im_soak: u{} could not log in for a minute", self.id);
                        std::process::exit(1);
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }

    /// Reads until `until`, acking deliveries and matching acks.
    fn read(&mut self, s: &mut Session, until: Instant) -> io::Result<()> {
        loop {
            let got = s.client.next_message(until)?;
            self.take_acks(s);
            match got {
                Some(m) => {
                    self.ledger.deliveries.fetch_add(1, Relaxed);
                    let key = std::str::from_utf8(&m.msg_data)
                        .ok()
                        .and_then(|t| t.split_once('-'))
                        .and_then(|(from, seq)| Some((from.parse().ok()?, seq.parse().ok()?)));
                    match key {
                        Some(k) => *self.ledger.received.lock().unwrap().entry(k).or_default() += 1,
                        None => eprintln!("im_soak: u{}: foreign message {m:?}", self.id),
                    }
                }
                None => return Ok(()),
            }
        }
    }

    fn take_acks(&mut self, s: &mut Session) {
        for _ in s.client.acked.drain(..) {
            let seq = s.in_flight.pop_front().expect("ack for nothing sent");
            self.ledger.acked.lock().unwrap().push((self.id, seq));
            self.ledger.acks.fetch_add(1, Relaxed);
        }
    }

    /// Reads until every message sent on `s` is acknowledged (or 10 s pass).
    fn settle(&mut self, s: &mut Session) -> io::Result<()> {
        let deadline = Instant::now() + TIMEOUT;
        while !s.in_flight.is_empty() && Instant::now() < deadline {
            self.read(
                s,
                (Instant::now() + Duration::from_millis(50)).min(deadline),
            )?;
        }
        Ok(())
    }

    fn drop_session(&mut self, s: Session) {
        // Not acknowledged: the server may or may not have taken them.
        self.ledger
            .unconfirmed
            .fetch_add(s.in_flight.len() as u64, Relaxed);
    }

    fn run(mut self, stop_sending: Arc<AtomicBool>, stop_reading: Arc<AtomicBool>) {
        let pace = Duration::from_secs_f64(1.0 / self.opts.rate);
        let mut session = self.connect_retrying();
        let mut next_churn = Instant::now() + self.rng.secs(self.opts.churn_secs);
        while !stop_sending.load(Relaxed) {
            let result = self.send_one(&mut session, pace);
            let churn = Instant::now() >= next_churn;
            if let Err(e) = result {
                self.ledger.errors.fetch_add(1, Relaxed);
                eprintln!("im_soak: u{}: {e}; logging in again", self.id);
            } else if !churn {
                continue;
            } else if let Err(e) = self.settle(&mut session) {
                self.ledger.errors.fetch_add(1, Relaxed);
                eprintln!("im_soak: u{}: {e}", self.id);
            }
            // The old connection closes here, before the next login.
            self.drop_session(session);
            if churn {
                std::thread::sleep(self.rng.secs(2.0));
                next_churn = Instant::now() + self.rng.secs(self.opts.churn_secs);
            }
            session = self.connect_retrying();
        }
        // Drain: everyone is online; collect acks and what is still queued.
        while !stop_reading.load(Relaxed) {
            let until = Instant::now() + Duration::from_millis(200);
            let r = self
                .read(&mut session, until)
                .and_then(|_| session.client.heartbeat_if_idle(HEARTBEAT));
            if let Err(e) = r {
                self.ledger.errors.fetch_add(1, Relaxed);
                eprintln!("im_soak: u{} while draining: {e}", self.id);
                self.drop_session(session);
                session = self.connect_retrying();
            }
        }
        self.drop_session(session);
    }

    /// Sends one message to a random other user, then reads for `pace`.
    fn send_one(&mut self, s: &mut Session, pace: Duration) -> io::Result<()> {
        let mut to = 1 + self.rng.below(u64::from(self.opts.users - 1)) as u32;
        if to >= self.id {
            to += 1;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        s.client.send_text(to, &format!("{}-{seq}", self.id))?;
        s.in_flight.push_back(seq);
        self.ledger.sent.fetch_add(1, Relaxed);
        self.read(s, Instant::now() + pace)?;
        s.client.heartbeat_if_idle(HEARTBEAT)
    }
}

fn write_users(args: &[String]) {
    let (Some(path), Some(n)) = (
        args.first(),
        args.get(1).and_then(|n| n.parse::<u32>().ok()),
    ) else {
        usage()
    };
    let mut text = String::new();
    for id in 1..=n {
        text.push_str(&servers::users::user_line(
            id,
            &format!("u{id}"),
            &format!("s{id}"),
            &format!("pw{id}"),
        ));
        text.push('\n');
    }
    if let Err(e) = std::fs::write(path, text) {
        eprintln!("im_soak: {path}: {e}");
        std::process::exit(1);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("users") {
        write_users(&args[1..]);
        return;
    }
    let opts = Arc::new(parse(args));
    let ledger = Arc::new(Ledger::default());
    let stop_sending = Arc::new(AtomicBool::new(false));
    let stop_reading = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut threads = Vec::new();
    for id in 1..=opts.users {
        let user = User {
            id,
            opts: opts.clone(),
            ledger: ledger.clone(),
            rng: Rng(0x9e37_79b9_7f4a_7c15 ^ (u64::from(id) << 17) ^ u64::from(id)),
            next_seq: 0,
            logins: 0,
        };
        let (s, r) = (stop_sending.clone(), stop_reading.clone());
        threads.push(std::thread::spawn(move || user.run(s, r)));
    }
    let load = Duration::from_secs_f64(opts.minutes * 60.0);
    let progress = |phase: &str| {
        let l = &ledger;
        println!(
            "im_soak: {:>5.0} s {phase}: sent {} acked {} delivered {} logins {} errors {}",
            start.elapsed().as_secs_f64(),
            l.sent.load(Relaxed),
            l.acks.load(Relaxed),
            l.deliveries.load(Relaxed),
            l.logins.load(Relaxed),
            l.errors.load(Relaxed),
        );
    };
    let mut next = start + Duration::from_secs(10);
    while start.elapsed() < load {
        std::thread::sleep(
            next.saturating_duration_since(Instant::now())
                .min(load - start.elapsed().min(load)),
        );
        if Instant::now() >= next {
            progress("load");
            next += Duration::from_secs(10);
        }
    }
    stop_sending.store(true, Relaxed);
    std::thread::sleep(Duration::from_secs(opts.drain_secs));
    stop_reading.store(true, Relaxed);
    for t in threads {
        if t.join().is_err() {
            ledger.errors.fetch_add(1, Relaxed);
        }
    }
    progress("done");
    let acked = ledger.acked.lock().unwrap();
    let received = ledger.received.lock().unwrap();
    let lost = acked.iter().filter(|k| !received.contains_key(k)).count();
    let duplicated = received.values().filter(|n| **n > 1).count();
    let unacked_received = received.len() - (acked.len() - lost);
    println!(
        "im_soak: {} users, {:.1} min: {} messages acknowledged, {} lost, {} received more than once; \
         {} sent without an ack before a disconnect ({} of those delivered anyway); {} logins, {} errors",
        opts.users,
        opts.minutes,
        acked.len(),
        lost,
        duplicated,
        ledger.unconfirmed.load(Relaxed),
        unacked_received,
        ledger.logins.load(Relaxed),
        ledger.errors.load(Relaxed),
    );
    if lost > 0 || duplicated > 0 {
        println!("im_soak: FAILED");
        std::process::exit(1);
    }
    println!("im_soak: ok");
}
