//! The server's command line: memcached's flags where they apply.
//!
//! | flag | memcached meaning | here |
//! |---|---|---|
//! | `-p`, `--port=<num>` | TCP port, default 11211 | same; `0` picks a free port (see `--port-file`) |
//! | `-l`, `--listen=<addr>` | interfaces to listen on, comma separated, default all | same; an entry may carry its own `:port` |
//! | `-m`, `--memory-limit=<mb>` | item memory in MiB, default 64 | same |
//! | `-c`, `--conn-limit=<num>` | max simultaneous connections, default 1024 | same; extra clients read `ERROR Too many open connections` and are closed |
//! | `-I`, `--max-item-size=<size>` | largest item, `k`/`m` suffixes, default 1m | same, 1k to 1024m and at most half of `-m` |
//! | `-t`, `--threads=<num>` | worker threads, default 4 | reactor threads sharing the port with `SO_REUSEPORT`, default 1 |
//! | `-v`, `-vv`, `-vvv` | verbosity | log level: info, debug, trace (default warn; `RUST_LOG` overrides) |
//! | `-U 0` | UDP port | only 0 (UDP off) is accepted |
//! | `--port-file=<path>` | (none) | write the bound port there once listening |
//! | `-h`, `-V` | help, version | same |
//!
//! Parsing is a pure function of the arguments, so it is unit-tested here
//! and `main` only acts on the result.

use std::fmt;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use super::config::{Config, DEFAULT_ITEM_SIZE_MAX};
use super::server::{ServerConfig, DEFAULT_PORT};

/// The usage text printed by `-h`.
pub const USAGE: &str = "\
usage: netlib-memcached [options]
  -p, --port=<num>           TCP port to listen on (default: 11211; 0: any free port)
  -l, --listen=<addr>        interfaces to listen on, comma separated (default: 0.0.0.0)
                             an entry may be host, ip, ip:port or [ipv6]:port
  -m, --memory-limit=<num>   item memory in megabytes (default: 64)
  -c, --conn-limit=<num>     max simultaneous connections (default: 1024)
  -I, --max-item-size=<num>  max item size, k/m suffixes (default: 1m, min: 1k, max: 1024m)
  -t, --threads=<num>        reactor threads sharing the port (default: 1)
  -v, --verbose              verbose (-v info, -vv debug, -vvv trace; RUST_LOG overrides)
  -U, --udp-port=0           UDP is not supported; only 0 is accepted
      --port-file=<path>     write the bound TCP port to <path> once listening
  -h, --help                 print this help and exit
  -V, --version              print version and exit
";

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run the server.
    Run(Options),
    /// Print [`USAGE`] and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// A server run, as the command line describes it.
#[derive(Debug, Clone)]
pub struct Options {
    /// Addresses, threads and cache limits.
    pub server: ServerConfig,
    /// How many `-v` were given.
    pub verbosity: u8,
    /// Where to write the bound port (`--port-file`).
    pub port_file: Option<PathBuf>,
}

/// A command line that cannot be run, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

