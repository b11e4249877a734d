//! # roundtrip - round-trip time and clock offset between two hosts
//!
//! muduo's roundtrip example. The client sends a 16-byte frame holding its
//! wall-clock time every `--interval-ms`; the server writes its own time into
//! the second half and sends the frame straight back; from each reply the
//! client prints the round-trip time and the offset of the server's clock
//! from its own (the arithmetic is in [`examples::roundtrip`]). Run both on
//! one host and the offset stays within the round trip of zero; across
//! hosts it shows how far apart their clocks are.
//!
//! Both sides are [`imconn::Server`]s with [`FrameCodec`], which cuts the
//! stream into 16-byte frames. The server answers every complete frame it
//! reads, whatever it holds, and the replies to one read go out in one
//! write; a peer that sends faster than it reads stops being read (as in
//! `echo`), so it cannot make the server buffer without bound. The client
//! opens its one connection with `Server::connect`: a repeating timer of
//! the connection sends, `on_frame` checks each reply against the frame it
//! answers, and a one-shot loop timer bounds the whole run.
//!
//! ```text
//! roundtrip server [--host 127.0.0.1] [--port 2012]
//! roundtrip client --connect 127.0.0.1:2012 [--count 10] [--interval-ms 200] [--timeout S]
//! ```
//!
//! The client prints one `sample N: rtt R us, offset O us` line per reply,
//! then a summary, and exits with status 1 if the server misbehaves or the
//! run does not finish within `--timeout` (default: the sending time plus
//! 10 s).

use clap::{Parser, Subcommand};
use examples::cli;
use examples::roundtrip::{wall_clock_us, Frame, FrameCodec, Sample, Summary, FRAME_LEN};
use imconn::{Accepted, ConnConfig, ConnCtx, Connection, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, ListenOptions, TimerId};
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Round-trip time and clock offset between two hosts (muduo's roundtrip).
#[derive(Parser)]
#[command(name = "roundtrip")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Stamp every 16-byte frame with this host's time and send it back
    Server {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port to listen on, 0 for any free port
        #[arg(long, default_value_t = 2012)]
        port: u16,
    },
    /// Send time frames and print round trip and offset per reply
    Client {
        /// The roundtrip server
        #[arg(long, value_name = "ADDR", value_parser = cli::socket_addr)]
        connect: SocketAddr,
        /// Frames to send
        #[arg(long, default_value_t = 10, value_parser = cli::positive::<u32>)]
        count: u32,
        /// Milliseconds between frames
        #[arg(long, default_value_t = 200, value_parser = cli::positive::<u64>)]
        interval_ms: u64,
        /// Give up after this many seconds [default: sending time + 10]
        #[arg(long, value_parser = cli::seconds)]
        timeout: Option<Duration>,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let result = match args.role {
        Role::Server { host, port } => server(cli::listen_addr(host, port)),
        Role::Client {
            connect,
            count,
            interval_ms,
            timeout,
        } => {
            let interval = Duration::from_millis(interval_ms);
            let sending = interval.saturating_mul(count);
            let timeout = timeout.unwrap_or(sending + Duration::from_secs(10));
            client(connect, count, interval, timeout)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("roundtrip: {e}");
            ExitCode::FAILURE
        }
    }
}

// ----- server ---------------------------------------------------------------

/// Stamps and returns every frame of its connection.
struct Stamper;

impl Connection for Stamper {
    type Codec = FrameCodec;
    type Shared = ();

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: &[u8; FRAME_LEN]) {
        let reply = Frame {
            server_us: wall_clock_us(),
            ..Frame::from_bytes(frame)
        };
        // The replies to one read go out in one write.
        if cx.send(reply).is_ok() && cx.io().queued() > 0 {
            // The peer sends faster than it reads: stop reading it until
            // its replies drain (on_write_complete), so what it sent waits
            // in the kernel, not in this process.
            cx.pause_read();
        }
    }

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        log::info!(
            "roundtrip: connection from {}",
            cli::addr_or_unknown(cx.peer())
        );
    }

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.resume_read();
    }
}

