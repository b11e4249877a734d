//! [`Config`]: every limit and timer of a center, with defaults safe for a
//! public port, checked by [`Config::validate`] before a center starts, and
//! settable by name ([`Config::set`], `key=value` like the servers' config
//! files) so programs can expose them on the command line.

use crate::message::Retry;
use std::net::SocketAddr;
use std::time::Duration;

/// A center's settings. See each field for its default.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen (`listen`). Default `127.0.0.1:0` (a free port).
    pub listen: SocketAddr,
    /// The address peers should use for this node, sent in the handshake
    /// and in every frame's `from` (`advertise`). Default: the bound
    /// listen address (an unspecified IP is replaced by the one a peer
    /// sees).
    pub advertise: Option<SocketAddr>,
    /// This node's id (`node_id`); default random per process start.
    /// Receivers deduplicate on (node id, message id): an application that
    /// assigns its own ids and re-posts them after a restart sets it.
    pub node_id: Option<u64>,
    /// Largest body sent or accepted, in bytes (`max_body`). Default 1 MiB.
    pub max_body: usize,
    /// Default retry schedule of NeedAck messages, and default deadline of
    /// every message (`retry_interval_ms`, `max_retries`, `deadline_ms`).
    /// Default: every 500 ms, 20 retries, 10 s.
    pub retry: Retry,
    /// How long handled NeedAck ids are remembered (`dedup_window_ms`);
    /// must cover the longest retry schedule. Default 60 s. Sent to peers,
    /// which stop retrying before it runs out.
    pub dedup_window: Duration,
    /// Most ids remembered at once (`dedup_max`). When full of ids younger
    /// than the window, new NeedAck messages are not handled (nor acked)
    /// until room frees up: the sender retries. Default 1,000,000.
    pub dedup_max: usize,
    /// Bytes held for one peer (queued, being written, awaiting ack) past
    /// which new posts to it fail with `Backlog` (`backlog_high`).
    /// Default 8 MiB.
    pub backlog_high: usize,
    /// Held bytes below which posts are accepted again (`backlog_low`).
    /// Default 4 MiB.
    pub backlog_low: usize,
    /// Bytes handed to a connection beyond what the kernel took, before
    /// the center stops feeding it (`send_window`); keeps urgent messages
    /// able to overtake. Default 256 KiB.
    pub send_window: usize,
    /// Connect timeout (`connect_timeout_ms`). Default 3 s.
    pub connect_timeout: Duration,
    /// Time from connect to a completed handshake (`handshake_timeout_ms`).
    /// Default 5 s.
    pub handshake_timeout: Duration,
    /// A heartbeat is sent after this long without sending
    /// (`heartbeat_ms`). Default 2 s.
    pub heartbeat: Duration,
    /// A peer silent this long is taken for dead and its connection closed
    /// (`dead_after_ms`). Default 10 s.
    pub dead_after: Duration,
    /// A connection with no messages either way and nothing held for this
    /// long is closed (`idle_close_ms`, 0 = never). Default 60 s.
    pub idle_close: Option<Duration>,
    /// First delay before reconnecting to a peer that has work waiting
    /// after a failed attempt, doubling to `reconnect_max`
    /// (`reconnect_min_ms`, `reconnect_max_ms`). Default 100 ms, 5 s.
    pub reconnect_min: Duration,
    /// See `reconnect_min`.
    pub reconnect_max: Duration,
    /// Threads running worker handlers (`workers`). Default 2 (started
    /// only if a worker handler is registered).
    pub workers: usize,
    /// Worker jobs queued or running before the center stops reading the
    /// connections that bring more (`max_worker_jobs`). Default 1024.
    pub max_worker_jobs: usize,
    /// Accepted connections open at once; more are refused (closed at
    /// once, logged) (`max_incoming`). Default 10,000.
    pub max_incoming: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise: None,
            node_id: None,
            max_body: 1024 * 1024,
            retry: Retry {
                interval: Duration::from_millis(500),
                max_retries: 20,
                deadline: Duration::from_secs(10),
            },
            dedup_window: Duration::from_secs(60),
            dedup_max: 1_000_000,
            backlog_high: 8 * 1024 * 1024,
            backlog_low: 4 * 1024 * 1024,
            send_window: 256 * 1024,
            connect_timeout: Duration::from_secs(3),
            handshake_timeout: Duration::from_secs(5),
            heartbeat: Duration::from_secs(2),
            dead_after: Duration::from_secs(10),
            idle_close: Some(Duration::from_secs(60)),
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(5),
            workers: 2,
            max_worker_jobs: 1024,
            max_incoming: 10_000,
        }
    }
}

/// A setting that is unknown, does not parse, or contradicts another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The keys [`Config::set`] knows, for help texts.
pub const KEYS: &[&str] = &[
    "listen",
    "advertise",
    "node_id",
    "max_body",
    "retry_interval_ms",
    "max_retries",
    "deadline_ms",
    "dedup_window_ms",
    "dedup_max",
    "backlog_high",
    "backlog_low",
    "send_window",
    "connect_timeout_ms",
    "handshake_timeout_ms",
    "heartbeat_ms",
    "dead_after_ms",
    "idle_close_ms",
    "reconnect_min_ms",
    "reconnect_max_ms",
    "workers",
    "max_worker_jobs",
    "max_incoming",
];

