//! # idleconnection - an echo server that closes idle connections
//!
//! A connection from which nothing has arrived for `--idle` seconds is
//! closed. Idle connections cost a descriptor and memory each, and a client
//! that vanished without a FIN (crashed host, cut cable) never reads its
//! end-of-stream; a server open to the public needs such a deadline.
//!
//! One timer per connection, reset on every message, would cost a heap
//! operation per message. Instead a [`TimingWheel`] with one bucket per
//! `--tick` turns on one repeating timer: receiving data drops the connection
//! into the newest bucket (once per tick), and a connection whose last
//! bucket falls off the wheel is closed. A connection is closed between
//! `idle - tick` and `idle` after its last data.
//!
//! ```text
//! idleconnection [--host 127.0.0.1] [--port 2009] [--idle 8] [--tick 1]
//! ```
//!
//! `--idle` and `--tick` take fractions of a second, so a test can use 0.5/0.1.

use clap::Parser;
use examples::cli;
use examples::conns::ConnTable;
use examples::echo::{echo_limits, echo_readable, echo_writable, READ_CHUNK};
use examples::wheel::TimingWheel;
use imconn::BufferedConn;
use netlib::{Context, Event, EventDispatch, Handle, Handler, ListenOptions, TimerId};
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

struct Conn {
    io: BufferedConn,
    /// The wheel tick in which data last arrived.
    stamp: Option<u64>,
}

struct IdleEcho {
    conns: ConnTable<Conn>,
    wheel: TimingWheel<Handle>,
    buf: Box<[u8]>,
    expired: Vec<Handle>,
    idle: Duration,
}

impl Handler for IdleEcho {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        match event {
            Event::Connect { .. } => {
                let mut conn = Conn {
                    io: BufferedConn::new(ctx, h, echo_limits()),
                    stamp: None,
                };
                // A client that connects and never sends is idle too.
                self.wheel.touch(h, &mut conn.stamp);
                self.conns.insert(h, conn);
            }
            Event::Read => {
                if let Some(conn) = self.conns.get_mut(h) {
                    if echo_readable(ctx, &mut conn.io, &mut self.buf) > 0 {
                        self.wheel.touch(h, &mut conn.stamp);
                    }
                }
            }
            Event::Write => {
                if let Some(conn) = self.conns.get_mut(h) {
                    echo_writable(ctx, &mut conn.io);
                }
            }
            Event::Close(reason) => {
                if let Some(conn) = self.conns.remove(h) {
                    imconn::buffered::log_close(h, conn.io.peer(), reason);
                }
            }
            _ => {}
        }
    }

    /// One tick of the wheel.
    fn on_timer(&mut self, ctx: &mut Context, _id: TimerId) {
        let tick = self.wheel.advance(&mut self.expired);
        for h in self.expired.drain(..) {
            let Some(conn) = self.conns.get_mut(h) else {
                continue; // closed meanwhile
            };
            if conn.stamp == Some(tick) {
                log::info!(
                    "closing {}: idle for {:?}",
                    cli::addr_or_unknown(conn.io.peer()),
                    self.idle
                );
                conn.io.force_close(ctx);
            }
        }
    }
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
        let server = ctx.add_handler(IdleEcho {
            conns: ConnTable::new(),
            wheel: TimingWheel::new(slots),
            buf: vec![0; READ_CHUNK].into_boxed_slice(),
            expired: Vec::new(),
            idle,
        });
        let listener = ctx.listen_with(
            cli::listen_addr(args.host, args.port),
            &ListenOptions::default(),
            server,
        )?;
        ctx.add_handler_timer(server, tick, Some(tick))?;
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
