//! A load generator for memcached's meta protocol (memaslap speaks only the
//! text protocol): `mg <key> v` gets and `ms <key> <len> T0` sets, in a
//! `--get-ratio` mix over `--keys` keys, on `--conns` connections with
//! `--pipeline` requests in flight on each.
//!
//! ```text
//! meta_load --server HOST:PORT [--conns 16] [--threads 2] [--seconds 10]
//!           [--get-ratio 0.9] [--key-size 64] [--value-size 1024]
//!           [--keys 10000] [--pipeline 8] [--skip-preload]
//! ```
//!
//! Plain blocking sockets, `--threads` threads with `--conns / --threads`
//! connections each: a thread writes one batch of `--pipeline` requests to
//! every one of its connections, then reads every batch's replies, so all of
//! its connections have requests in flight at once. The replies to one batch
//! must fit in the socket buffers (they do by far at the defaults).
//!
//! First every key is stored once (`ms <key> <len> T0`, unless
//! `--skip-preload`), then the timed run starts. The value of a key is
//! `--value-size` copies of one letter that depends on the key, so a get is
//! checked byte for byte. Every reply is checked: `VA <len>` with that value
//! or `EN` for a get, `HD` for a set; anything else is an error, ends that
//! thread (its stream can no longer be trusted) and makes the exit status 1.
//!
//! Prints one line: `ops N secs S ops_per_sec X errors E` (ops are checked
//! replies during the timed run); get misses go to stderr.

use clap::Parser;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Parser, Debug, Clone)]
#[command(about = "Meta-protocol (mg/ms) load generator for memcached servers")]
struct Args {
    /// Server address, HOST:PORT.
    #[arg(long)]
    server: String,
    /// Connections in all, spread over the threads.
    #[arg(long, default_value_t = 16)]
    conns: usize,
    /// Client threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Length of the timed run, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Fraction of requests that are gets (`mg`); the rest are sets (`ms`).
    #[arg(long, default_value_t = 0.9)]
    get_ratio: f64,
    /// Key length in bytes (at most 250).
    #[arg(long, default_value_t = 64)]
    key_size: usize,
    /// Value length in bytes.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Number of distinct keys.
    #[arg(long, default_value_t = 10_000)]
    keys: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 8)]
    pipeline: usize,
    /// Do not store every key before the timed run (a previous run did).
    #[arg(long)]
    skip_preload: bool,
}

/// What a request expects back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// `mg` of this key: `VA <value_size>` and its value, or `EN`.
    Get(usize),
    /// `ms`: `HD`.
    Set,
}

/// Everything the threads share, read-only.
struct Shared {
    args: Args,
    /// The keys, each exactly `key_size` bytes.
    keys: Vec<Vec<u8>>,
    /// The 26 possible values; key `i` has `values[i % 26]`.
    values: Vec<Vec<u8>>,
}

impl Shared {
    fn new(args: Args) -> Self {
        let keys = (0..args.keys)
            .map(|i| {
                let mut key = format!("k{i}:").into_bytes();
                key.resize(args.key_size.max(key.len()), b'x');
                key
            })
            .collect();
        let values = (b'a'..=b'z').map(|c| vec![c; args.value_size]).collect();
        Self { args, keys, values }
    }

    fn value(&self, key: usize) -> &[u8] {
        &self.values[key % self.values.len()]
    }

    fn push_get(&self, out: &mut Vec<u8>, key: usize) {
        out.extend_from_slice(b"mg ");
        out.extend_from_slice(&self.keys[key]);
        out.extend_from_slice(b" v\r\n");
    }

    fn push_set(&self, out: &mut Vec<u8>, key: usize) {
        out.extend_from_slice(b"ms ");
        out.extend_from_slice(&self.keys[key]);
        out.extend_from_slice(format!(" {} T0\r\n", self.args.value_size).as_bytes());
        out.extend_from_slice(self.value(key));
        out.extend_from_slice(b"\r\n");
    }
}

/// A reply that does not have the expected shape.
#[derive(Debug)]
struct BadReply(String);

/// One connection: the socket, its unread input and its batch in flight.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Start of the unread bytes in `buf`.
    start: usize,
    out: Vec<u8>,
    expect: Vec<Expect>,
}