fn parse<T: std::str::FromStr>(key: &str, value: &str) -> Result<T, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError(format!("{key}: cannot parse {value:?}")))
}

impl Config {
    /// Sets one key (see [`KEYS`]) from text: `cfg.set("heartbeat_ms", "500")`.
    ///
    /// ```
    /// let mut cfg = msgcenter::Config::default();
    /// cfg.set("retry_interval_ms", "100").unwrap();
    /// assert_eq!(cfg.retry.interval.as_millis(), 100);
    /// assert!(cfg.set("no_such_key", "1").is_err());
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let ms = |v: &str| parse::<u64>(key, v).map(Duration::from_millis);
        match key {
            "listen" => self.listen = parse(key, value)?,
            "advertise" => self.advertise = Some(parse(key, value)?),
            "node_id" => self.node_id = Some(parse(key, value)?),
            "max_body" => self.max_body = parse(key, value)?,
            "retry_interval_ms" => self.retry.interval = ms(value)?,
            "max_retries" => self.retry.max_retries = parse(key, value)?,
            "deadline_ms" => self.retry.deadline = ms(value)?,
            "dedup_window_ms" => self.dedup_window = ms(value)?,
            "dedup_max" => self.dedup_max = parse(key, value)?,
            "backlog_high" => self.backlog_high = parse(key, value)?,
            "backlog_low" => self.backlog_low = parse(key, value)?,
            "send_window" => self.send_window = parse(key, value)?,
            "connect_timeout_ms" => self.connect_timeout = ms(value)?,
            "handshake_timeout_ms" => self.handshake_timeout = ms(value)?,
            "heartbeat_ms" => self.heartbeat = ms(value)?,
            "dead_after_ms" => self.dead_after = ms(value)?,
            "idle_close_ms" => {
                let d = ms(value)?;
                self.idle_close = (!d.is_zero()).then_some(d);
            }
            "reconnect_min_ms" => self.reconnect_min = ms(value)?,
            "reconnect_max_ms" => self.reconnect_max = ms(value)?,
            "workers" => self.workers = parse(key, value)?,
            "max_worker_jobs" => self.max_worker_jobs = parse(key, value)?,
            "max_incoming" => self.max_incoming = parse(key, value)?,
            _ => {
                return Err(ConfigError(format!(
                    "unknown key {key:?} (known: {})",
                    KEYS.join(", ")
                )))
            }
        }
        Ok(())
    }

    /// Sets `key=value`.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), ConfigError> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| ConfigError(format!("{pair:?}: expected key=value")))?;
        self.set(k.trim(), v)
    }

    /// Checks the settings against each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |m: &str| Err(ConfigError(m.to_string()));
        if self.max_body == 0 || self.max_body > u32::MAX as usize - 64 {
            return err("max_body must be between 1 and 4 GiB");
        }
        if self.retry.interval.is_zero() {
            return err("retry_interval_ms must be above 0");
        }
        if self.retry.deadline.is_zero() {
            return err("deadline_ms must be above 0");
        }
        if self.dedup_window < self.retry.deadline {
            return err(
                "dedup_window_ms must be at least deadline_ms (the longest retry schedule)",
            );
        }
        if self.dedup_window.as_millis() > u32::MAX as u128 {
            return err("dedup_window_ms must fit in 32 bits");
        }
        if self.dedup_max == 0 {
            return err("dedup_max must be above 0");
        }
        if self.backlog_low >= self.backlog_high {
            return err("backlog_low must be below backlog_high");
        }
        if self.send_window == 0 {
            return err("send_window must be above 0");
        }
        if self.heartbeat.is_zero() || self.dead_after <= self.heartbeat {
            return err("dead_after_ms must be above heartbeat_ms, and heartbeat_ms above 0");
        }
        if self.handshake_timeout.is_zero() || self.connect_timeout.is_zero() {
            return err("connect_timeout_ms and handshake_timeout_ms must be above 0");
        }
        if self.reconnect_min.is_zero() || self.reconnect_max < self.reconnect_min {
            return err("reconnect_min_ms must be above 0 and at most reconnect_max_ms");
        }
        if self.max_worker_jobs == 0 {
            return err("max_worker_jobs must be above 0");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_keys_all_settable() {
        Config::default().validate().unwrap();
        let mut c = Config::default();
        for key in KEYS {
            let value = match *key {
                "listen" | "advertise" => "127.0.0.1:9",
                _ => "7",
            };
            c.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
        }
        assert_eq!(c.idle_close, Some(Duration::from_millis(7)));
        c.set("idle_close_ms", "0").unwrap();
        assert_eq!(c.idle_close, None);
    }

    #[test]
    fn contradictions_are_refused() {
        let mut c = Config::default();
        c.set("dedup_window_ms", "1000").unwrap();
        assert!(c.validate().unwrap_err().0.contains("dedup_window_ms"));
        let mut c = Config::default();
        c.set_pair("backlog_low=9000000").unwrap();
        assert!(c.validate().is_err());
        assert!(c.set_pair("heartbeat_ms").is_err());
        assert!(c
            .set("max_body", "lots")
            .unwrap_err()
            .0
            .contains("max_body"));
    }
}
