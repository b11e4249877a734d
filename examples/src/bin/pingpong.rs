//! # pingpong - muduo's throughput benchmark
//!
//! The client opens `--sessions` connections and sends one `--block` of bytes
//! on each; from then on both sides send back whatever they receive, so every
//! connection keeps one block in flight. After `--seconds` the client stops
//! and prints the bytes it read per second. The server is the plain
//! [`examples::echo`] server.
//!
//! `--processes N` runs the server as N worker processes under a
//! [`prefork`] master (each with `--threads` loops), all accepting on one
//! shared socket.
//!
//! Both sides are [`imconn::Server`]s with the raw codec - the client opens
//! its sessions with `Server::connect` - and both echo with
//! [`echo_frame`]. They are kept lean because this is what gets compared
//! with other libraries (tokio): TCP_NODELAY, one 64 KiB read buffer per
//! loop reused for every connection, the replies to a read written
//! straight through to the kernel in one system call, and no allocation per
//! event.
//!
//! ```text
//! pingpong server [--host 127.0.0.1] [--port 2008] [--threads 1] [--processes N]
//! pingpong client --connect 127.0.0.1:2008 [--sessions 100] [--block 16384] [--seconds 10]
//! ```

use clap::{Parser, Subcommand};
use examples::cli;
use examples::echo::{self, echo_config, echo_frame};
use imconn::{Accepted, ConnCtx, Connection, RawCodec, Server, ServerGroup};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, ListenOptions};
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
        /// Event loops, one per thread, sharing the port (SO_REUSEPORT)
        #[arg(long, short = 't', default_value_t = 1, value_parser = cli::positive::<usize>)]
        threads: usize,
        /// Worker processes (`--processes N`), each with `--threads` loops
        #[command(flatten)]
        prefork: prefork::Args,
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
        Role::Server {
            host,
            port,
            threads,
            prefork,
        } => match prefork.config(threads) {
            // N processes under a master, each running `threads` loops.
            Some(config) => prefork::serve(
                config,
                &[cli::listen_addr(host, port)],
                &ListenOptions::default(),
                |addrs| cli::announce(addrs[0]),
                |_| Ok(|ctx: &mut Context, _| Ok(echo::register(ctx))),
            )
            .map_err(Into::into),
            None => server(cli::listen_addr(host, port), threads),
        },
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

fn server(addr: SocketAddr, threads: usize) -> Result<(), Box<dyn std::error::Error>> {
    let opts = ListenOptions {
        nodelay: true,
        ..ListenOptions::default()
    };
    if threads > 1 {
        // One loop per thread, each with its own echo server and
        // connections; the kernel spreads connections over the loops.
        let group =
            ServerGroup::start(threads, netlib::Config::default(), addr, &opts, |ctx, _| {
                echo::register(ctx)
            })?;
        if let Some(addr) = group.local_addr() {
            cli::announce(addr);
        }
        group.join()?;
        return Ok(());
    }
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let server = echo::register(ctx);
    let listener = ctx.listen_with(addr, &opts, server)?;
    cli::announce(ctx.local_addr(listener)?);
    dispatch.run()?;
    Ok(())
}

/// One client session: echoes what comes back, like the server.
struct Session;

/// What the sessions share: the run's settings and its result.
struct Run {
    block: Vec<u8>,
    sessions: usize,
    connected: usize,
    duration: Duration,
    started: Option<Instant>,
    bytes_read: u64,
    error: Option<String>,
}

impl Connection for Session {
    type Codec = RawCodec;
    type Shared = Run;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let block = std::mem::take(&mut cx.shared.block);
        let sent = cx.send_bytes(&block);
        cx.shared.block = block;
        if sent.is_err() {
            return;
        }
        let server = cx.server_ref();
        let run = &mut *cx.shared;
        run.connected += 1;
        if run.connected == run.sessions {
            log::info!("all {} sessions connected", run.sessions);
            // Measure from here, so connection setup is not counted.
            run.started = Some(Instant::now());
            cx.ctx.add_timer(run.duration, move |ctx, _| {
                ctx.with_handler(server, |s: &mut Server<Session>, ctx| s.shared.report(ctx));
            });
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        cx.shared.bytes_read += echo_frame(cx, data);
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        if reason != CloseReason::Shutdown {
            cx.shared
                .error
                .get_or_insert_with(|| format!("a session closed: {reason}"));
            cx.ctx.stop();
        }
    }
}

impl Run {
    fn report(&mut self, ctx: &mut Context) {
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
    let run = Run {
        block: (0..block).map(|i| (i % 128) as u8).collect(),
        sessions,
        connected: 0,
        duration,
        started: None,
        bytes_read: 0,
        error: None,
    };
    // Sessions are only opened here: a refused one ends the run (on_close).
    let r = Server::<Session>::register(ctx, run, |_, _: &Accepted| None);
    let opts = ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    };
    ctx.with_handler(r, |s: &mut Server<Session>, ctx| {
        (0..sessions).try_for_each(|_| {
            s.connect(ctx, addr, &opts, Session, echo_config())
                .map(drop)
        })
    })
    .ok_or("client state lost")??;
    dispatch.run()?;
    match dispatch
        .context()
        .with_handler(r, |s: &mut Server<Session>, _| s.shared.error.take())
    {
        Some(None) => Ok(()),
        Some(Some(e)) => Err(e.into()),
        None => Err("client state lost".into()),
    }
}
