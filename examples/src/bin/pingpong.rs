//! # pingpong - muduo's throughput benchmark
//!
//! The client opens `--sessions` connections and sends one `--block` of bytes
//! on each; from then on both sides send back whatever they receive, so every
//! connection keeps one block in flight. After `--seconds` the client stops
//! and prints the bytes it read per second. The server is the plain
//! [`EchoServer`].
//!
//! Both sides are kept lean because this is what gets compared with other
//! libraries (tokio): TCP_NODELAY, one 64 KiB read buffer per loop reused for
//! every connection, bytes written straight through to the kernel, and no
//! allocation per event.
//!
//! ```text
//! pingpong server [--host 127.0.0.1] [--port 2008]
//! pingpong client --connect 127.0.0.1:2008 [--sessions 100] [--block 16384] [--seconds 10]
//! ```

use clap::{Parser, Subcommand};
use examples::cli;
use examples::conns::ConnTable;
use examples::echo::{echo_limits, echo_readable, echo_writable, EchoServer, READ_CHUNK};
use imconn::BufferedConn;
use netlib::{
    CloseReason, ConnectOptions, Context, Event, EventDispatch, Handle, Handler, ListenOptions,
    TimerId,
};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// muduo's pingpong throughput benchmark.
#[derive(Parser)]
#[command(name = "pingpong")]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    /// Echo everything back
    Server {
        /// Address to listen on
        #[arg(long, default_value = "127.0.0.1")]
        host: IpAddr,
        /// Port to listen on, 0 for any free port
        #[arg(long, default_value_t = 2008)]
        port: u16,
    },
    /// Keep one block in flight per session and print MiB/s
    Client {
        /// The pingpong server
        #[arg(long, value_name = "ADDR", value_parser = cli::socket_addr)]
        connect: SocketAddr,
        /// Concurrent connections
        #[arg(long, default_value_t = 100, value_parser = cli::positive::<usize>)]
        sessions: usize,
        /// Bytes in flight per connection
        #[arg(long, default_value_t = 16384, value_parser = cli::positive::<usize>)]
        block: usize,
        /// How long to run, in seconds
        #[arg(long, default_value = "10", value_parser = cli::seconds)]
        seconds: Duration,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let result = match args.role {
        Role::Server { host, port } => server(cli::listen_addr(host, port)),
        Role::Client {
            connect,
            sessions,
            block,
            seconds,
        } => client(connect, sessions, block, seconds),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}

fn server(addr: SocketAddr) -> Result<(), Box<dyn std::error::Error>> {
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    let listener = ctx.listen(addr, &opts, EchoServer::new())?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

/// Every client session, served by one handler.
struct Client {
    conns: ConnTable<BufferedConn>,
    buf: Box<[u8]>,
    block: Vec<u8>,
    sessions: usize,
    connected: usize,
    duration: Duration,
    started: Option<Instant>,
    bytes_read: u64,
    error: Option<String>,
}

impl Handler for Client {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Confirm => {
                let mut conn = BufferedConn::new(ctx, h, echo_limits());
                if conn.send(ctx, &self.block).is_err() {
                    return;
                }
                self.conns.insert(h, conn);
                self.connected += 1;
                if self.connected == self.sessions {
                    log::info!("all {} sessions connected", self.sessions);
                    // Measure from here, so connection setup is not counted.
                    self.started = Some(Instant::now());
                    if let Ok(r) = ctx.handler_of(h) {
                        let _ = ctx.add_handler_timer(r, self.duration, None);
                    }
                }
            }
            Event::Read => {
                if let Some(conn) = self.conns.get_mut(h) {
                    self.bytes_read += echo_readable(ctx, conn, &mut self.buf);
                }
            }
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    echo_writable(ctx, conn);
                }
            }
            Event::Close(reason) => {
                self.conns.remove(h);
                if reason != CloseReason::Shutdown {
                    self.error
                        .get_or_insert_with(|| format!("a session closed: {reason}"));
                    ctx.stop();
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, _id: TimerId) {
        let secs = self
            .started
            .map_or(self.duration, |t| t.elapsed())
            .as_secs_f64();
        let mib = self.bytes_read as f64 / (1024.0 * 1024.0);
        println!(
            "pingpong: {} sessions, {} byte blocks, {:.2} s: {} bytes read, {:.1} MiB/s",
            self.sessions,
            self.block.len(),
            secs,
            self.bytes_read,
            mib / secs
        );
        ctx.stop();
    }
}

fn client(
    addr: SocketAddr,
    sessions: usize,
    block: usize,
    duration: Duration,
) -> Result<(), Box<dyn std::error::Error>> {
    if sessions == 0 || block == 0 {
        return Err("--sessions and --block must be positive".into());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let r = ctx.add_handler(Client {
        conns: ConnTable::new(),
        buf: vec![0; READ_CHUNK].into_boxed_slice(),
        block: (0..block).map(|i| (i % 128) as u8).collect(),
        sessions,
        connected: 0,
        duration,
        started: None,
        bytes_read: 0,
        error: None,
    });
    let opts = ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    for _ in 0..sessions {
        ctx.connect_with(addr, &opts, r)?;
    }
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
