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

use clap::Parser;
use examples::cli;
use examples::echo::EchoServer;
use imconn::{BufferedConn, Limits};
use netlib::{ConnectOptions, Context, Event, EventDispatch, Handle, Handler, ListenOptions};
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
    let listener = ctx.listen(addr, &ListenOptions::default(), EchoServer::new())?;
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
