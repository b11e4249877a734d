//! # sudoku - a solver service, on the loop or on a compute pool, that sheds load
//!
//! Requests are lines `[id:]<81 cells>\r\n` (digits, `.` or `0` for empty);
//! replies are `id:<81 digits>\r\n` or `id:NoSolution\r\n`. A malformed line
//! gets `Bad Request!\r\n` and the connection is closed once that is sent.
//!
//! Two ways to run it, muduo's first two concurrency models:
//!
//! - `--threads 0`: solve on the event loop. Simple, but while a hard puzzle
//!   is being solved no other connection is served.
//! - `--threads N` (the default, 2): the loop only does I/O and parsing;
//!   puzzles go to N compute threads, and each answer is *posted back* to the
//!   loop (`Poster::post` + `Context::with_handler`), which owns the
//!   connections and sends it. Replies may come back out of order - hence
//!   the ids.
//!
//! Overload: a server that queues every request it reads answers later and
//! later, and its queues eat memory, until it falls over. This one sheds
//! load instead: when `--max-pending` puzzles already wait for the pool, or a
//! connection's unsent output passes `--max-output` bytes, the request is
//! answered at once with `id:ServerTooBusy\r\n`. A client that keeps sending
//! without reading is closed when its unsent output reaches four times that.
//!
//! ```text
//! sudoku [--host 127.0.0.1] [--port 9981] [--threads 2] [--max-pending 1000] [--max-output 1048576]
//! printf '1:53..7....6..195....98....6.8...6...34..8.3..17...2...6.6....28....419..5....8..79\r\n' | nc -q1 127.0.0.1 9981
//! ```

use clap::Parser;
use examples::cli;
use examples::conns::ConnTable;
use examples::sudoku::{answer, parse_line, write_reply, MAX_LINE};
use imconn::{BufferedConn, Limits};
use netlib::{Context, Event, EventDispatch, Handle, Handler, HandlerRef, ListenOptions, Poster};
use std::net::IpAddr;
use std::process::ExitCode;
use std::sync::{mpsc, Arc, Mutex};

/// A sudoku solver service that sheds load instead of queueing without bound.
#[derive(Parser)]
#[command(name = "sudoku")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 9981)]
    port: u16,
    /// Compute threads; 0 solves on the event loop
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Puzzles waiting for the pool before new ones get ServerTooBusy
    #[arg(long, default_value_t = 1000)]
    max_pending: usize,
    /// Unsent bytes of a connection before its requests get ServerTooBusy
    #[arg(long, default_value_t = 1 << 20, value_parser = cli::positive::<usize>)]
    max_output: usize,
}

type Job = Box<dyn FnOnce() + Send>;

/// Compute threads fed from one channel.
struct Pool {
    jobs: mpsc::Sender<Job>,
}

impl Pool {
    fn new(threads: usize) -> std::io::Result<Pool> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("sudoku-{i}"))
                .spawn(move || loop {
                    // The lock is held only to take one job.
                    let job = match rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    match job {
                        Ok(job) => job(),
                        Err(_) => return, // the server is gone
                    }
                })?;
        }
        Ok(Pool { jobs })
    }
}

struct Conn {
    io: BufferedConn,
    /// Puzzles of this connection on the pool.
    in_flight: usize,
    /// The client finished sending (half-close: we may still answer).
    eof: bool,
    /// Nothing more to read or answer; close once the output is sent.
    closing: bool,
}

impl Conn {
    /// Closes now if all is sent, else once Event::Write drains the rest.
    fn close_when_sent(&mut self, ctx: &mut Context) {
        self.closing = true;
        if self.io.queued() == 0 {
            self.io.force_close(ctx);
        } else {
            let _ = ctx.pause_read(self.io.handle());
        }
    }

    /// After the client's end-of-stream, close once every answer is out.
    fn finish_if_done(&mut self, ctx: &mut Context) {
        if self.eof && self.in_flight == 0 && !self.closing {
            self.close_when_sent(ctx);
        }
    }
}

struct Sudoku {
    conns: ConnTable<Conn>,
    pool: Option<Pool>,
    poster: Poster,
    /// This handler, for answers posted back from the pool.
    me: Option<HandlerRef>,
    /// Puzzles handed to the pool and not answered yet.
    pending: usize,
    max_pending: usize,
    max_output: usize,
    reply: Vec<u8>,
    requests: u64,
    shed: u64,
}

