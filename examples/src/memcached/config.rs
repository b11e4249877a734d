//! The limits a memcached server runs under, in one place.
//!
//! Every limit that protects the process from a client is explicit here and
//! has a default that is safe on a public port (DESIGN.md: "Limits are
//! explicit and configurable"). The server binary fills this from its command
//! line (`-m` megabytes, `-I` item size, `-t` threads, `-c` connections).

/// memcached's default item size limit (`-I`): 1 MiB.
pub const DEFAULT_ITEM_SIZE_MAX: usize = 1024 * 1024;

/// memcached's default memory limit (`-m 64`).
pub const DEFAULT_MEMORY_LIMIT: usize = 64 * 1024 * 1024;

/// The longest command line memcached waits for before giving up on a
/// client: 2048 bytes without a newline closes the connection.
pub const DEFAULT_MAX_LINE: usize = 2048;

/// memcached's default `-a`: only the owner may connect to the socket.
pub const DEFAULT_UNIX_MASK: u32 = 0o700;

/// Settings for a [`Store`](super::Store) and the sessions that use it.
///
/// ```
/// use examples::memcached::Config;
/// let config = Config { shards: 4, ..Config::with_memory_megabytes(128) };
/// assert_eq!(config.memory_limit, 128 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Total bytes of items to keep before evicting (`-m`, in bytes here).
    /// 0 means no limit. Items are measured the way memcached measures them
    /// (see [`item_size`](super::item_size)).
    pub memory_limit: usize,
    /// The largest item, header and key included (`-I`). Larger values get
    /// `SERVER_ERROR object too large for cache`.
    pub item_size_max: usize,
    /// How many independently locked shards the store is split into; one per
    /// event loop is a good start. The store may use fewer: each shard
    /// gets `memory_limit / shards` bytes and must be able to hold at least
    /// two maximum-size items, or a large item could never be stored.
    pub shards: usize,
    /// Event loops (one per thread), reported by `stats` as `threads` (`-t`).
    pub threads: usize,
    /// Connection limit, reported by `stats` as `max_connections` (`-c`).
    /// The network layer enforces it.
    pub max_connections: usize,
    /// Longest command line, `\r` included and `\n` excluded. A longer line
    /// closes the connection.
    pub max_line: usize,
    /// Longest `get`/`gets` line. memcached lets multi-gets grow without
    /// bound; here they are bounded, but far above `max_line`.
    pub max_multiget_line: usize,
    /// Once a session's pending output reaches this many bytes it stops
    /// taking new commands until the caller has written some out, so a client
    /// that pipelines requests without reading replies cannot grow it.
    pub output_high_water: usize,
    /// Largest single get/gets/gat/gats reply. Past it the reply becomes
    /// `SERVER_ERROR out of memory writing get response`, as memcached's
    /// does when it runs out of response buffers.
    pub max_get_response: usize,
    /// Whether `flush_all` is allowed (`-F` turns it off; then it answers
    /// `CLIENT_ERROR flush_all not allowed`).
    pub flush_enabled: bool,
    /// Whether the `shutdown` command stops the server (`-A`); otherwise it
    /// answers `ERROR: shutdown not enabled`.
    pub shutdown_enabled: bool,
    /// Close connections that send nothing for this long
    /// (`-o idle_timeout=N`); `None` (memcached's 0) never does.
    pub idle_timeout: Option<std::time::Duration>,
    /// Evict the least recently used items to make room (memcached's
    /// default); `-M` turns it off: a full cache then answers
    /// `SERVER_ERROR out of memory storing object`.
    pub evict: bool,
    /// Whether the background reclaimer (memcached's LRU crawler) runs
    /// from the start; `-o no_lru_crawler` and `-o no_modern` start it
    /// off, `lru_crawler enable` turns it on.
    pub lru_crawler: bool,
    /// memcached's `-R`, reported by `stats settings` as
    /// `reqs_per_event`. Fairness between connections here comes from
    /// netlib's per-event read budget instead; see the README.
    pub reqs_per_event: u32,
    /// Keep the `stats sizes` histogram from the start (`-o track_sizes`);
    /// `stats sizes_enable` turns it on later.
    pub track_sizes: bool,
    /// Length of the listening sockets' accept queues (`-b`, memcached's
    /// default 1024).
    pub backlog: u32,
    /// `-B auto` rather than `-B ascii`: memcached then tells binary from
    /// text requests by their first byte. Only `stats settings` differs
    /// here (`auto-negotiate`): the text protocol is the only one spoken,
    /// and a binary request closes its connection either way.
    pub binding_auto: bool,
    /// The Unix-domain socket served instead of TCP (`-s`), for `stats
    /// settings` and `stats conns`; the server binds it.
    pub domain_socket: Option<std::sync::Arc<std::path::Path>>,
    /// The permission bits of that socket's file (`-a`, octal; memcached's
    /// default 0700), reported by `stats settings` as `umask`.
    pub unix_mask: u32,
}

impl Config {
    /// The defaults with a memory limit of `megabytes` MiB, as `-m` takes it.
    pub fn with_memory_megabytes(megabytes: usize) -> Self {
        Config {
            memory_limit: megabytes.saturating_mul(1024 * 1024),
            ..Config::default()
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            memory_limit: DEFAULT_MEMORY_LIMIT,
            item_size_max: DEFAULT_ITEM_SIZE_MAX,
            shards: 1,
            threads: 1,
            max_connections: 1024,
            max_line: DEFAULT_MAX_LINE,
            max_multiget_line: 1024 * 1024,
            output_high_water: 4 * 1024 * 1024,
            max_get_response: 64 * 1024 * 1024,
            flush_enabled: true,
            shutdown_enabled: false,
            idle_timeout: None,
            evict: true,
            lru_crawler: true,
            reqs_per_event: 20,
            track_sizes: false,
            backlog: 1024,
            binding_auto: false,
            domain_socket: None,
            unix_mask: DEFAULT_UNIX_MASK,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_memcached() {
        let c = Config::default();
        assert_eq!(c.memory_limit, 64 << 20);
        assert_eq!(c.item_size_max, 1 << 20);
        assert_eq!(c.max_line, 2048);
        assert_eq!(Config::with_memory_megabytes(1).memory_limit, 1 << 20);
    }
}
