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
//! The server answers every complete 16-byte unit it reads, whatever it
//! holds; a peer that sends faster than it reads stops being read (as in
//! `echo`), so it cannot make the server buffer without bound. The client is
//! built on netlib too: a repeating handler timer sends, the Read event
//! checks each reply against the frame it answers, and a one-shot timer
//! bounds the whole run.
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
use examples::conns::ConnTable;
use examples::echo::echo_writable;
use examples::roundtrip::{stamp_frames, wall_clock_us, Frame, Sample, Summary, FRAME_LEN};
use imconn::{BufferedConn, Limits};
use netlib::{
    ConnectOptions, Context, Event, EventDispatch, Handle, Handler, ListenOptions, TimerId,
};
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

/// Stamps and returns every frame of every connection.
struct RoundtripServer {
    conns: ConnTable<BufferedConn>,
    /// The replies to one read, built here and sent with one write.
    out: Vec<u8>,
}

impl RoundtripServer {
    fn on_read(&mut self, ctx: &mut Context, h: Handle) {
        let Some(conn) = self.conns.get_mut(h) else {
            return;
        };
        conn.fill(ctx);
        // One timestamp per read: the frames in it arrived together.
        let now = wall_clock_us();
        self.out.clear();
        let used = stamp_frames(conn.in_buf.as_slice(), now, &mut self.out);
        conn.in_buf.consume(used);
        if self.out.is_empty() {
            return;
        }
        if let Ok(status) = conn.send(ctx, &self.out) {
            if status.queued > 0 {
                // The peer sends faster than it reads: stop reading it until
                // its replies drain (echo_writable resumes), so what it sent
                // waits in the kernel, not in this process.
                let _ = ctx.pause_read(h);
            }
        }
    }
}

impl Handler for RoundtripServer {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                log::info!(
                    "roundtrip: connection from {}",
                    cli::addr_or_unknown(ctx.peer_addr(h).ok())
                );
                self.conns
                    .insert(h, BufferedConn::new(ctx, h, Limits::default()));
            }
            Event::Read => self.on_read(ctx, h),
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    echo_writable(ctx, conn);
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.conns.remove(h) {
                    imconn::buffered::log_close(h, conn.peer(), reason);
                }
            }
            _ => {}
        }
    }
}

fn server(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let handler = RoundtripServer {
        conns: ConnTable::new(),
        out: Vec::new(),
    };
    let listener = ctx.listen(addr, &ListenOptions::default(), handler)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

// ----- client ---------------------------------------------------------------

/// Sends a frame per tick and turns each reply into a [`Sample`].
struct Client {
    conn: Option<BufferedConn>,
    count: u32,
    sent: u32,
    interval: Duration,
    /// Frames sent and not answered yet, oldest first: their wall-clock
    /// stamp (which the reply must carry back) and the monotonic send time.
    in_flight: VecDeque<(i64, Instant)>,
    summary: Summary,
    ticker: Option<TimerId>,
    deadline: Option<TimerId>,
    done: bool,
    error: Option<String>,
}

impl Client {
    fn send_next(&mut self, ctx: &mut Context) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if self.sent == self.count {
            return;
        }
        let now_us = wall_clock_us();
        self.in_flight.push_back((now_us, Instant::now()));
        let frame = Frame {
            client_us: now_us,
            server_us: 0,
        };
        if let Err(e) = conn.send(ctx, &frame.to_bytes()) {
            return self.fail(ctx, format!("send failed: {e}"));
        }
        self.sent += 1;
        if self.sent == self.count {
            if let Some(t) = self.ticker.take() {
                ctx.cancel_timer(t);
            }
        }
    }

    fn on_read(&mut self, ctx: &mut Context) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        conn.fill(ctx);
        while conn.in_buf.len() >= FRAME_LEN {
            let mut bytes = [0u8; FRAME_LEN];
            bytes.copy_from_slice(&conn.in_buf.as_slice()[..FRAME_LEN]);
            conn.in_buf.consume(FRAME_LEN);
            let now_us = wall_clock_us();
            let reply = Frame::from_bytes(&bytes);
            let Some((sent_us, sent_at)) = self.in_flight.pop_front() else {
                return self.fail(ctx, "a reply to no frame sent".into());
            };
            if reply.client_us != sent_us {
                return self.fail(
                    ctx,
                    format!("reply carries {} us, sent {sent_us} us", reply.client_us),
                );
            }
            let rtt_us = i64::try_from(sent_at.elapsed().as_micros()).unwrap_or(i64::MAX);
            let Some(sample) = Sample::new(reply, now_us, rtt_us) else {
                return self.fail(ctx, format!("nonsense server time {}", reply.server_us));
            };
            self.summary.add(sample);
            println!(
                "sample {}: rtt {} us, offset {} us",
                self.summary.count, sample.rtt_us, sample.offset_us
            );
            if self.summary.count == u64::from(self.count) {
                self.finish(ctx);
                return;
            }
        }
    }

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

impl Handler for Client {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Confirm => {
                self.conn = Some(BufferedConn::new(ctx, h, Limits::default()));
                self.send_next(ctx);
                if self.sent < self.count {
                    if let Ok(me) = ctx.handler_of(h) {
                        self.ticker = ctx
                            .add_handler_timer(me, self.interval, Some(self.interval))
                            .ok();
                    }
                }
            }
            Event::Read => self.on_read(ctx),
            Event::Write => {
                if let Some(conn) = self.conn.as_mut() {
                    let _ = conn.flush(ctx);
                }
            }
            Event::Close(reason) if !self.done => {
                self.fail(ctx, format!("connection closed early: {reason}"));
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, id: TimerId) {
        if Some(id) == self.ticker {
            self.send_next(ctx);
        } else if Some(id) == self.deadline {
            let why = format!(
                "timed out: {} of {} replies",
                self.summary.count, self.count
            );
            self.fail(ctx, why);
        }
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
    let r = ctx.add_handler(Client {
        conn: None,
        count,
        sent: 0,
        interval,
        in_flight: VecDeque::new(),
        summary: Summary::default(),
        ticker: None,
        deadline: None,
        done: false,
        error: None,
    });
    let deadline = ctx.add_handler_timer(r, timeout, None)?;
    ctx.with_handler(r, |c: &mut Client, _| c.deadline = Some(deadline));
    let opts = ConnectOptions {
        timeout: Some(Duration::from_secs(10).min(timeout)),
        ..ConnectOptions::default()
    };
    ctx.connect_with(addr, &opts, r)?;
    dispatch.run()?;
    match dispatch
        .context()
        .with_handler(r, |c: &mut Client, _| c.error.take())
    {
        Some(None) => Ok(()),
        Some(Some(e)) => Err(e.into()),
        None => Err("client state lost".into()),
    }
}