impl Sudoku {
    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        conn.io.fill(ctx);
        while let Some(conn) = self.conns.get_mut(h) {
            if conn.closing || conn.io.is_closed() {
                return;
            }
            let data = conn.io.in_buf.as_slice();
            let Some(nl) = data.iter().take(MAX_LINE + 2).position(|&b| b == b'\n') else {
                if data.len() > MAX_LINE + 1 {
                    return self.bad_request(ctx, h, "line too long");
                }
                return; // incomplete
            };
            let line = &data[..nl];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let request = match parse_line(line) {
                Ok(r) => r,
                Err(e) => {
                    let why = format!("{e:?}");
                    return self.bad_request(ctx, h, &why);
                }
            };
            self.requests += 1;
            self.reply.clear();
            let busy = conn.io.queued() > self.max_output
                || (self.pool.is_some() && self.pending >= self.max_pending);
            if busy {
                self.shed += 1;
                write_reply(&mut self.reply, request.id, b"ServerTooBusy");
            } else if let (Some(pool), Some(me)) = (&self.pool, self.me) {
                let id = request.id.map(<[u8]>::to_vec);
                let cells = request.cells;
                let poster = self.poster.clone();
                let job: Job = Box::new(move || {
                    let mut line = Vec::with_capacity(100);
                    write_reply(&mut line, id.as_deref(), &answer(&cells));
                    // Back to the loop, which owns the connection.
                    let _ = poster.post(move |ctx| {
                        ctx.with_handler(me, |s: &mut Sudoku, ctx| s.answered(ctx, h, &line));
                    });
                });
                if pool.jobs.send(job).is_ok() {
                    self.pending += 1;
                    conn.in_flight += 1;
                }
            } else {
                write_reply(&mut self.reply, request.id, &answer(&request.cells));
            }
            conn.io.in_buf.consume(nl + 1);
            if !self.reply.is_empty() {
                if let Err(e) = conn.io.send(ctx, &self.reply) {
                    log::warn!("{}: {e}", cli::addr_or_unknown(conn.io.peer()));
                    return;
                }
            }
        }
    }

    /// An answer from the pool, on the loop.
    fn answered(&mut self, ctx: &mut Context, h: Handle, line: &[u8]) {
        self.pending -= 1;
        // The connection may have gone meanwhile; the handle then is stale.
        if let Some(conn) = self.conns.get_mut(h) {
            conn.in_flight -= 1;
            if !conn.closing && !conn.io.is_closed() {
                if let Err(e) = conn.io.send(ctx, line) {
                    log::warn!("{}: {e}", cli::addr_or_unknown(conn.io.peer()));
                }
            }
            conn.finish_if_done(ctx);
        }
    }

    fn bad_request(&mut self, ctx: &mut Context, h: Handle, why: &str) {
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        log::info!(
            "bad request from {}: {why}",
            cli::addr_or_unknown(conn.io.peer())
        );
        conn.io.in_buf.clear();
        if conn.io.send(ctx, b"Bad Request!\r\n").is_ok() {
            conn.close_when_sent(ctx);
        }
    }
}

impl Handler for Sudoku {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                let limits = Limits {
                    high_water: self.max_output,
                    hard_cap: self.max_output.saturating_mul(4),
                    read_chunk: 64 * 1024,
                };
                let io = BufferedConn::new(ctx, h, limits);
                let conn = Conn {
                    io,
                    in_flight: 0,
                    eof: false,
                    closing: false,
                };
                self.conns.insert(h, conn);
            }
            Event::Read => self.on_read(ctx, h),
            // Answer what was asked before the end-of-stream, then close.
            Event::ReadClosed => {
                if let Some(conn) = self.conns.get_mut(h) {
                    conn.eof = true;
                    conn.finish_if_done(ctx);
                }
            }
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    let drained = conn.io.flush(ctx).is_ok_and(|s| s.queued == 0);
                    if drained && conn.closing {
                        conn.io.force_close(ctx);
                    }
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.conns.remove(h) {
                    imconn::buffered::log_close(h, conn.io.peer(), reason);
                }
                log::debug!(
                    "{} requests so far, {} shed, {} pending",
                    self.requests,
                    self.shed,
                    self.pending
                );
            }
            _ => {}
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let threads = args.threads;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let poster = dispatch.poster();
        let ctx = dispatch.context();
        let pool = match threads {
            0 => None,
            n => Some(Pool::new(n)?),
        };
        let me = ctx.add_handler(Sudoku {
            conns: ConnTable::new(),
            pool,
            poster,
            me: None,
            pending: 0,
            max_pending: args.max_pending,
            max_output: args.max_output,
            reply: Vec::new(),
            requests: 0,
            shed: 0,
        });
        ctx.with_handler(me, |s: &mut Sudoku, _| s.me = Some(me));
        // half_close: a client may send its last request together with its
        // end-of-stream (`printf ... | nc`) and still expects the answer.
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let listener = ctx.listen_with(cli::listen_addr(args.host, args.port), &opts, me)?;
        cli::announce(ctx.local_addr(listener)?);
        match threads {
            0 => log::info!("solving on the event loop"),
            n => log::info!("solving on {n} compute threads"),
        }
        dispatch.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sudoku: {e}");
            ExitCode::FAILURE
        }
    }
}
