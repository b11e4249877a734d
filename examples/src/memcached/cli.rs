//! The server's command line: memcached's flags where they apply.
//!
//! | flag | memcached meaning | here |
//! |---|---|---|
//! | `-p`, `--port=<num>` | TCP port, default 11211 | same; `0` picks a free port (see `--port-file`) |
//! | `-l`, `--listen=<addr>` | interfaces to listen on, comma separated, default all | same; an entry may carry its own `:port` |
//! | `-m`, `--memory-limit=<mb>` | item memory in MiB, default 64 | same |
//! | `-c`, `--conn-limit=<num>` | max simultaneous connections, default 1024 | same; extra clients read `ERROR Too many open connections` and are closed |
//! | `-I`, `--max-item-size=<size>` | largest item, `k`/`m` suffixes, default 1m | same, 1k to 1024m and at most half of `-m` |
//! | `-t`, `--threads=<num>` | worker threads, default 4 | event loops (one per thread) sharing the port with `SO_REUSEPORT`, default 1 |
//! | `-v`, `-vv`, `-vvv` | verbosity | log level: info, debug, trace (default warn; `RUST_LOG` overrides) |
//! | `-U 0` | UDP port | only 0 (UDP off) is accepted; any other port is refused at startup |
//! | `-s <path>` | Unix socket | refused at startup (exit 2): not supported |
//! | `-F` | disable `flush_all` | same: `CLIENT_ERROR flush_all not allowed` |
//! | `-A` | enable `shutdown` | same: `shutdown [graceful]` stops the server |
//! | `-o idle_timeout=<s>` | close idle connections | same; other `-o` options are refused |
//! | `--port-file=<path>` | (none) | write the bound port there once listening |
//! | `--processes=<num>` | (none) | run as that many worker processes under a [`prefork`] master (each with `-t` loops and its own cache, `-m`/`-c` split evenly); `--status-file`, `--drain-timeout` and the restart flags are the master's |
//! | `-h`, `-V` | help, version | same |
//!
//! The flags are declared with [`clap`], so `-h` prints them (exit 0) and an
//! unknown option or a bad value is an error naming it (exit 2). Parsing is a
//! pure function of the arguments, so it is unit-tested here and `main` only
//! acts on the result.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::{ArgAction, CommandFactory, Parser};

use super::config::{Config, DEFAULT_ITEM_SIZE_MAX};
use super::server::{ServerConfig, DEFAULT_PORT};

/// memcached's flags, as clap sees them.
#[derive(Parser, Debug)]
#[command(
    name = "netlib-memcached",
    about = "A memcached-compatible server (text protocol) on netlib",
    disable_version_flag = true
)]
struct Flags {
    /// TCP port to listen on (0: any free port)
    #[arg(short, long, value_name = "num", default_value_t = DEFAULT_PORT)]
    port: u16,
    /// Interfaces to listen on, comma separated [default: 0.0.0.0];
    /// an entry may be host, ip, ip:port or [ipv6]:port
    #[arg(short, long, value_name = "addr", value_delimiter = ',', action = ArgAction::Append)]
    listen: Vec<String>,
    /// Item memory in megabytes
    #[arg(short, long = "memory-limit", value_name = "num", default_value_t = 64)]
    memory_limit: usize,
    /// Max simultaneous connections
    #[arg(short, long = "conn-limit", value_name = "num", default_value_t = Config::default().max_connections,
          value_parser = at_least_one)]
    conn_limit: usize,
    /// Max item size, k/m suffixes (min: 1k, max: 1024m) [default: 1m]
    #[arg(short = 'I', long = "max-item-size", value_name = "num", value_parser = parse_size)]
    max_item_size: Option<usize>,
    /// Event loops, one per thread, sharing the port (1 to 256)
    #[arg(short, long, value_name = "num", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    threads: u16,
    /// Verbose (-v info, -vv debug, -vvv trace; RUST_LOG overrides)
    #[arg(short, long, action = ArgAction::Count)]
    verbose: u8,
    /// UDP is not supported; only 0 is accepted
    #[arg(short = 'U', long = "udp-port", value_name = "0", value_parser = udp_off)]
    udp_port: Option<u16>,
    /// Unix sockets are not supported; giving a path is refused
    #[arg(short = 's', long = "unix-socket", value_name = "path")]
    unix_socket: Option<PathBuf>,
    /// Disable flush_all
    #[arg(short = 'F', long = "disable-flush-all", action = ArgAction::SetTrue)]
    disable_flush_all: bool,
    /// Enable the ascii "shutdown" command
    #[arg(short = 'A', long = "enable-shutdown", action = ArgAction::SetTrue)]
    enable_shutdown: bool,
    /// Extended options, comma separated; only idle_timeout=<seconds>
    #[arg(short = 'o', long = "extended", value_name = "opt", value_delimiter = ',',
          action = ArgAction::Append)]
    extended: Vec<String>,
    /// Write the bound TCP port to <path> once listening
    #[arg(long = "port-file", value_name = "path")]
    port_file: Option<PathBuf>,
    /// Print version and exit
    #[arg(short = 'V', long, action = ArgAction::SetTrue)]
    version: bool,
    #[command(flatten)]
    prefork: prefork::Args,
}

