//! The command-line plumbing every example binary shares: value parsers for
//! [`clap`], logging setup, and the `listening on ADDR` line tests read.
//!
//! Each binary declares its flags with `#[derive(clap::Parser)]`, so `--help`
//! prints them (exit 0) and an unknown flag or a bad value is an error naming
//! it (exit 2) - `echo --prot 3000` does not fall back to the default port.
//!
//! ```
//! use clap::Parser;
//! use examples::cli::{listen_addr, seconds};
//! use std::time::Duration;
//!
//! #[derive(Parser)]
//! struct Args {
//!     #[arg(long, default_value = "127.0.0.1")]
//!     host: std::net::IpAddr,
//!     #[arg(long, default_value_t = 7)]
//!     port: u16,
//!     #[arg(long, default_value = "8", value_parser = seconds)]
//!     idle: Duration,
//! }
//! let args = Args::try_parse_from(["x", "--port", "0", "--idle=0.5"]).unwrap();
//! assert_eq!(listen_addr(args.host, args.port).to_string(), "127.0.0.1:0");
//! assert_eq!(args.idle, Duration::from_millis(500));
//! assert!(Args::try_parse_from(["x", "--prot", "3000"]).is_err());
//! ```

use std::io::Write;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::str::FromStr;

/// A duration in (fractional) seconds: `0.5`, `8` (the parser the
/// prefork master's flags use too).
pub use prefork::config::seconds;

/// A number above zero: `--sessions`, `--size`, `--max-conns`.
pub fn positive<T: FromStr + PartialOrd + Default>(value: &str) -> Result<T, String> {
    match value.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("`{value}` is not a positive whole number")),
    }
}

/// A socket address, by number or by name: `127.0.0.1:2007`, `localhost:8000`.
pub fn socket_addr(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse() {
        return Ok(addr);
    }
    value
        .to_socket_addrs()
        .map_err(|e| format!("`{value}` is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{value}` has no address"))
}

/// The address `--host` and `--port` name.
pub fn listen_addr(host: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(host, port)
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

/// Formats an address that may be unknown (a socket already gone) for
/// people: `127.0.0.1:2010` or `?`, never `Some(..)`.
pub fn addr_or_unknown(addr: Option<SocketAddr>) -> String {
    addr.map_or_else(|| "?".to_string(), |a| a.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn seconds_accepts_fractions_and_rejects_the_rest() {
        assert_eq!(seconds("0.25"), Ok(Duration::from_millis(250)));
        assert_eq!(seconds("8"), Ok(Duration::from_secs(8)));
        assert!(seconds("-1").is_err());
        assert!(seconds("NaN").is_err());
        assert!(seconds("soon").unwrap_err().contains("soon"));
    }

    #[test]
    fn socket_addrs_by_number_and_name() {
        assert_eq!(
            socket_addr("127.0.0.1:9").unwrap().to_string(),
            "127.0.0.1:9"
        );
        assert_eq!(socket_addr("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert!(socket_addr("localhost:9").unwrap().ip().is_loopback());
        assert!(socket_addr("nowhere").is_err());
    }

    #[test]
    fn addresses_print_plainly() {
        assert_eq!(
            addr_or_unknown(Some("127.0.0.1:2010".parse().unwrap())),
            "127.0.0.1:2010"
        );
        assert_eq!(addr_or_unknown(None), "?");
    }
}
