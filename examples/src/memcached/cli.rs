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
//! | `-s`, `--unix-socket=<path>` | Unix socket to listen on, disables TCP | same; a stale socket file nobody listens on is replaced, the file is removed at shutdown |
//! | `-a`, `--unix-mask=<mask>` | the socket file's permission bits, octal, default 0700 | same |
//! | `-F` | disable `flush_all` | same: `CLIENT_ERROR flush_all not allowed` |
//! | `-A` | enable `shutdown` | same: `shutdown [graceful]` stops the server |
//! | `-o idle_timeout=<s>` | close idle connections | same |
//! | `-o track_sizes` | keep the `stats sizes` histogram from the start | same |
//! | `-o <tuning>` | slab allocator, LRU thread, hash table and sandbox knobs (`slab_reassign`, `lru_crawler`, `modern`, `relaxed_privileges`, ...; see [`IGNORED_OPTIONS`]) | accepted and logged as ignored: there is no such machinery here, and no reply depends on them |
//! | `-o <other>` | extstore, TLS, proxy, ... | refused at startup (exit 2), as memcached refuses an unknown sub-option |
//! | `-M`, `--disable-evictions` | answer `SERVER_ERROR out of memory storing object` instead of evicting | same |
//! | `-R`, `--max-reqs-per-event=<num>` | requests served per connection per event, default 20 | accepted and reported by `stats settings`; fairness comes from netlib's per-event read budget |
//! | `-o lru_crawler`, `no_lru_crawler` | run the LRU crawler or not | the background reclaimer starts on or off (`no_modern` turns it off too) |
//! | `-b`, `--listen-backlog=<num>` | accept queue length, default 1024 | same |
//! | `-B`, `--protocol=<name>` | `ascii`, `binary` or `auto` | `ascii` and `auto` (binary requests close the connection either way); `binary` is refused at startup |
//! | `-d`, `--daemon` | run in the background | same (fork, new session, cwd `/`, stdio to `/dev/null` unless `-v`); relative paths are resolved first |
//! | `-P`, `--pidfile=<file>` | write the pid there | same; removed at clean shutdown |
//! | `-u`, `--user=<name>` | run as this user when started as root | same: switches user and groups before listening; ignored when not root |
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
use super::server::{ServerConfig, UnixSocket, DEFAULT_PORT};

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
    /// UNIX socket to listen on (disables network support)
    #[arg(short = 's', long = "unix-socket", value_name = "path")]
    unix_socket: Option<PathBuf>,
    /// Access mask for the UNIX socket, in octal
    #[arg(short = 'a', long = "unix-mask", value_name = "mask", default_value = "700",
          value_parser = octal_mask)]
    unix_mask: u32,
    /// Disable flush_all
    #[arg(short = 'F', long = "disable-flush-all", action = ArgAction::SetTrue)]
    disable_flush_all: bool,
    /// Enable the ascii "shutdown" command
    #[arg(short = 'A', long = "enable-shutdown", action = ArgAction::SetTrue)]
    enable_shutdown: bool,
    /// Return an error when memory is full instead of evicting items
    #[arg(short = 'M', long = "disable-evictions", action = ArgAction::SetTrue)]
    disable_evictions: bool,
    /// Maximum requests per event (reported by stats settings; see README)
    #[arg(short = 'R', long = "max-reqs-per-event", value_name = "num", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_reqs_per_event: u32,
    /// Backlog queue limit
    #[arg(short = 'b', long = "listen-backlog", value_name = "num", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=65535))]
    listen_backlog: u32,
    /// Protocol: ascii or auto (the binary protocol is not spoken)
    #[arg(short = 'B', long = "protocol", value_name = "name", default_value = "ascii",
          action = ArgAction::Set, value_parser = protocol)]
    protocol: bool,
    /// Run as a daemon
    #[arg(short = 'd', long = "daemon", action = ArgAction::SetTrue)]
    daemon: bool,
    /// Save the process id in <file> (removed at clean shutdown)
    #[arg(short = 'P', long = "pidfile", value_name = "file")]
    pidfile: Option<PathBuf>,
    /// Assume the identity of <user> (only when run as root)
    #[arg(short = 'u', long = "user", value_name = "user")]
    user: Option<String>,
    /// Extended options, comma separated: idle_timeout=<seconds>; tuning
    /// options of memcached's slab allocator and LRU threads are ignored
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
    /// Run the server (boxed: the options are large, the other variant
    /// empty).
    Run(Box<Options>),
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
    /// The user to switch to when started as root (`-u`).
    pub user: Option<String>,
    /// Detach from the terminal (`-d`).
    pub daemonize: bool,
    /// Where to record the process id (`-P`).
    pub pid_file: Option<PathBuf>,
    /// `-o` options accepted but without effect here (see
    /// [`IGNORED_OPTIONS`]), for `main` to log once logging is set up.
    pub ignored: Vec<String>,
    /// `--processes N` and the master's other flags.
    pub prefork: prefork::Args,
}

