//! # procmon - one process's state over HTTP, from /proc
//!
//! muduo's procmon: point it at a process (`--pid`, default itself) and
//! open the page. Every `--interval` seconds a repeating netlib timer reads
//! the process's `/proc` files (CPU time, memory, threads, open files, I/O)
//! and keeps the CPU usage of the last 600 samples: ten minutes at one a
//! second. The server answers from that cached sample:
//!
//! - `/` - an HTML overview that refreshes itself, with the chart;
//! - `/cpu.svg` - the CPU chart, SVG drawn by the server with `plotters`;
//! - `/metrics` - Prometheus text (`process_cpu_seconds_total`,
//!   `process_resident_memory_bytes`, `process_threads`,
//!   `process_open_fds`, ...), ready to be scraped.
//!
//! Unknown paths get 404; malformed or oversized requests 400. The HTTP
//! side ([`examples::http`]) keeps connections alive, answers pipelined
//! requests in order, and closes slow or idle ones after `--timeout`.
//!
//! ```text
//! procmon [--pid PID] [--host 127.0.0.1] [--port 2013] [--interval 1] [--timeout 10] [--max-conns 1024]
//!         [--processes N]
//! ```
//!
//! With `--processes N` the server runs as N worker processes under a
//! [`prefork`] master; without `--pid` each worker watches the master.
//!
//! Then `curl http://127.0.0.1:2013/metrics`, or open the address in a
//! browser. Watching another user's process needs the rights to read its
//! `/proc/PID/fd` and `/proc/PID/io`; without them those lines are left out.

use clap::{CommandFactory, Parser};
use examples::cli;
use examples::http::{HttpConfig, HttpServer};
use examples::procmon::Monitor;
use netlib::{EventDispatch, ListenOptions};
use std::net::IpAddr;
use std::process::ExitCode;
use std::time::Duration;

/// One process's /proc state over HTTP: an HTML page, a CPU chart, /metrics.
#[derive(Parser)]
#[command(name = "procmon")]
struct Args {
    /// The process to watch [default: procmon itself]
    #[arg(long)]
    pid: Option<u32>,
    /// Address to listen on
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on, 0 for any free port
    #[arg(long, default_value_t = 2013)]
    port: u16,
    /// Seconds between samples (at least 0.01)
    #[arg(long, default_value = "1", value_parser = cli::seconds)]
    interval: Duration,
    /// Close HTTP connections idle or slow for this many seconds
    #[arg(long, default_value = "10", value_parser = cli::seconds)]
    timeout: Duration,
    /// Most HTTP connections served at once
    #[arg(long, default_value_t = 1024, value_parser = cli::positive::<usize>)]
    max_conns: usize,
    /// Worker processes (`--processes N`); without `--pid` they watch their master
    #[command(flatten)]
    prefork: prefork::Args,
}

fn usage_error(message: &str) -> ! {
    Args::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn main() -> ExitCode {
    let args = Args::parse();
    let pid = args.pid.unwrap_or_else(std::process::id);
    let interval = args.interval;
    if interval < Duration::from_millis(10) {
        usage_error("--interval must be at least 0.01 s");
    }
    let config = HttpConfig {
        timeout: args.timeout,
        max_conns: args.max_conns,
        ..HttpConfig::default()
    };
    if config.timeout.is_zero() {
        usage_error("--timeout must be positive");
    }
    cli::init_logging();
    let addr = cli::listen_addr(args.host, args.port);
    if let Some(prefork) = args.prefork.config(1) {
        let watched = args.pid;
        let served = prefork::serve(
            prefork,
            &[addr],
            &ListenOptions::default(),
            |addrs| cli::announce(addrs[0]),
            |_| {
                // In a worker the parent is the master.
                let pid = watched.unwrap_or_else(std::os::unix::process::parent_id);
                Monitor::new(pid).map_err(|e| format!("cannot read /proc/{pid}: {e}"))?;
                Ok(move |ctx: &mut netlib::Context, _| {
                    let monitor = Monitor::new(pid)?.with_interval(interval);
                    let server = HttpServer::register(ctx, monitor, config);
                    ctx.add_handler_timer(server, interval, Some(interval))?;
                    Ok(server)
                })
            },
        );
        return match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("procmon: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let monitor = Monitor::new(pid)
            .map_err(|e| format!("cannot read /proc/{pid}: {e}"))?
            .with_interval(interval);
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let server = HttpServer::register(ctx, monitor, config);
        let listener = ctx.listen_with(addr, &ListenOptions::default(), server)?;
        // The sampling timer; HttpServer hands it to the Monitor.
        ctx.add_handler_timer(server, interval, Some(interval))?;
        let addr = ctx.local_addr(listener)?;
        cli::announce(addr);
        log::info!("procmon: watching pid {pid} every {interval:?}; http://{addr}/");
        dispatch.run()?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("procmon: {e}");
            ExitCode::FAILURE
        }
    }
}
