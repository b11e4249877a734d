//! # echo - the simplest server, and a client that checks it
//!
//! The server sends back every byte it receives (RFC 862 over TCP). It shows
//! the basic shape of a netlib server: one handler object serving all
//! accepted sockets, an [`imconn::BufferedConn`] per connection for output the
//! kernel did not take, and backpressure - a client that sends without
//! reading stops being read, instead of making the server buffer its echo.
//!
//! The client opens one connection, sends `--count` messages of `--size`
//! bytes one at a time, checks each echo and prints the average round trip.
//!
//! ```text
//! echo [--host 127.0.0.1] [--port 2007]                    # server
//! echo --connect 127.0.0.1:2007 [--count 1000] [--size 64] # client
//! ```
//!
//! Try it with a real client: `nc 127.0.0.1 2007`.

use examples::cli::{self, Flags};
use examples::echo;
use imconn::{BufferedConn, Limits};
use netlib::{ConnectOptions, Context, Event, EventDispatch, Handle, Handler, ListenOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "usage: echo [--host H] [--port P]
       echo --connect ADDR [--count N] [--size BYTES]";

fn main() -> ExitCode {
    cli::init_logging();
    let flags = Flags::from_env(USAGE);
    let result = match flags.value("connect") {
        Some(addr) => {
            let addr: SocketAddr = addr
                .parse()
                .unwrap_or_else(|_| flags.fail("bad --connect address"));
            client(addr, flags.get("count", 1000), flags.get("size", 64))
        }
        None => server(flags.listen_addr(2007)),
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

/// Sends one message, waits for its echo, repeats.
struct Client {
    conn: Option<BufferedConn>,
    message: Vec<u8>,
    remaining: u32,
    sent_at: Instant,
    total_rtt_us: u128,
    done: u32,
    error: Option<String>,
}

impl Client {
    fn send_next(&mut self, ctx: &mut Context) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        // Vary the content so a server that echoed stale bytes is caught.
        let tag = self.done.to_be_bytes();
        for (i, b) in self.message.iter_mut().enumerate() {
            *b = tag[i % 4] ^ (i as u8);
        }
        self.sent_at = Instant::now();
        if conn.send(ctx, &self.message).is_err() {
            self.fail(ctx, "send failed".into());
        }
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
            }
            Event::Read => {
                let size = self.message.len();
                let Some(conn) = self.conn.as_mut() else {
                    return;
                };
                conn.fill(ctx);
                if conn.in_buf.len() < size {
                    return; // the echo is not complete yet
                }
                let same = conn.in_buf.as_slice()[..size] == self.message[..];
                conn.in_buf.consume(size);
                if !same || !conn.in_buf.is_empty() {
                    return self.fail(ctx, "echo differs from what was sent".into());
                }
                self.total_rtt_us += self.sent_at.elapsed().as_micros();
                self.done += 1;
                self.remaining -= 1;
                if self.remaining == 0 {
                    return ctx.stop();
                }
                self.send_next(ctx);
            }
            Event::Write => {
                if let Some(conn) = self.conn.as_mut() {
                    let _ = conn.flush(ctx);
                }
            }
            Event::Close(reason) if self.remaining > 0 => {
                self.fail(ctx, format!("connection closed early: {reason}"));
            }
            _ => {}
        }
    }
}

fn client(addr: SocketAddr, count: u32, size: usize) -> Result<(), Box<dyn std::error::Error>> {
    if count == 0 || size == 0 {
        return Err("--count and --size must be positive".into());
    }
    let mut dispatch = EventDispatch::new()?;
    let client = Client {
        conn: None,
        message: vec![0; size],
        remaining: count,
        sent_at: Instant::now(),
        total_rtt_us: 0,
        done: 0,
        error: None,
    };
    let r = dispatch.context().add_handler(client);
    dispatch
        .context()
        .connect_with(addr, &ConnectOptions::default(), r)?;
    dispatch.run()?;
    // The loop has stopped; the registered handler is still reachable.
    let report = dispatch.context().with_handler(r, |c: &mut Client, _| {
        (c.error.take(), c.done, c.total_rtt_us)
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