/// What the command line asks for.
#[derive(Debug, Clone)]
pub enum Command {
    /// Run the server.
    Run(Options),
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
    /// `--processes N` and the master's other flags.
    pub prefork: Box<prefork::Args>,
}

/// Parses the arguments after the program name. `-h` and bad command lines
/// come back as a [`clap::Error`], whose `exit()` prints them and exits with
/// 0 (help) or 2 (error).
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
pub fn parse<I, S>(args: I) -> Result<Command, clap::Error>
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let argv = std::iter::once(std::ffi::OsString::from("netlib-memcached"))
        .chain(args.into_iter().map(Into::into));
    let flags = Flags::try_parse_from(argv)?;
    if flags.version {
        return Ok(Command::Version);
    }
    let fail = |message: String| Flags::command().error(ErrorKind::ValueValidation, message);
    if let Some(path) = &flags.unix_socket {
        return Err(fail(format!(
            "-s {}: Unix sockets are not supported; listen on TCP with -l/-p",
            path.display()
        )));
    }
    let mut idle_timeout = None;
    for option in &flags.extended {
        match option.split_once('=') {
            Some(("idle_timeout", secs)) => {
                let secs: u64 = number(secs, "idle_timeout").map_err(fail)?;
                idle_timeout = (secs > 0).then(|| std::time::Duration::from_secs(secs));
            }
            _ => return Err(fail(format!("unsupported -o option '{option}'"))),
        }
    }
    let item_size = flags.max_item_size.unwrap_or(DEFAULT_ITEM_SIZE_MAX);
    if !(1024..=1024 * 1024 * 1024).contains(&item_size) {
        return Err(fail("item size must be between 1k and 1024m".into()));
    }
    let memory_limit = flags.memory_limit.saturating_mul(1024 * 1024);
    if memory_limit != 0 && item_size > memory_limit / 2 {
        return Err(fail(
            "cannot set item size limit higher than 1/2 of memory max".into(),
        ));
    }
    let mut listen = flags.listen;
    if listen.is_empty() {
        listen.push("0.0.0.0".to_string());
    }
    let mut addrs = Vec::new();
    for entry in &listen {
        addrs.extend(resolve(entry, flags.port).map_err(fail)?);
    }
    let threads = usize::from(flags.threads);
    Ok(Command::Run(Options {
        server: ServerConfig {
            listen: addrs,
            threads,
            cache: Config {
                memory_limit,
                item_size_max: item_size,
                max_connections: flags.conn_limit,
                threads,
                flush_enabled: !flags.disable_flush_all,
                shutdown_enabled: flags.enable_shutdown,
                idle_timeout,
                ..Config::default()
            },
        },
        verbosity: flags.verbose,
        port_file: flags.port_file,
        prefork: Box::new(flags.prefork),
    }))
}

