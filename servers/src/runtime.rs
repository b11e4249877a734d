//! What every server binary does around its dispatcher: logging, announcing
//! the bound addresses (tests start the binaries on port 0 and read these
//! lines). Stopping cleanly on SIGINT/SIGTERM is `netlib::signal`'s.

use crate::config::{self, CommandLine, Config, ConfigError, Key};
use std::net::SocketAddr;

/// Exit status of a command line or configuration the server cannot run with.
pub const USAGE_EXIT: i32 = 2;

/// Reads the process arguments as `-c FILE` and `--Key value` overrides of
/// `keys`. `--help` prints the keys with their defaults and exits 0; an
/// unknown key or an unreadable file prints the reason and exits 2.
pub fn command_line(program: &str, about: &str, keys: &[Key]) -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    command_line_of(program, about, keys, &args)
}

/// [`command_line`] over `args` (what follows the program name, or a
/// subcommand).
pub fn command_line_of(program: &str, about: &str, keys: &[Key], args: &[String]) -> Config {
    match Config::from_command_line(args, keys) {
        Ok(CommandLine::Run(config)) => config,
        Ok(CommandLine::Help) => {
            print!("{}", config::help(program, about, keys));
            std::process::exit(0);
        }
        Err(e) => {
            eprintln!("{program}: {e}\nUsage: {program} [-c FILE] [--Key value]... (--help lists the keys)");
            std::process::exit(USAGE_EXIT);
        }
    }
}

/// Reports a configuration that does not make settings (a bad value) and
/// exits 2.
pub fn config_error(program: &str, e: &ConfigError) -> ! {
    eprintln!("{program}: configuration: {e}");
    std::process::exit(USAGE_EXIT)
}

/// Initialises `env_logger` with `info` as the default level.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .try_init();
}

/// Formats an address that may be unknown (a socket already gone) for logs
/// and people: `127.0.0.1:2010` or `?`, never `Some(..)`.
pub fn addr_or_unknown(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_string(), |a| a.to_string())
}

/// Prints `LISTEN <name> <addr>` on stdout, flushed, for scripts and tests.
pub fn announce(name: &str, addr: SocketAddr) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "LISTEN {name} {addr}");
    let _ = out.flush();
}
