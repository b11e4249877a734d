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

use clap::Parser;
use examples::cli;
use examples::relay::{self, Mode};
use netlib::{EventDispatch, ListenOptions};
use std::net::IpAddr;
use std::process::ExitCode;

/// A SOCKS4/SOCKS4a proxy with backpressure and half-close.
#[derive(Parser)]
#[command(name = "socks4a")]
struct Args {
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 1080)]
    port: u16,
    /// Stop reading a side while the other side has this many bytes queued
    #[arg(long, default_value_t = 1 << 20, value_parser = cli::positive::<usize>)]
    high_water: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging();
    let high_water = args.high_water;
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let me = relay::register(ctx, Mode::Socks, high_water);
        let opts = ListenOptions {
            half_close: true,
            ..ListenOptions::default()
        };
        let listener = ctx.listen_with(cli::listen_addr(args.host, args.port), &opts, me)?;
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
