//! # pingpong - muduo's throughput benchmark
//!
//! The client opens `--sessions` connections and sends one `--block` of bytes
//! on each; from then on both sides send back whatever they receive, so every
//! connection keeps one block in flight. After `--seconds` the client stops
//! and prints the bytes it read per second. The server is the plain
//! [`examples::echo`] server.
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
//! pingpong server [--host 127.0.0.1] [--port 2008]
//! pingpong client --connect 127.0.0.1:2008 [--sessions 100] [--block 16384] [--seconds 10]
//! ```

use examples::cli::{self, Flags};
use examples::echo::{self, echo_config, echo_frame};
use imconn::{Accepted, ConnCtx, Connection, RawCodec, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, ListenOptions};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "usage: pingpong server [--host H] [--port P]
       pingpong client --connect ADDR [--sessions N] [--block BYTES] [--seconds S]";

fn main() -> ExitCode {
    cli::init_logging();
    let flags = Flags::from_env(USAGE);
    let result = match flags.positional().first().map(String::as_str) {
        Some("server") => server(flags.listen_addr(2008)),
        Some("client") => {
            let addr: SocketAddr = flags
                .value("connect")
                .and_then(|a| a.parse().ok())
                .unwrap_or_else(|| flags.fail("client needs --connect ADDR"));
            client(
                addr,
                flags.get("sessions", 100),
                flags.get("block", 16384),
                flags.seconds("seconds", 10.0),
            )
        }
        _ => flags.fail("say `server` or `client`"),
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

    fn on_write_complete(&mut self, cx: &mut ConnCtx<'_, Self>) {
        cx.resume_read();
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
