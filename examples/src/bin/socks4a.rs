//! # socks4a - a SOCKS4/SOCKS4a proxy
//!
//! A client sends a SOCKS4 CONNECT request naming an IPv4 address, or a
//! SOCKS4a one naming a host; the proxy connects there, answers "granted"
//! (or "rejected"), and from then on relays bytes both ways with the same
//! backpressure and half-close as `tcprelay` (both are
//! [`examples::relay`]: an imconn connection server with the raw codec).
//! Requests longer than 128 bytes are rejected. Host names are resolved on
//! a thread of their own - `getaddrinfo` blocks, and the event loop must
//! not - and the result is posted back to the loop.
//!
//! ```text
//! socks4a [--host 127.0.0.1] [--port 1080] [--high-water 1048576]
//! curl --socks4a 127.0.0.1:1080 http://localhost:8000/
//! ```

use examples::cli::{self, Flags};
use examples::relay::{self, Mode};
use netlib::{EventDispatch, ListenOptions};
use std::process::ExitCode;

const USAGE: &str = "usage: socks4a [--host H] [--port P] [--high-water BYTES]";

fn main() -> ExitCode {
    cli::init_logging();
    let flags = Flags::from_env(USAGE);
    let high_water = flags.get("high-water", 1 << 20);
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let me = relay::register(ctx, Mode::Socks, high_water);
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let listener = ctx.listen_with(flags.listen_addr(1080), &opts, me)?;
        cli::announce(ctx.local_addr(listener)?);
        dispatch.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("socks4a: {e}");
            ExitCode::FAILURE
        }
    }
}
