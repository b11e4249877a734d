//! # procmon - one process's state over HTTP, from /proc
//!
//! muduo's procmon: point it at a process (`--pid`, default itself) and
//! open the page. Every `--interval` seconds a repeating netlib timer reads
//! the process's `/proc` files (CPU time, memory, threads, open files, I/O)
//! and keeps the CPU usage of the last 600 samples: ten minutes at one a
//! second. The server answers from that cached sample:
//!
//! - `/` - an HTML overview that refreshes itself, with the chart;
//! - `/cpu.svg` - the CPU chart, an SVG polyline drawn by the server;
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
//! ```
//!
//! Then `curl http://127.0.0.1:2013/metrics`, or open the address in a
//! browser. Watching another user's process needs the rights to read its
//! `/proc/PID/fd` and `/proc/PID/io`; without them those lines are left out.

use examples::cli::{self, Flags};
use examples::http::{HttpConfig, HttpServer};
use examples::procmon::Monitor;
use netlib::{EventDispatch, ListenOptions};
use std::process::ExitCode;
use std::time::Duration;

const USAGE: &str = "usage: procmon [--pid PID] [--host H] [--port P] [--interval SECONDS] \
[--timeout SECONDS] [--max-conns N]";

fn main() -> ExitCode {
    cli::init_logging();
    let flags = Flags::from_env(USAGE);
    let pid: u32 = flags.get("pid", std::process::id());
    let interval = flags.seconds("interval", 1.0);
    if interval < Duration::from_millis(10) {
        flags.fail("--interval must be at least 0.01 s");
    }
    let config = HttpConfig {
        timeout: flags.seconds("timeout", 10.0),
        max_conns: flags.get("max-conns", 1024),
        ..HttpConfig::default()
    };
    if config.timeout.is_zero() {
        flags.fail("--timeout must be positive");
    }
    let run = || -> Result<(), Box<dyn std::error::Error>> {
        let monitor = Monitor::new(pid)
            .map_err(|e| format!("cannot read /proc/{pid}: {e}"))?
            .with_interval(interval);
        let mut dispatch = EventDispatch::new()?;
        let ctx = dispatch.context();
        let server = HttpServer::register(ctx, monitor, config);
        let listener =
            ctx.listen_with(flags.listen_addr(2013), &ListenOptions::default(), server)?;
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
