//! # echo - the simplest server, and a client that checks it
//!
//! The server sends back every byte it receives (RFC 862 over TCP). It shows
//! the basic shape of a server on netlib: an [`imconn::Server`] - one
//! handler serving all accepted sockets, with their buffers - and a
//! [`Connection`] with the raw codec that only says what to do with the
//! bytes that arrived ([`examples::echo`]), and backpressure: a client that
//! sends without reading stops being read, instead of making the server
//! buffer its echo.
//!
//! The client is a `Server` too, with one connection opened by
//! `Server::connect` and a codec whose frames are exactly one message: it
//! sends `--count` messages of `--size` bytes one at a time, checks each
//! echo and prints the average round trip.
//!
//! ```text
//! echo [--host 127.0.0.1] [--port 2007]                    # server
//! echo --connect 127.0.0.1:2007 [--count 1000] [--size 64] # client
//! ```
//!
//! Try it with a real client: `nc 127.0.0.1 2007`.

use clap::Parser;
use examples::cli;
use examples::echo;
use imconn::{Accepted, Codec, ConnConfig, ConnCtx, Connection, DecodeError, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, ListenOptions};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Instant;

/// Echo server (RFC 862 over TCP), or with --connect a client that checks
/// every round trip.
#[derive(Parser)]
#[command(name = "echo")]
struct Args {
    /// Address to listen on (server)
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port (server)
    #[arg(long, default_value_t = 2007)]
    port: u16,
    /// Run as a client of the echo server at ADDR
    #[arg(long, value_name = "ADDR", value_parser = cli::socket_addr)]
    connect: Option<SocketAddr>,
    /// Messages to send, one at a time (client)
    #[arg(long, default_value_t = 1000, requires = "connect", value_parser = cli::positive::<u32>)]
    count: u32,
    /// Bytes per message (client)
    #[arg(long, default_value_t = 64, requires = "connect", value_parser = cli::positive::<usize>)]
    size: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let result = match args.connect {
        Some(addr) => client(addr, args.count, args.size),
        None => server(cli::listen_addr(args.host, args.port)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = echo::register(ctx);
    let listener = ctx.listen_with(addr, &ListenOptions::default(), server)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

/// Frames of exactly the message size: an echo is complete when that many
/// bytes are back.
#[derive(Debug, Clone, Copy)]
struct Exactly(usize);

impl Codec for Exactly {
    type Frame<'a> = &'a [u8];

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        _max_frame: usize,
    ) -> Result<Option<(&'a [u8], usize)>, DecodeError> {
        Ok(src.get(..self.0).map(|echo| (echo, self.0)))
    }
}

/// Sends one message, waits for its echo, repeats.
struct Client;

/// The run: the message in flight and the result.
struct Run {
    message: Vec<u8>,
    remaining: u32,
    sent_at: Instant,
    total_rtt_us: u128,
    done: u32,
    error: Option<String>,
}

impl Client {
    fn send_next(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let run = &mut *cx.shared;
        // Vary the content so a server that echoed stale bytes is caught.
        let tag = run.done.to_be_bytes();
        for (i, b) in run.message.iter_mut().enumerate() {
            *b = tag[i % 4] ^ (i as u8);
        }
        run.sent_at = Instant::now();
        let message = std::mem::take(&mut run.message);
        let sent = cx.send_bytes(&message);
        cx.shared.message = message;
        if sent.is_err() {
            cx.shared.fail(cx.ctx, "send failed".into());
        }
    }
}

impl Connection for Client {
    type Codec = Exactly;
    type Shared = Run;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.send_next(cx);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, echo: &[u8]) {
        let run = &mut *cx.shared;
        if run.remaining == 0 || run.error.is_some() {
            return;
        }
        // Bytes the server added would start the next echo: caught there.
        if echo != run.message {
            return run.fail(cx.ctx, "echo differs from what was sent".into());
        }
        run.total_rtt_us += run.sent_at.elapsed().as_micros();
        run.done += 1;
        run.remaining -= 1;
        if run.remaining == 0 {
            return cx.ctx.stop();
        }
        self.send_next(cx);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if cx.shared.remaining > 0 {
            cx.shared
                .fail(cx.ctx, format!("connection closed early: {reason}"));
        }
    }
}

impl Run {
    fn fail(&mut self, ctx: &mut Context, why: String) {
        self.error.get_or_insert(why);
        ctx.stop();
    }
}

fn client(addr: SocketAddr, count: u32, size: usize) -> Result<(), Box<dyn std::error::Error>> {
    if count == 0 || size == 0 {
        return Err("--count and --size must be positive".into());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let run = Run {
        message: vec![0; size],
        remaining: count,
        sent_at: Instant::now(),
        total_rtt_us: 0,
        done: 0,
        error: None,
    };
    let r = Server::<Client>::register_with_codec(ctx, run, Exactly(size), |_, _: &Accepted| None);
    let config = ConnConfig {
        max_frame: size,
        ..ConnConfig::default()
    };
    ctx.with_handler(r, |s: &mut Server<Client>, ctx| {
        s.connect(ctx, addr, &ConnectOptions::default(), Client, config)
    })
    .ok_or("client state lost")??;
    dispatch.run()?;
    // The loop has stopped; the registered handler is still reachable.
    let report = dispatch
        .context()
        .with_handler(r, |s: &mut Server<Client>, _| {
            (s.shared.error.take(), s.shared.done, s.shared.total_rtt_us)
        });
    match report {
        Some((None, done, rtt)) => {
            println!(
                "echo: {done} round trips of {size} bytes, average {} us",
                rtt / u128::from(done.max(1))
            );
            Ok(())
        }
        Some((Some(e), _, _)) => Err(e.into()),
        None => Err("client state lost".into()),
    }
}