fn usage_error<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// Parses the arguments after the program name.
///
/// ```
/// use examples::memcached::cli::{parse, Command};
/// let Command::Run(options) = parse(["-p", "0", "-l", "127.0.0.1", "-t", "2", "-vv"])? else {
///     unreachable!()
/// };
/// assert_eq!(options.server.listen, vec!["127.0.0.1:0".parse()?]);
/// assert_eq!(options.server.threads, 2);
/// assert_eq!(options.verbosity, 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse<I, S>(args: I) -> Result<Command, UsageError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut port = DEFAULT_PORT;
    let mut listen: Vec<String> = Vec::new();
    let mut memory_mb: usize = 64;
    let mut item_size = DEFAULT_ITEM_SIZE_MAX;
    let mut max_connections = Config::default().max_connections;
    let mut threads = 1;
    let mut verbosity: u8 = 0;
    let mut port_file = None;

    while let Some(arg) = args.next() {
        // Split into a flag name and an inline value, if any:
        // --name=value, --name, -xVALUE, -x, -vvv.
        let (flag, inline) = if let Some(long) = arg.strip_prefix("--") {
            match long.split_once('=') {
                Some((name, value)) => (long_to_short(name)?, Some(value.to_string())),
                None => (long_to_short(long)?, None),
            }
        } else if let Some(short) = arg.strip_prefix('-') {
            let mut chars = short.chars();
            let Some(c) = chars.next().filter(|c| "plmcItvUhV".contains(*c)) else {
                return usage_error(format!("unknown option '{arg}'"));
            };
            let rest = chars.as_str();
            (c, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            return usage_error(format!("unexpected argument '{arg}'"));
        };
        match flag {
            'h' => return Ok(Command::Help),
            'V' => return Ok(Command::Version),
            'v' => {
                // -v, -vv, -vvv; --verbose counts once.
                let extra = inline.as_deref().unwrap_or("");
                if !extra.chars().all(|c| c == 'v') {
                    return usage_error(format!("unknown option '{arg}'"));
                }
                verbosity = verbosity.saturating_add(1 + extra.len() as u8);
                continue;
            }
            _ => {}
        }
        let value = match inline {
            Some(v) => v,
            None => match args.next() {
                Some(v) => v,
                None => return usage_error(format!("option '{arg}' needs a value")),
            },
        };
        match flag {
            'p' => port = number(&value, "port")?,
            'l' => listen.extend(value.split(',').map(str::to_string)),
            'm' => memory_mb = number(&value, "memory limit")?,
            'c' => {
                max_connections = number(&value, "connection limit")?;
                if max_connections == 0 {
                    return usage_error("connection limit must be at least 1");
                }
            }
            'I' => item_size = parse_size(&value)?,
            't' => {
                threads = number(&value, "threads")?;
                if !(1..=256).contains(&threads) {
                    return usage_error("threads must be between 1 and 256");
                }
            }
            'U' => {
                if number::<u16>(&value, "UDP port")? != 0 {
                    return usage_error("UDP is not supported; use -U 0");
                }
            }
            'P' => port_file = Some(PathBuf::from(value)),
            _ => return usage_error(format!("unknown option '{arg}'")),
        }
    }

    if !(1024..=1024 * 1024 * 1024).contains(&item_size) {
        return usage_error("item size must be between 1k and 1024m");
    }
    let memory_limit = memory_mb.saturating_mul(1024 * 1024);
    if memory_limit != 0 && item_size > memory_limit / 2 {
        return usage_error("cannot set item size limit higher than 1/2 of memory max");
    }
    if listen.is_empty() {
        listen.push("0.0.0.0".to_string());
    }
    let mut addrs = Vec::new();
    for entry in &listen {
        addrs.extend(resolve(entry, port)?);
    }
    Ok(Command::Run(Options {
        server: ServerConfig {
            listen: addrs,
            threads,
            cache: Config {
                memory_limit,
                item_size_max: item_size,
                max_connections,
                threads,
                ..Config::default()
            },
        },
        verbosity,
        port_file,
    }))
}

/// Maps a long option to its short letter; `P` stands for `--port-file`,
/// which memcached does not have.
fn long_to_short(name: &str) -> Result<char, UsageError> {
    Ok(match name {
        "port" => 'p',
        "listen" => 'l',
        "memory-limit" => 'm',
        "conn-limit" => 'c',
        "max-item-size" => 'I',
        "threads" => 't',
        "verbose" => 'v',
        "udp-port" => 'U',
        "port-file" => 'P',
        "help" => 'h',
        "version" => 'V',
        _ => return usage_error(format!("unknown option '--{name}'")),
    })
}

fn number<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, UsageError> {
    value
        .trim()
        .parse()
        .or_else(|_| usage_error(format!("invalid {what} '{value}'")))
}

/// `-I`: bytes, or a number with a `k`/`m` suffix (either case).
fn parse_size(value: &str) -> Result<usize, UsageError> {
    let lower = value.trim().to_ascii_lowercase();
    let (digits, unit) = match lower.strip_suffix('k') {
        Some(d) => (d, 1024),
        None => match lower.strip_suffix('m') {
            Some(d) => (d, 1024 * 1024),
            None => (lower.as_str(), 1),
        },
    };
    let n: usize = number(digits, "item size")?;
    n.checked_mul(unit)
        .ok_or_else(|| UsageError(format!("item size '{value}' is too large")))
}

