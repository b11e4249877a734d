//! [`NodeConfig`]: the cluster's timers, plus the settings of the node's
//! msgcenter, all settable as `key=value` (`--set` on the command line).

use std::time::Duration;

/// Timers of a Reg, an Exe or a publisher, and their message center.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// An executor not heard from for this long is removed and its tasks
    /// reassigned (`lease_ms`, Reg). Default 3 s.
    pub lease: Duration,
    /// How often an executor sends its state to Reg (`heartbeat_ms`, Exe).
    /// Must be well below `lease`. Default 500 ms.
    pub heartbeat: Duration,
    /// How often a publisher publishes its unfinished tasks again
    /// (`republish_ms`); Reg ignores tasks it knows, so this only matters
    /// after Reg lost them (restart). Default 2 s.
    pub republish: Duration,
    /// After starting, Reg waits this long for executors to re-register
    /// (and report their running tasks) before it assigns anything
    /// (`grace_ms`). Default: `lease`.
    pub grace: Option<Duration>,
    /// Largest shuffle input a reducer holds, in bytes (`max_shuffle_bytes`).
    /// Default 256 MiB.
    pub max_shuffle_bytes: usize,
    /// Largest task input or result a publisher keeps (`max_task_bytes`),
    /// raising the msgcenter `max_body` to fit. Default 1 MiB - 1 KiB.
    pub max_task_bytes: usize,
    /// Most unfinished tasks Reg holds, and most tasks an executor
    /// accepts at once (`max_tasks`); past it PUBLISH and ASSIGN are
    /// refused (logged; publishers publish again later). Default 1,000,000.
    pub max_tasks: usize,
    /// File transfer: bytes per chunk (`file_chunk`). Default 256 KiB.
    pub file_chunk: usize,
    /// File transfer: chunks sent and not yet acknowledged (`file_window`).
    /// Default 8.
    pub file_window: usize,
    /// File transfer: a transfer from which nothing arrived for this long
    /// is asked for again from its first missing chunk
    /// (`file_inactivity_ms`). Default 5 minutes (the seed's timeout).
    pub file_inactivity: Duration,
    /// File transfer: requests per transfer before it fails
    /// (`file_attempts`). Default 5.
    pub file_attempts: u32,
    /// File transfer: files an executor sends at once (`max_file_senders`).
    /// Default 4.
    pub max_file_senders: usize,
    /// The node's message center.
    pub center: msgcenter::Config,
}

impl Default for NodeConfig {
    fn default() -> Self {
        let defaults = msgcenter::Config::default();
        // Cluster peers come and go; find out within a couple of seconds.
        let center = msgcenter::Config {
            heartbeat: Duration::from_millis(500),
            dead_after: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(2),
            handshake_timeout: Duration::from_secs(2),
            reconnect_max: Duration::from_secs(1),
            retry: msgcenter::Retry {
                interval: Duration::from_millis(300),
                max_retries: 100,
                deadline: Duration::from_secs(20),
            },
            ..defaults
        };
        NodeConfig {
            lease: Duration::from_secs(3),
            heartbeat: Duration::from_millis(500),
            republish: Duration::from_secs(2),
            grace: None,
            max_shuffle_bytes: 256 << 20,
            max_task_bytes: (1 << 20) - 1024,
            max_tasks: 1_000_000,
            file_chunk: 256 * 1024,
            file_window: 8,
            file_inactivity: Duration::from_secs(300),
            file_attempts: 5,
            max_file_senders: 4,
            center,
        }
    }
}

impl NodeConfig {
    /// Sets a cluster key or, failing that, a msgcenter key.
    ///
    /// ```
    /// let mut c = cluster::NodeConfig::default();
    /// c.set("lease_ms", "1500").unwrap();
    /// c.set("retry_interval_ms", "100").unwrap(); // msgcenter's
    /// assert_eq!(c.lease.as_millis(), 1500);
    /// assert!(c.set("nope", "1").is_err());
    /// ```
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), String> {
        let ms = || {
            value
                .trim()
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{key}: cannot parse {value:?}"))
        };
        let num = || {
            value
                .trim()
                .parse::<usize>()
                .map_err(|_| format!("{key}: cannot parse {value:?}"))
        };
        match key {
            "lease_ms" => self.lease = ms()?,
            "exe_heartbeat_ms" => self.heartbeat = ms()?,
            "republish_ms" => self.republish = ms()?,
            "grace_ms" => self.grace = Some(ms()?),
            "max_shuffle_bytes" => self.max_shuffle_bytes = num()?,
            "max_tasks" => self.max_tasks = num()?,
            "file_chunk" => self.file_chunk = num()?,
            "file_window" => self.file_window = num()?,
            "file_inactivity_ms" => self.file_inactivity = ms()?,
            "file_attempts" => self.file_attempts = num()? as u32,
            "max_file_senders" => self.max_file_senders = num()?,
            "max_task_bytes" => {
                self.max_task_bytes = num()?;
                self.center.max_body = (self.max_task_bytes + 1024).max(self.center.max_body);
            }
            _ => self.center.set(key, value).map_err(|e| e.to_string())?,
        }
        Ok(())
    }

    /// Sets `key=value`.
    pub fn set_pair(&mut self, pair: &str) -> Result<(), String> {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("{pair:?}: expected key=value"))?;
        self.set(k.trim(), v)
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            return Err("exe_heartbeat_ms must be above 0 and at most half of lease_ms".into());
        }
        if self.republish.is_zero() {
            return Err("republish_ms must be above 0".into());
        }
        if self.file_chunk == 0 || self.file_chunk + 256 > self.center.max_body {
            return Err("file_chunk must be above 0 and leave 256 bytes below max_body".into());
        }
        if self.file_window == 0 || self.file_window > 1024 {
            return Err("file_window must be between 1 and 1024".into());
        }
        if self.file_window * self.file_chunk >= self.center.backlog_high {
            return Err("file_window * file_chunk must stay below backlog_high".into());
        }
        if self.file_inactivity.is_zero() || self.file_attempts == 0 {
            return Err("file_inactivity_ms and file_attempts must be above 0".into());
        }
        if self.max_task_bytes + 64 > self.center.max_body {
            return Err("max_task_bytes must leave 64 bytes below max_body".into());
        }
        self.center.validate().map_err(|e| e.to_string())
    }

    /// The grace period of a starting Reg.
    pub fn grace(&self) -> Duration {
        self.grace.unwrap_or(self.lease)
    }
}