impl Conn {
    fn open(addr: SocketAddr) -> io::Result<Self> {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            buf: Vec::with_capacity(64 * 1024),
            start: 0,
            out: Vec::with_capacity(64 * 1024),
            expect: Vec::new(),
        })
    }

    fn send(&mut self) -> io::Result<()> {
        self.stream.write_all(&self.out)?;
        self.out.clear();
        Ok(())
    }

    /// Reads more input; compacts the buffer first.
    fn fill(&mut self) -> Result<(), BadReply> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let len = self.buf.len();
        self.buf.resize(len + 64 * 1024, 0);
        let n = self.stream.read(&mut self.buf[len..]);
        match n {
            Ok(0) => {
                self.buf.truncate(len);
                Err(BadReply("connection closed by the server".into()))
            }
            Ok(n) => {
                self.buf.truncate(len + n);
                Ok(())
            }
            Err(e) => {
                self.buf.truncate(len);
                Err(BadReply(format!("read: {e}")))
            }
        }
    }

    /// The next line, without its `\r\n`, as a range of `buf`.
    fn line(&mut self) -> Result<(usize, usize), BadReply> {
        let mut from = self.start;
        loop {
            if let Some(at) = self.buf[from..].windows(2).position(|w| w == b"\r\n") {
                let (s, e) = (self.start, from + at);
                self.start = e + 2;
                return Ok((s, e));
            }
            from = self.buf.len().saturating_sub(1).max(self.start);
            let consumed = from - self.start;
            self.fill()?;
            from = self.start + consumed;
        }
    }

    /// `n` bytes, as a range of `buf`.
    fn block(&mut self, n: usize) -> Result<(usize, usize), BadReply> {
        while self.buf.len() - self.start < n {
            self.fill()?;
        }
        let s = self.start;
        self.start += n;
        Ok((s, s + n))
    }

    /// Reads and checks the replies to the batch in flight; returns the
    /// number of get misses.
    fn receive(&mut self, shared: &Shared) -> Result<u64, BadReply> {
        let mut misses = 0;
        for i in 0..self.expect.len() {
            let expect = self.expect[i];
            let (s, e) = self.line()?;
            let shown = |buf: &[u8]| String::from_utf8_lossy(&buf[s..e]).into_owned();
            match expect {
                Expect::Set => {
                    if &self.buf[s..e] != b"HD" {
                        return Err(BadReply(format!(
                            "ms: expected HD, got {:?}",
                            shown(&self.buf)
                        )));
                    }
                }
                Expect::Get(key) => {
                    let line = &self.buf[s..e];
                    if line == b"EN" {
                        misses += 1;
                        continue;
                    }
                    let mut tokens = line.split(|&b| b == b' ');
                    let len = match (tokens.next(), tokens.next()) {
                        (Some(b"VA"), Some(len)) => std::str::from_utf8(len)
                            .ok()
                            .and_then(|len| len.parse::<usize>().ok()),
                        _ => None,
                    };
                    if len != Some(shared.args.value_size) {
                        return Err(BadReply(format!(
                            "mg: expected VA {} or EN, got {:?}",
                            shared.args.value_size,
                            shown(&self.buf)
                        )));
                    }
                    let (ds, de) = self.block(shared.args.value_size + 2)?;
                    let data = &self.buf[ds..de];
                    if &data[data.len() - 2..] != b"\r\n"
                        || &data[..data.len() - 2] != shared.value(key)
                    {
                        return Err(BadReply(format!(
                            "mg: wrong value for key {key} (starts {:?})",
                            String::from_utf8_lossy(&data[..data.len().min(16)])
                        )));
                    }
                }
            }
        }
        self.expect.clear();
        Ok(misses)
    }
}

/// xorshift64*: cheap and good enough to pick keys and commands.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What one thread did in the timed run.
#[derive(Default)]
struct Tally {
    ops: u64,
    misses: u64,
    errors: u64,
}

/// Stores keys `from..to` through `conns`, `--pipeline` at a time each.
fn preload(shared: &Shared, conns: &mut [Conn], from: usize, to: usize) -> Result<(), BadReply> {
    let depth = shared.args.pipeline;
    let mut next = from;
    while next < to {
        for conn in conns.iter_mut() {
            for _ in 0..depth {
                if next == to {
                    break;
                }
                shared.push_set(&mut conn.out, next);
                conn.expect.push(Expect::Set);
                next += 1;
            }
            conn.send().map_err(|e| BadReply(format!("write: {e}")))?;
        }
        for conn in conns.iter_mut() {
            conn.receive(shared)?;
        }
    }
    Ok(())
}

