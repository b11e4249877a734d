//! # tcprelay - forward every connection to one backend, with backpressure
//!
//! Each accepted connection gets its own connection to `--to`, and bytes are
//! copied both ways by [`Relay`]: a fast sender behind a slow reader is paused
//! (its socket is not read) while the reader's side holds `--high-water`
//! bytes or more, so the relay's memory does not grow with the mismatch.
//! End-of-stream is carried through in each direction separately
//! (half-close), so request/response protocols that shut down their sending
//! side still get their answer.
//!
//! ```text
//! tcprelay --to 127.0.0.1:8080 [--host 127.0.0.1] [--port 2011] [--high-water 1048576] [--stats SECONDS]
//! ```
//!
//! `--stats` prints the bytes queued in the relay (now, and the most any one
//! connection held) at that interval, on stdout.

use clap::Parser;
use examples::cli;
use examples::relay::{self, Mode, Relay};
use netlib::{EventDispatch, ListenOptions};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

/// Forwards every connection to one backend, with backpressure both ways.
#[derive(Parser)]
#[command(name = "tcprelay")]
struct Args {
    /// The backend every connection is relayed to
    #[arg(long, value_name = "HOST:PORT", value_parser = cli::socket_addr)]
    to: SocketAddr,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 2011)]
    port: u16,
    /// Stop reading a side while the other side has this many bytes queued
    #[arg(long, default_value_t = 1 << 20, value_parser = cli::positive::<usize>)]
    high_water: usize,
    /// Print the bytes queued every SECONDS (1 when given without a value)
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1", value_parser = cli::seconds)]
    stats: Option<Duration>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let (to, high_water) = (args.to, args.high_water);
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let me = relay::register(ctx, Mode::Fixed(to), high_water);
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let listener = ctx.listen_with(cli::listen_addr(args.host, args.port), &opts, me)?;
        cli::announce(ctx.local_addr(listener)?);
        if let Some(every) = args.stats.filter(|d| !d.is_zero()) {
            ctx.add_repeating_timer(every, move |ctx, _| {
                ctx.with_handler(me, |r: &mut Relay, _| {
                    let mut out = std::io::stdout().lock();
                    let (now, peak) = (relay::queued(r), relay::peak_queued(r));
                    let _ = writeln!(out, "stats: queued {now} bytes, peak {peak} bytes");
                });
            });
        }
        log::info!("relaying to {to}, high-water mark {high_water} bytes");
        dispatch.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tcprelay: {e}");
            ExitCode::FAILURE
        }
    }
}
