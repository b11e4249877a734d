//! The command-line plumbing every example binary shares: a tiny flag parser,
//! logging setup, and the `listening on ADDR` line tests read.
//!
//! Flags are `--name value` or `--name=value`; a flag given without a value
//! (followed by another flag or nothing) reads as `true`. Anything not starting
//! with `--` is a positional argument. Bad values print the usage and exit with
//! status 2 - these are teaching binaries, not libraries.
//!
//! ```
//! use examples::cli::Flags;
//! let flags = Flags::parse(["client", "--port", "0", "--pool=4", "--verbose"].map(String::from));
//! assert_eq!(flags.get("port", 7u16), 0);
//! assert_eq!(flags.get("pool", 1usize), 4);
//! assert!(flags.has("verbose"));
//! assert_eq!(flags.positional(), ["client"]);
//! ```

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

/// Parsed `--name value` flags and positional arguments.
#[derive(Debug, Default)]
pub struct Flags {
    named: HashMap<String, String>,
    positional: Vec<String>,
    usage: String,
}

impl Flags {
    /// Parses the process arguments; `usage` is printed on bad input.
    pub fn from_env(usage: &str) -> Flags {
        let mut flags = Flags::parse(std::env::args().skip(1));
        flags.usage = usage.to_string();
        if flags.has("help") {
            println!("{usage}");
            std::process::exit(0);
        }
        flags
    }

    /// Parses `args` (without the program name).
    pub fn parse(args: impl IntoIterator<Item = String>) -> Flags {
        let mut flags = Flags::default();
        let mut args = args.into_iter().peekable();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                flags.positional.push(arg);
                continue;
            };
            let (name, value) = match name.split_once('=') {
                Some((n, v)) => (n.to_string(), v.to_string()),
                None => {
                    let value = match args.peek() {
                        Some(next) if !next.starts_with("--") => args.next().unwrap_or_default(),
                        _ => "true".to_string(),
                    };
                    (name.to_string(), value)
                }
            };
            flags.named.insert(name, value);
        }
        flags
    }

    /// Whether `--name` was given (with any value but `false`).
    pub fn has(&self, name: &str) -> bool {
        self.named.get(name).is_some_and(|v| v != "false")
    }

    /// The raw value of `--name`.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.named.get(name).map(String::as_str)
    }

    /// The value of `--name` parsed as `T`, or `default` when absent.
    pub fn get<T: FromStr>(&self, name: &str, default: T) -> T {
        match self.named.get(name) {
            None => default,
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| self.fail(&format!("bad value for --{name}: {v:?}"))),
        }
    }

    /// A duration flag in (fractional) seconds: `--idle 0.5`.
    pub fn seconds(&self, name: &str, default: f64) -> Duration {
        let secs: f64 = self.get(name, default);
        if !(secs.is_finite() && secs >= 0.0) {
            self.fail(&format!("bad duration for --{name}: {secs}"));
        }
        Duration::from_secs_f64(secs)
    }

    /// The listen address from `--host` (default 127.0.0.1) and `--port`.
    pub fn listen_addr(&self, default_port: u16) -> SocketAddr {
        let host = self.value("host").unwrap_or("127.0.0.1");
        let port: u16 = self.get("port", default_port);
        format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .unwrap_or_else(|_| self.fail(&format!("bad --host {host:?}")))
    }

    /// Arguments that are not flags.
    pub fn positional(&self) -> &[String] {
        &self.positional
    }

    /// Prints `msg` and the usage, then exits with status 2.
    pub fn fail(&self, msg: &str) -> ! {
        eprintln!("error: {msg}\n\n{}", self.usage);
        std::process::exit(2)
    }
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
}

/// Prints `listening on ADDR` on stdout and flushes it, so a test (or a person)
/// that started the binary with `--port 0` learns the port.
pub fn announce(addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {addr}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        Flags::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn flag_without_value_is_true() {
        let f = parse(&["--a", "--b", "x"]);
        assert!(f.has("a"));
        assert_eq!(f.value("b"), Some("x"));
        assert!(!f.has("c"));
    }

    #[test]
    fn listen_addr_defaults_to_loopback() {
        let f = parse(&["--port", "0"]);
        assert_eq!(f.listen_addr(9).to_string(), "127.0.0.1:0");
        let f = parse(&["--host", "::1"]);
        assert_eq!(f.listen_addr(9).to_string(), "[::1]:9");
    }

    #[test]
    fn seconds_accepts_fractions() {
        let f = parse(&["--idle", "0.25"]);
        assert_eq!(f.seconds("idle", 8.0), Duration::from_millis(250));
    }
}
