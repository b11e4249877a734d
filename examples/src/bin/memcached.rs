//! `netlib-memcached`: a memcached-compatible server on netlib.
//!
//! ```text
//! netlib-memcached -p 11211 -l 127.0.0.1 -m 64 -c 1024 -t 2 -v
//! ```
//!
//! The flags are memcached's (see `examples::memcached::cli`); `-t N` runs N
//! event loops, one per thread (netlib's loop group, threads
//! `netlib-loop-<i>`), on one port with `SO_REUSEPORT`. With `-p 0` the server
//! picks a free port; `--port-file=PATH` writes it to PATH once listening,
//! so scripts and tests need not guess a free port. The process runs until
//! killed; a cache has nothing to save. `--processes N` runs N worker
//! processes (each with `-t` loops and its own cache) under a `prefork`
//! master: SIGHUP reloads, SIGTERM drains, crashed workers are restarted.

use std::io::Write;
use std::process::ExitCode;

use examples::memcached::cli::{self, Command, Options};
use examples::memcached::server::{self, Server};
use examples::memcached::VERSION;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => options,
        Ok(Command::Version) => {
            println!(
                "netlib-memcached {} (memcached {VERSION} text protocol)",
                env!("CARGO_PKG_VERSION")
            );
            return ExitCode::SUCCESS;
        }
        // Help (exit 0) or a bad command line naming the flag (exit 2).
        Err(e) => e.exit(),
    };
    init_logging(options.verbosity);
    match serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("netlib-memcached: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `-v` info, `-vv` debug, `-vvv` trace; warnings and errors always.
/// `RUST_LOG`, when set, wins.
fn init_logging(verbosity: u8) {
    let level = match verbosity {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp_millis()
        .init();
}

fn serve(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    if let Some(processes) = options.prefork.config(options.server.threads) {
        let port_file = options.port_file.clone();
        let mut written = Ok(());
        server::serve_processes(options.server, processes, |addrs| {
            if let Some(path) = &port_file {
                written = write_port_file(path, addrs[0].port());
            }
        })?;
        return Ok(written?);
    }
    let server = Server::start(options.server)?;
    server
        .store()
        .set_verbosity(u32::from(options.verbosity.min(2)));
    if let Some(path) = &options.port_file {
        write_port_file(path, server.local_addrs()[0].port())?;
    }
    server.wait()?;
    Ok(())
}

/// Writes then renames, so a reader never sees a half-written file.
fn write_port_file(path: &std::path::Path, port: u16) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    writeln!(file, "{port}")?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
