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
//! so scripts and tests need not guess a free port. With `-s PATH` it
//! listens on that Unix-domain socket instead of TCP. The process runs
//! until SIGINT or SIGTERM (or `shutdown`, with `-A`), then stops its loops
//! and removes its socket file; a cache has nothing to save. `--processes N`
//! runs N worker processes (each with `-t` loops and its own cache) under a
//! `prefork` master: SIGHUP reloads, SIGTERM drains, crashed workers are
//! restarted.

use std::process::ExitCode;

use examples::memcached::cli::{self, Command, Options};
use examples::memcached::process;
use examples::memcached::server::{self, Server};
use examples::memcached::VERSION;

fn main() -> ExitCode {
    let options = match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Run(options)) => *options,
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
    let mut options = options;
    if options.daemonize {
        // Before logging and before any thread: fork, new session, cwd /.
        if let Err(e) = daemonize(&mut options) {
            eprintln!("netlib-memcached: failed to daemonize: {e}");
            return ExitCode::FAILURE;
        }
    }
    init_logging(options.verbosity);
    for option in &options.ignored {
        log::warn!("-o {option}: ignored (no slab allocator, LRU threads or sandbox here)");
    }
    match serve(options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            eprintln!("netlib-memcached: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Makes the paths the server still needs absolute, then detaches (`-d`);
/// with `-v` standard output and error stay open, as memcached keeps them.
fn daemonize(options: &mut Options) -> std::io::Result<()> {
    for path in [&mut options.pid_file, &mut options.port_file]
        .into_iter()
        .flatten()
    {
        *path = process::absolute(path)?;
    }
    if let Some(unix) = &mut options.server.unix {
        unix.path = process::absolute(&unix.path)?;
    }
    process::daemonize(options.verbosity > 0)
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
    if options.port_file.is_some() && options.server.unix.is_some() {
        return Err("--port-file names a TCP port; with -s there is none".into());
    }
    if let Some(user) = &options.user {
        process::become_user(user)?;
    }
    if let Some(processes) = options.prefork.config(options.server.threads) {
        if options.server.unix.is_some() {
            return Err(
                "-s cannot be combined with --processes (the workers share TCP listeners)".into(),
            );
        }
        let pid_file = match &options.pid_file {
            Some(path) => Some(process::PidFile::write(path)?),
            None => None,
        };
        let port_file = options.port_file.clone();
        let mut written = Ok(());
        server::serve_processes(options.server, processes, |addrs| {
            if let Some(path) = &port_file {
                written = process::write_atomically(path, &format!("{}\n", addrs[0].port()));
            }
        })?;
        drop(pid_file);
        return Ok(written?);
    }
    let signals = netlib::signal::StopSignals::catch()?;
    let server = Server::start(options.server)?;
    server
        .store()
        .set_verbosity(u32::from(options.verbosity.min(2)));
    signals.on_arrival({
        let server = server.shutdown_handle();
        move || server.shutdown()
    })?;
    let pid_file = match &options.pid_file {
        Some(path) => Some(process::PidFile::write(path)?),
        None => None,
    };
    if let Some(path) = &options.port_file {
        let port = server.local_addrs()[0].port();
        process::write_atomically(path, &format!("{port}\n"))?;
    }
    server.wait()?;
    drop(pid_file);
    Ok(())
}
