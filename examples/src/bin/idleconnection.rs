//! # idleconnection - an echo server that closes idle connections
//!
//! A connection from which nothing has arrived for `--idle` seconds is
//! closed. Idle connections cost a descriptor and memory each, and a client
//! that vanished without a FIN (crashed host, cut cable) never reads its
//! end-of-stream; a server open to the public needs such a deadline.
//!
//! One timer per connection, reset on every message, would cost a heap
//! operation per message. Instead a [`TimingWheel`] with one bucket per
//! `--tick` turns on one repeating loop timer: receiving data drops the
//! connection into the newest bucket (once per tick), and a connection whose
//! last bucket falls off the wheel is closed. A connection is closed between
//! `idle - tick` and `idle` after its last data.
//!
//! The connections are an [`imconn::Server`] with the raw codec, echoing as
//! [`examples::echo`] does; the wheel is the server's shared state, and the
//! timer turns it through `Context::with_handler`. (imconn's own idle
//! deadline, `Timeouts::idle`, keeps one timer per connection; this example
//! shows the wheel instead.)
//!
//! ```text
//! idleconnection [--host 127.0.0.1] [--port 2009] [--idle 8] [--tick 1]
//! ```
//!
//! `--idle` and `--tick` take fractions of a second, so a test can use 0.5/0.1.

use clap::Parser;
use examples::cli;
use examples::echo::{echo_config, echo_frame};
use examples::wheel::TimingWheel;
use imconn::{Accepted, ConnCtx, Connection, RawCodec, Server};
use netlib::{Context, EventDispatch, Handle, ListenOptions};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

/// An echo server that closes connections idle for --idle seconds.
#[derive(Parser)]
#[command(name = "idleconnection")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 2009)]
    port: u16,
    /// Close a connection after this many seconds without data
    #[arg(long, default_value = "8", value_parser = cli::seconds)]
    idle: Duration,
    /// Resolution of the timing wheel, in seconds
    #[arg(long, default_value = "1", value_parser = cli::seconds)]
    tick: Duration,
}

/// An echoing connection and the wheel tick in which data last arrived.
struct IdleConn {
    stamp: Option<u64>,
}

/// What the connections share: the wheel.
struct Idle {
    wheel: TimingWheel<Handle>,
    expired: Vec<Handle>,
    idle: Duration,
}

impl Connection for IdleConn {
    type Codec = RawCodec;
    type Shared = Idle;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        // A client that connects and never sends is idle too.
        cx.shared.wheel.touch(cx.handle(), &mut self.stamp);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, data: &[u8]) {
        cx.shared.wheel.touch(cx.handle(), &mut self.stamp);
        echo_frame(cx, data);
    }
}

/// One tick of the wheel: closes the connections whose last bucket fell off.
fn turn_wheel(server: &mut Server<IdleConn>, ctx: &mut Context) {
    let idle = &mut server.shared;
    let tick = idle.wheel.advance(&mut idle.expired);
    let mut expired = std::mem::take(&mut idle.expired);
    for h in expired.drain(..) {
        // Closed meanwhile, or touched since: not idle.
        if server.conns().get(h).is_some_and(|c| c.stamp == Some(tick)) {
            let peer = server.conns().io(h).and_then(|io| io.peer());
            log::info!(
                "closing {}: idle for {:?}",
                cli::addr_or_unknown(peer),
                server.shared.idle
            );
            server.close_conn(ctx, h);
        }
    }
    server.shared.expired = expired;
}

fn main() -> ExitCode {
    let args = Args::parse();
    let (idle, tick) = (args.idle, args.tick);
    if tick.is_zero() || idle < tick {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::ValueValidation,
                "need 0 < --tick <= --idle",
            )
            .exit();
    }
    cli::init_logging();
    let slots = (idle.as_secs_f64() / tick.as_secs_f64()).ceil() as usize;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let shared = Idle {
            wheel: TimingWheel::new(slots),
            expired: Vec::new(),
            idle,
        };
        let server = Server::<IdleConn>::register(ctx, shared, |_, _: &Accepted| {
            Some((IdleConn { stamp: None }, echo_config()))
        });
        let listener = ctx.listen_with(
            cli::listen_addr(args.host, args.port),
            &ListenOptions::default(),
            server,
        )?;
        ctx.add_repeating_timer(tick, move |ctx, _| {
            ctx.with_handler(server, turn_wheel);
        });
        cli::announce(ctx.local_addr(listener)?);
        log::info!("closing connections idle for {idle:?} ({slots} buckets of {tick:?})");
        dispatch.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("idleconnection: {e}");
            ExitCode::FAILURE
        }
    }
}
