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
//!   connections and sends it (`Server::send_to`). Replies may come back out
//!   of order - hence the ids.
//!
//! The connections are an [`imconn::Server`] with a line codec
//! ([`imconn::LineCodec`], wrapped so that a line too long is answered
//! before the connection closes); replies to the requests of one read go
//! out in one write.
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
use examples::sudoku::{answer, parse_line, write_reply, MAX_LINE};
use imconn::{
    Accepted, Codec, ConnConfig, ConnCtx, Connection, DecodeError, EncodeError, Encoder, Limits,
    LineCodec, Server,
};
use netlib::{CloseReason, Context, EventDispatch, Handle, ListenOptions, Poster};
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

/// Lines, as [`LineCodec`] cuts them (at most [`MAX_LINE`] bytes and the
/// line end); a line too long is a frame too, `Err`, so that it can be
/// answered with `Bad Request!` before the connection is closed.
#[derive(Debug, Clone, Copy, Default)]
struct Lines(LineCodec);

impl Codec for Lines {
    type Frame<'a> = Result<&'a [u8], DecodeError>;

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(Self::Frame<'a>, usize)>, DecodeError> {
        Ok(match self.0.decode(src, max_frame) {
            Ok(Some((line, used))) => Some((Ok(line), used)),
            Ok(None) => None,
            Err(too_long) => Some((Err(too_long), src.len())),
        })
    }
}

impl Encoder<&[u8]> for Lines {
    fn encode(&mut self, line: &[u8], dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        self.0.encode(line, dst)
    }
}

struct Conn {
    /// Puzzles of this connection on the pool.
    in_flight: usize,
    /// The client finished sending (half-close: we may still answer).
    eof: bool,
    /// Nothing more to read or answer; closed once the output is sent.
    closing: bool,
}

impl Conn {
    /// After the client's end-of-stream, close once every answer is out
    /// (now, or on write-complete). Never called while a read is dispatched,
    /// so `queued` is all there is to send.
    fn finish_if_done(&mut self, cx: &mut ConnCtx<'_, Self>) {
        if self.eof && self.in_flight == 0 {
            self.closing = true;
            if cx.queued() == 0 {
                cx.close();
            }
        }
    }

    fn bad_request(&mut self, cx: &mut ConnCtx<'_, Self>, why: &str) {
        log::info!(
            "bad request from {}: {why}",
            cli::addr_or_unknown(cx.peer())
        );
        self.closing = true;
        let _ = cx.send(&b"Bad Request!"[..]);
        // Half-closes once the answer is out; the client's end-of-stream
        // (on_read_closed) then closes.
        cx.close_after_flush();
    }
}

/// The server's state, shared by its connections.
struct Sudoku {
    pool: Option<Pool>,
    poster: Poster,
    /// Puzzles handed to the pool and not answered yet.
    pending: usize,
    max_pending: usize,
    max_output: usize,
    reply: Vec<u8>,
    requests: u64,
    shed: u64,
}

impl Connection for Conn {
    type Codec = Lines;
    type Shared = Sudoku;

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, line: Result<&[u8], DecodeError>) {
        if self.closing {
            return;
        }
        let request = match line
            .map_err(|e| e.to_string())
            .and_then(|line| parse_line(line).map_err(|e| format!("{e:?}")))
        {
            Ok(r) => r,
            Err(why) => return self.bad_request(cx, &why),
        };
        let (queued, me, h) = (cx.queued(), cx.server_ref(), cx.handle());
        let s = &mut *cx.shared;
        s.requests += 1;
        s.reply.clear();
        let busy = queued > s.max_output || (s.pool.is_some() && s.pending >= s.max_pending);
        if busy {
            s.shed += 1;
            write_reply(&mut s.reply, request.id, b"ServerTooBusy");
        } else if let Some(pool) = &s.pool {
            let id = request.id.map(<[u8]>::to_vec);
            let cells = request.cells;
            let poster = s.poster.clone();
            let job: Job = Box::new(move || {
                let mut line = Vec::with_capacity(100);
                write_reply(&mut line, id.as_deref(), &answer(&cells));
                // Back to the loop, which owns the connection.
                let _ = poster.post(move |ctx| {
                    ctx.with_handler(me, |s: &mut Server<Conn>, ctx| answered(s, ctx, h, &line));
                });
            });
            if pool.jobs.send(job).is_ok() {
                s.pending += 1;
                self.in_flight += 1;
            }
        } else {
            write_reply(&mut s.reply, request.id, &answer(&request.cells));
        }
        if !cx.shared.reply.is_empty() {
            let reply = std::mem::take(&mut cx.shared.reply);
            if let Err(e) = cx.send(reply.as_slice()) {
                log::warn!("{}: {e}", cli::addr_or_unknown(cx.peer()));
            }
            cx.shared.reply = reply;
        }
    }

    /// Answer what was asked before the end-of-stream, then close.
    fn on_read_closed(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.eof = true;
        self.finish_if_done(cx);
    }

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.finish_if_done(cx);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, _reason: CloseReason) {
        let s = &cx.shared;
        log::debug!(
            "{} requests so far, {} shed, {} pending",
            s.requests,
            s.shed,
            s.pending
        );
    }
}

/// An answer from the pool, on the loop.
fn answered(server: &mut Server<Conn>, ctx: &mut Context, h: Handle, line: &[u8]) {
    server.shared.pending -= 1;
    // The connection may have gone meanwhile; the handle then is stale.
    let Some(conn) = server.conns_mut().get_mut(h) else {
        return;
    };
    conn.in_flight -= 1;
    if !conn.closing {
        if let Err(e) = server.send_to(ctx, h, line) {
            log::warn!("{h}: {e}");
        }
    }
    server.with_conn(ctx, h, |conn, cx| conn.finish_if_done(cx));
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
        let sudoku = Sudoku {
            pool,
            poster,
            pending: 0,
            max_pending: args.max_pending,
            max_output: args.max_output,
            reply: Vec::new(),
            requests: 0,
            shed: 0,
        };
        let config = ConnConfig {
            limits: Limits {
                high_water: sudoku.max_output,
                // A client that keeps sending without reading is closed.
                hard_cap: sudoku.max_output.saturating_mul(4),
                read_chunk: 64 * 1024,
            },
            // A line and its \r\n.
            max_frame: MAX_LINE + 2,
            ..ConnConfig::default()
        };
        let me = Server::<Conn>::register(ctx, sudoku, move |_, _: &Accepted| {
            let conn = Conn {
                in_flight: 0,
                eof: false,
                closing: false,
            };
            Some((conn, config))
        });
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