fn server(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let handler = Server::<Stamper>::register(ctx, (), |_, _: &Accepted| {
        Some((Stamper, ConnConfig::default()))
    });
    let listener = ctx.listen_with(addr, &ListenOptions::default(), handler)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

// ----- client ---------------------------------------------------------------

/// The client's connection: sends a frame per tick (a repeating timer of
/// the connection) and turns each reply into a [`Sample`].
struct Pinger {
    /// The repeating send timer.
    ticker: Option<TimerId>,
}

/// The run: settings, frames in flight and the result.
struct Run {
    count: u32,
    sent: u32,
    interval: Duration,
    /// Frames sent and not answered yet, oldest first: their wall-clock
    /// stamp (which the reply must carry back) and the monotonic send time.
    in_flight: VecDeque<(i64, Instant)>,
    summary: Summary,
    done: bool,
    error: Option<String>,
}

impl Pinger {
    fn send_next(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let run = &mut *cx.shared;
        if run.sent == run.count {
            return;
        }
        let now_us = wall_clock_us();
        run.in_flight.push_back((now_us, Instant::now()));
        let frame = Frame {
            client_us: now_us,
            server_us: 0,
        };
        if let Err(e) = cx.send(frame) {
            return fail(cx, format!("send failed: {e}"));
        }
        cx.shared.sent += 1;
        if cx.shared.sent == cx.shared.count {
            if let Some(t) = self.ticker.take() {
                cx.ctx.cancel_timer(t);
            }
        }
    }
}

impl Connection for Pinger {
    type Codec = FrameCodec;
    type Shared = Run;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.send_next(cx);
        if cx.shared.sent < cx.shared.count {
            let interval = cx.shared.interval;
            self.ticker = cx.add_timer(interval, Some(interval));
        }
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, _id: TimerId) {
        self.send_next(cx);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, bytes: &[u8; FRAME_LEN]) {
        let run = &mut *cx.shared;
        if run.done || run.error.is_some() {
            return;
        }
        let now_us = wall_clock_us();
        let reply = Frame::from_bytes(bytes);
        let Some((sent_us, sent_at)) = run.in_flight.pop_front() else {
            return fail(cx, "a reply to no frame sent".into());
        };
        if reply.client_us != sent_us {
            let why = format!("reply carries {} us, sent {sent_us} us", reply.client_us);
            return fail(cx, why);
        }
        let rtt_us = i64::try_from(sent_at.elapsed().as_micros()).unwrap_or(i64::MAX);
        let Some(sample) = Sample::new(reply, now_us, rtt_us) else {
            return fail(cx, format!("nonsense server time {}", reply.server_us));
        };
        run.summary.add(sample);
        println!(
            "sample {}: rtt {} us, offset {} us",
            run.summary.count, sample.rtt_us, sample.offset_us
        );
        if run.summary.count == u64::from(run.count) {
            run.finish(cx.ctx);
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if !cx.shared.done {
            fail(cx, format!("connection closed early: {reason}"));
        }
    }
}

fn fail(cx: &mut ConnCtx<'_, Pinger>, why: String) {
    cx.shared.fail(cx.ctx, why);
}

impl Run {
    fn finish(&mut self, ctx: &mut Context) {
        let s = &self.summary;
        println!(
            "roundtrip: {} samples, rtt min {} avg {} max {} us, offset min {} avg {} max {} us",
            s.count,
            s.rtt_min_us,
            s.rtt_avg_us(),
            s.rtt_max_us,
            s.offset_min_us,
            s.offset_avg_us(),
            s.offset_max_us
        );
        self.done = true;
        ctx.stop();
    }

    fn fail(&mut self, ctx: &mut Context, why: String) {
        self.error.get_or_insert(why);
        ctx.stop();
    }
}

fn client(
    addr: SocketAddr,
    count: u32,
    interval: Duration,
    timeout: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let run = Run {
        count,
        sent: 0,
        interval,
        in_flight: VecDeque::new(),
        summary: Summary::default(),
        done: false,
        error: None,
    };
    let r = Server::<Pinger>::register(ctx, run, |_, _: &Accepted| None);
    ctx.add_timer(timeout, move |ctx, _| {
        ctx.with_handler(r, |s: &mut Server<Pinger>, ctx| {
            let why = format!(
                "timed out: {} of {} replies",
                s.shared.summary.count, s.shared.count
            );
            s.shared.fail(ctx, why);
        });
    });
    let opts = ConnectOptions {
        timeout: Some(Duration::from_secs(10).min(timeout)),
        ..ConnectOptions::default()
    };
    let pinger = Pinger { ticker: None };
    ctx.with_handler(r, |s: &mut Server<Pinger>, ctx| {
        s.connect(ctx, addr, &opts, pinger, ConnConfig::default())
    })
    .ok_or("client state lost")??;
    dispatch.run()?;
    match dispatch
        .context()
        .with_handler(r, |s: &mut Server<Pinger>, _| s.shared.error.take())
    {
        Some(None) => Ok(()),
        Some(Some(e)) => Err(e.into()),
        None => Err("client state lost".into()),
    }
}
