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

use examples::cli::{self, Flags};
use examples::relay::{self, Mode, Relay};
use netlib::{EventDispatch, ListenOptions};
use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;

const USAGE: &str =
    "usage: tcprelay --to HOST:PORT [--host H] [--port P] [--high-water BYTES] [--stats SECONDS]";

fn main() -> ExitCode {
    cli::init_logging();
    let flags = Flags::from_env(USAGE);
    let to: SocketAddr = flags
        .value("to")
        .and_then(|t| t.to_socket_addrs().ok()?.next())
        .unwrap_or_else(|| flags.fail("need --to HOST:PORT"));
    let high_water = flags.get("high-water", 1 << 20);
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let me = relay::register(ctx, Mode::Fixed(to), high_water);
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let listener = ctx.listen_with(flags.listen_addr(2011), &opts, me)?;
        cli::announce(ctx.local_addr(listener)?);
        if flags.has("stats") {
            ctx.add_repeating_timer(flags.seconds("stats", 1.0), move |ctx, _| {
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