fn at_least_one(value: &str) -> Result<usize, String> {
    match value.trim().parse() {
        Ok(0) => Err("connection limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("invalid connection limit '{value}'")),
    }
}

fn udp_off(value: &str) -> Result<u16, String> {
    match value.trim().parse() {
        Ok(0) => Ok(0),
        _ => Err("UDP is not supported; use -U 0".into()),
    }
}

fn number<T: std::str::FromStr>(value: &str, what: &str) -> Result<T, String> {
    value
        .trim()
        .parse()
        .map_err(|_| format!("invalid {what} '{value}'"))
}

/// `-I`: bytes, or a number with a `k`/`m` suffix (either case).
fn parse_size(value: &str) -> Result<usize, String> {
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
        .ok_or_else(|| format!("item size '{value}' is too large"))
}

/// One `-l` entry: `ip`, `ip:port`, `[ipv6]`, `[ipv6]:port` or a host name.
fn resolve(entry: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
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
                Err(format!("'{entry}' has no address"))
            } else {
                Ok(addrs)
            }
        }
        Err(e) => Err(format!("cannot resolve '{entry}': {e}")),
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
            Err(e) => {
                assert_eq!(e.exit_code(), 2, "{args:?}: {e}");
                e.to_string()
            }
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
    fn admin_flags() {
        let o = run(&[]);
        assert!(o.server.cache.flush_enabled && !o.server.cache.shutdown_enabled);
        assert_eq!(o.server.cache.idle_timeout, None);
        let o = run(&["-F", "-A", "-o", "idle_timeout=5"]);
        assert!(!o.server.cache.flush_enabled && o.server.cache.shutdown_enabled);
        assert_eq!(
            o.server.cache.idle_timeout,
            Some(std::time::Duration::from_secs(5))
        );
        assert_eq!(
            run(&["-o", "idle_timeout=0"]).server.cache.idle_timeout,
            None
        );
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
        assert!(error(&["-I", "40m"]).contains("1/2 of memory"));
    }

    #[test]
    fn bad_command_lines_say_why() {
        assert!(error(&["-p"]).contains("a value is required"));
        assert!(error(&["-p", "70000"]).contains("70000"));
        assert!(error(&["-t", "0"]).contains("--threads"));
        assert!(error(&["-c", "0"]).contains("at least 1"));
        assert!(error(&["-U", "11211"]).contains("UDP"));
        assert!(error(&["-s", "/tmp/mc.sock"]).contains("Unix sockets are not supported"));
        assert!(error(&["-o", "slab_reassign"]).contains("unsupported -o option"));
        assert!(error(&["-o", "idle_timeout=x"]).contains("invalid idle_timeout"));
        assert!(error(&["-x"]).contains("unexpected argument '-x'"));
        assert!(error(&["-P", "/tmp/pid"]).contains("unexpected argument '-P'"));
        assert!(error(&["-"]).contains("unexpected argument"));
        assert!(error(&["--frobnicate"]).contains("unexpected argument '--frobnicate'"));
        assert!(error(&["-vx"]).contains("unexpected argument"));
        assert!(error(&["stray"]).contains("unexpected argument 'stray'"));
    }

    #[test]
    fn help_and_version() {
        let help = parse(["-h"]).unwrap_err();
        assert_eq!(help.exit_code(), 0);
        let text = help.to_string();
        for flag in [
            "-p, --port",
            "-l, --listen",
            "-m, --memory-limit",
            "-c, --conn-limit",
        ] {
            assert!(text.contains(flag), "{flag} missing from help:\n{text}");
        }
        for flag in [
            "-I, --max-item-size",
            "-t, --threads",
            "-U, --udp-port",
            "--port-file",
        ] {
            assert!(text.contains(flag), "{flag} missing from help:\n{text}");
        }
        assert!(matches!(parse(["--version"]), Ok(Command::Version)));
        assert!(matches!(parse(["-V"]), Ok(Command::Version)));
    }
}