/// memcached 1.6.18's `-o` sub-options for machinery this server does not
/// have: its slab allocator and mover, segmented LRU and its threads, hash
/// table sizing, logger buffers, read-buffer pools and the seccomp
/// sandbox (`relaxed_privileges` exists in memcached-debug builds only).
/// They tune memory layout and background threads, never a reply, so they
/// are accepted (with or without `=value`) and ignored, with a warning.
/// Options that would change behaviour - extstore (`ext_*`), TLS
/// (`ssl_*`), the proxy - are refused, as memcached built without them
/// refuses them.
pub const IGNORED_OPTIONS: &[&str] = &[
    "maxconns_fast",
    "no_maxconns_fast",
    "hashpower",
    "no_hashexpand",
    "slab_reassign",
    "no_slab_reassign",
    "slab_automove",
    "no_slab_automove",
    "slab_automove_ratio",
    "slab_automove_window",
    "tail_repair_time",
    "hash_algorithm",
    "lru_crawler_sleep",
    "lru_crawler_tocrawl",
    "lru_maintainer",
    "no_lru_maintainer",
    "hot_lru_pct",
    "warm_lru_pct",
    "hot_max_factor",
    "warm_max_factor",
    "temporary_ttl",
    "watcher_logbuf_size",
    "worker_logbuf_size",
    "slab_sizes",
    "slab_chunk_max",
    "no_chunked_items",
    "modern",
    "no_modern",
    "inline_ascii_resp",
    "no_inline_ascii_resp",
    "resp_obj_mem_limit",
    "read_buf_mem_limit",
    "drop_privileges",
    "no_drop_privileges",
    "relaxed_privileges",
];

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
    let mut idle_timeout = None;
    let mut ignored = Vec::new();
    let mut track_sizes = false;
    let mut lru_crawler = true;
    for option in &flags.extended {
        let name = option
            .split_once('=')
            .map_or(option.as_str(), |(name, _)| name);
        match option.split_once('=') {
            Some(("idle_timeout", secs)) => {
                let secs: u64 = number(secs, "idle_timeout").map_err(fail)?;
                idle_timeout = (secs > 0).then(|| std::time::Duration::from_secs(secs));
            }
            None if option == "track_sizes" => track_sizes = true,
            // The reclaimer is memcached's LRU crawler; no_modern turns
            // that off among other (ignored) things.
            None if option == "lru_crawler" || option == "modern" => {
                lru_crawler = true;
                ignored.extend((option == "modern").then(|| option.clone()));
            }
            None if option == "no_lru_crawler" || option == "no_modern" => {
                lru_crawler = false;
                ignored.extend((option == "no_modern").then(|| option.clone()));
            }
            _ if IGNORED_OPTIONS.contains(&name) => ignored.push(option.clone()),
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
    Ok(Command::Run(Box::new(Options {
        server: ServerConfig {
            listen: addrs,
            unix: flags.unix_socket.map(|path| UnixSocket {
                path,
                mode: flags.unix_mask,
            }),
            threads,
            cache: Config {
                memory_limit,
                item_size_max: item_size,
                max_connections: flags.conn_limit,
                threads,
                flush_enabled: !flags.disable_flush_all,
                shutdown_enabled: flags.enable_shutdown,
                idle_timeout,
                backlog: flags.listen_backlog,
                track_sizes,
                evict: !flags.disable_evictions,
                lru_crawler,
                reqs_per_event: flags.max_reqs_per_event,
                binding_auto: flags.protocol,
                ..Config::default()
            },
        },
        verbosity: flags.verbose,
        port_file: flags.port_file,
        user: flags.user,
        daemonize: flags.daemon,
        pid_file: flags.pidfile,
        ignored,
        prefork: flags.prefork,
    })))
}

fn at_least_one(value: &str) -> Result<usize, String> {
    match value.trim().parse() {
        Ok(0) => Err("connection limit must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("invalid connection limit '{value}'")),
    }
}

/// `-B`: true for `auto`, false for `ascii`; `binary` is refused.
fn protocol(value: &str) -> Result<bool, String> {
    match value {
        "ascii" => Ok(false),
        "auto" => Ok(true),
        "binary" => Err("the binary protocol is not supported; use ascii or auto".into()),
        _ => Err(format!("unknown protocol '{value}' (ascii, auto)")),
    }
}

/// `-a`: permission bits in octal, as memcached's `strtol(optarg, NULL, 8)`
/// reads them; only the nine permission bits are used.
fn octal_mask(value: &str) -> Result<u32, String> {
    match u32::from_str_radix(value.trim(), 8) {
        Ok(mask) if mask <= 0o777 => Ok(mask),
        _ => Err(format!("invalid octal access mask '{value}' (0 to 777)")),
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
mod tests;