/// One `-l` entry: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` or a host name.
fn resolve(entry: &str, port: u16) -> Result<Vec<SocketAddr>, UsageError> {
    let entry = entry.trim();
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let bare = entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .unwrap_or(entry);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (host, port) = match entry.rsplit_once(':') {
        Some((host, p)) => (host, number(p, "port")?),
        None => (entry, port),
    };
    match (host, port).to_socket_addrs() {
        Ok(addrs) => {
            let addrs: Vec<_> = addrs.collect();
            if addrs.is_empty() {
                usage_error(format!("'{entry}' has no address"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => usage_error(format!("cannot resolve '{entry}': {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().copied()) {
            Ok(Command::Run(options)) => options,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    fn error(args: &[&str]) -> String {
        match parse(args.iter().copied()) {
            Err(UsageError(message)) => message,
            other => panic!("{args:?} should fail: {other:?}"),
        }
    }

    #[test]
    fn defaults_are_memcacheds() {
        let o = run(&[]);
        assert_eq!(o.server.listen, vec!["0.0.0.0:11211".parse().unwrap()]);
        assert_eq!(o.server.threads, 1);
        assert_eq!(o.server.cache.memory_limit, 64 << 20);
        assert_eq!(o.server.cache.item_size_max, 1 << 20);
        assert_eq!(o.server.cache.max_connections, 1024);
        assert_eq!(o.verbosity, 0);
        assert!(o.port_file.is_none());
    }

    #[test]
    fn short_long_and_attached_forms() {
        let o = run(&[
            "-p11311",
            "--listen=127.0.0.1,::1",
            "-m",
            "128",
            "--conn-limit",
            "10",
            "-I",
            "2m",
            "--threads=4",
            "-vvv",
            "--port-file=/tmp/p",
            "-U",
            "0",
        ]);
        assert_eq!(
            o.server.listen,
            vec![
                "127.0.0.1:11311".parse().unwrap(),
                "[::1]:11311".parse().unwrap()
            ]
        );
        assert_eq!(o.server.cache.memory_limit, 128 << 20);
        assert_eq!(o.server.cache.max_connections, 10);
        assert_eq!(o.server.cache.item_size_max, 2 << 20);
        assert_eq!(o.server.threads, 4);
        assert_eq!(o.server.cache.threads, 4);
        assert_eq!(o.verbosity, 3);
        assert_eq!(o.port_file, Some(PathBuf::from("/tmp/p")));
    }

    #[test]
    fn listen_entries_may_carry_ports() {
        let o = run(&["-l", "127.0.0.1:1234,[::1]:99,[::1]", "-p", "7"]);
        assert_eq!(
            o.server.listen,
            vec![
                "127.0.0.1:1234".parse().unwrap(),
                "[::1]:99".parse().unwrap(),
                "[::1]:7".parse().unwrap()
            ]
        );
        assert!(run(&["-l", "localhost", "-p", "0"])
            .server
            .listen
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 0));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64k").unwrap(), 64 << 10);
        assert_eq!(parse_size("3M").unwrap(), 3 << 20);
        assert!(error(&["-I", "512"]).contains("between 1k and 1024m"));
        assert!(error(&["-I", "2000m", "-m", "4096"]).contains("between"));
        assert!(error(&["-I", "40m"]).contains("1/2 of memory"));
        assert!(error(&["-I", "x"]).contains("invalid item size"));
    }

    #[test]
    fn bad_command_lines_say_why() {
        assert!(error(&["-p"]).contains("needs a value"));
        assert!(error(&["-p", "70000"]).contains("invalid port"));
        assert!(error(&["-t", "0"]).contains("threads"));
        assert!(error(&["-c", "0"]).contains("at least 1"));
        assert!(error(&["-U", "11211"]).contains("UDP"));
        assert!(error(&["-x"]).contains("unknown option"));
        assert!(error(&["-P", "/tmp/pid"]).contains("unknown option"));
        assert!(error(&["-"]).contains("unknown option"));
        assert!(error(&["--frobnicate"]).contains("unknown option"));
        assert!(error(&["-vx"]).contains("unknown option"));
        assert!(error(&["stray"]).contains("unexpected argument"));
    }

    #[test]
    fn help_and_version() {
        assert!(matches!(parse(["-h"]), Ok(Command::Help)));
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
    }
}
