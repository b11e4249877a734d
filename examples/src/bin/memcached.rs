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
//! and removes its socket file; a cache has nothing to save.

use std::io::Write;
use std::process::ExitCode;

use examples::memcached::cli::{self, Command, Options};
use examples::memcached::server::{Server, ShutdownHandle};
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
        become_user(user)?;
    }
    let server = Server::start(options.server)?;
    server
        .store()
        .set_verbosity(u32::from(options.verbosity.min(2)));
    stop_on_signals(server.shutdown_handle())?;
    if let Some(path) = &options.port_file {
        // Write then rename, so a reader never sees a half-written file.
        let port = server.local_addrs()[0].port();
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::File::create(&tmp)?;
        writeln!(file, "{port}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
    }
    server.wait()?;
    Ok(())
}

/// Stops the server when SIGINT or SIGTERM arrives, so `main` returns
/// through [`Server::wait`] (which removes a `-s` socket file). The signal
/// is caught on a helper thread, never in a loop.
fn stop_on_signals(server: ShutdownHandle) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("signal {sig}: shutting down");
                server.shutdown();
            }
        })?;
    Ok(())
}

/// memcached's `-u`: started as root, take on `user`'s identity (groups,
/// then group, then user) before listening, so the sockets and their files
/// belong to it. Not root: nothing to drop, and memcached ignores `-u` too.
/// Runs before any thread starts (`getpwnam` is not thread-safe).
fn become_user(user: &str) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let name = std::ffi::CString::new(user)?;
    // SAFETY: `name` is a valid C string; the result is read at once,
    // before any other call could overwrite getpwnam's static buffer.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(format!("can't find the user {user} to switch to").into());
    }
    // SAFETY: non-null pointer from getpwnam, read before any other call.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    // SAFETY: plain system calls on integers; failures are checked.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
    };
    if failed {
        let e = std::io::Error::last_os_error();
        return Err(format!("failed to assume identity of user {user}: {e}").into());
    }
    Ok(())
}