fn run(shared: &Shared, conns: &mut [Conn], seed: u64, deadline: Instant) -> Tally {
    let args = &shared.args;
    let mut rng = Rng(seed | 1);
    let mut tally = Tally::default();
    while Instant::now() < deadline {
        for conn in conns.iter_mut() {
            for _ in 0..args.pipeline {
                let key = rng.below(args.keys);
                if rng.unit() < args.get_ratio {
                    shared.push_get(&mut conn.out, key);
                    conn.expect.push(Expect::Get(key));
                } else {
                    shared.push_set(&mut conn.out, key);
                    conn.expect.push(Expect::Set);
                }
            }
            if let Err(e) = conn.send() {
                eprintln!("meta_load: write: {e}");
                tally.errors += 1;
                return tally;
            }
        }
        for conn in conns.iter_mut() {
            let batch = conn.expect.len() as u64;
            match conn.receive(shared) {
                Ok(misses) => {
                    tally.ops += batch;
                    tally.misses += misses;
                }
                Err(BadReply(e)) => {
                    eprintln!("meta_load: {e}");
                    tally.errors += 1;
                    return tally;
                }
            }
        }
    }
    tally
}

fn main() -> ExitCode {
    let args = Args::parse();
    if args.threads == 0 || args.conns < args.threads || args.pipeline == 0 || args.keys == 0 {
        eprintln!(
            "meta_load: need --threads >= 1, --conns >= --threads, --pipeline >= 1, --keys >= 1"
        );
        return ExitCode::from(2);
    }
    if args.key_size > 250 || !(0.0..=1.0).contains(&args.get_ratio) {
        eprintln!("meta_load: need --key-size <= 250 and 0 <= --get-ratio <= 1");
        return ExitCode::from(2);
    }
    let addr = match args.server.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => addr,
        _ => {
            eprintln!("meta_load: cannot resolve {}", args.server);
            return ExitCode::from(2);
        }
    };
    let shared = Arc::new(Shared::new(args.clone()));
    // Connections are opened up front, so a refused one fails the run early.
    let mut groups: Vec<Vec<Conn>> = (0..args.threads).map(|_| Vec::new()).collect();
    for i in 0..args.conns {
        match Conn::open(addr) {
            Ok(conn) => groups[i % args.threads].push(conn),
            Err(e) => {
                eprintln!("meta_load: connect {addr}: {e}");
                return ExitCode::from(1);
            }
        }
    }
    if !args.skip_preload {
        let per = args.keys.div_ceil(args.threads);
        let handles: Vec<_> = groups
            .into_iter()
            .enumerate()
            .map(|(t, mut conns)| {
                let shared = Arc::clone(&shared);
                thread::spawn(move || {
                    let from = (t * per).min(shared.args.keys);
                    let to = ((t + 1) * per).min(shared.args.keys);
                    preload(&shared, &mut conns, from, to).map(|()| conns)
                })
            })
            .collect();
        groups = Vec::new();
        for handle in handles {
            match handle.join().expect("preload thread panicked") {
                Ok(conns) => groups.push(conns),
                Err(BadReply(e)) => {
                    eprintln!("meta_load: preload: {e}");
                    println!("ops 0 secs 0.000 ops_per_sec 0 errors 1");
                    return ExitCode::from(1);
                }
            }
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(args.seconds);
    let handles: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(t, mut conns)| {
            let shared = Arc::clone(&shared);
            let seed = 0x9e37_79b9_7f4a_7c15u64.wrapping_mul(t as u64 + 1);
            thread::spawn(move || run(&shared, &mut conns, seed, deadline))
        })
        .collect();
    let mut total = Tally::default();
    for handle in handles {
        let tally = handle.join().expect("load thread panicked");
        total.ops += tally.ops;
        total.misses += tally.misses;
        total.errors += tally.errors;
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!("meta_load: get misses {}", total.misses);
    println!(
        "ops {} secs {:.3} ops_per_sec {:.0} errors {}",
        total.ops,
        secs,
        total.ops as f64 / secs,
        total.errors
    );
    if total.errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
