//! msg_server's settings: TeamTalk's `msgserver.conf` keys, their
//! defaults, and the checks that refuse bad values at startup.

use crate::config::{Config, ConfigError, Key};
use crate::users::Users;
use imconn::Timeouts;
use std::net::SocketAddr;
use std::time::Duration;

/// msg_server settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Client listen addresses (`ListenIP` list, `ListenPort`).
    pub listen: Vec<SocketAddr>,
    /// Addresses handed out by login_servers (`IpAddr1`, `IpAddr2`).
    pub ip1: String,
    /// Second address.
    pub ip2: String,
    /// Most client connections (`MaxConnCnt`).
    pub max_conns: u32,
    /// login_servers to register with (`LoginServerIPn`/`LoginServerPortn`).
    pub login_servers: Vec<SocketAddr>,
    /// Accounts.
    pub users: Users,
    /// Deadlines of client connections (`LoginTimeoutMs`, `ClientIdleMs`).
    pub client_timeouts: Timeouts,
    /// Deadlines of login_server links (`LinkHeartbeatMs`, `LinkIdleMs`).
    pub link_timeouts: Timeouts,
    /// First reconnect delay of login_server links (`LinkRetryMinMs`).
    pub link_retry_min: Duration,
    /// Output queued for one client connection beyond which it is closed
    /// (`ClientOutputMaxBytes`): a client that stops reading cannot make the
    /// server hold more for it. Its unacked deliveries go back to its
    /// offline queue.
    pub client_output_max: usize,
    /// Messages kept per offline user (`OfflineQueueMax`).
    pub offline_max: usize,
    /// Messages per second a connection may send, with a burst of twice that
    /// (`MsgRateLimit`).
    pub rate_limit: u32,
    /// How often to log statistics (`StatsIntervalSec`).
    pub stats_interval: Duration,
    /// Shared key to prove to login_servers (`LoginServerKey`; their
    /// `MsgServerKey`). With a key, registration waits for their challenge.
    pub login_key: Option<crate::login::link_auth::SharedKey>,
    /// Most users told of one user going on or off line
    /// (`StatusNotifyMax`; see `msg/buddy.rs`).
    pub status_notify_max: usize,
}

impl Settings {
    /// Reads TeamTalk's `msgserver.conf` keys; everything has a loopback default.
    pub fn from_config(c: &Config) -> Result<Settings, ConfigError> {
        let listen = c.listen_addrs("ListenIP", "ListenPort", 8000)?;
        // listen_addrs refuses an empty list, so there is a first address.
        let first_ip = listen
            .first()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let mut login_servers = Vec::new();
        for i in 1.. {
            let (Some(ip), Some(port)) = (
                c.get(&format!("LoginServerIP{i}")),
                c.get(&format!("LoginServerPort{i}")),
            ) else {
                break;
            };
            let addr = format!("{ip}:{port}");
            let addr = addr
                .parse::<SocketAddr>()
                .or_else(|_| format!("[{ip}]:{port}").parse())
                .map_err(|e| {
                    ConfigError(format!(
                        "bad value for LoginServerIP{i}/LoginServerPort{i}: {addr:?} ({e})"
                    ))
                })?;
            login_servers.push(addr);
        }
        let users = match c.get("UsersFile") {
            Some(path) => Users::load(std::path::Path::new(path)).map_err(ConfigError)?,
            None => {
                log::warn!("no UsersFile configured: nobody can log in");
                Users::default()
            }
        };
        let ms = |key: &str, default: u64| -> Result<Duration, ConfigError> {
            match c.get_or(key, default)? {
                0 => Err(ConfigError(format!(
                    "bad value for {key}: \"0\" (must be above 0)"
                ))),
                ms => Ok(Duration::from_millis(ms)),
            }
        };
        Ok(Settings {
            ip1: c.get("IpAddr1").unwrap_or(&first_ip).to_string(),
            ip2: c.get("IpAddr2").unwrap_or(&first_ip).to_string(),
            listen,
            max_conns: c.get_or("MaxConnCnt", 10_000)?,
            login_servers,
            users,
            client_timeouts: Timeouts {
                heartbeat: None,
                idle: Some(ms("ClientIdleMs", 120_000)?),
                login: Some(ms("LoginTimeoutMs", 15_000)?),
            },
            link_timeouts: Timeouts {
                heartbeat: Some(ms("LinkHeartbeatMs", 5_000)?),
                idle: Some(ms("LinkIdleMs", 30_000)?),
                login: None,
            },
            link_retry_min: ms("LinkRetryMinMs", 1_000)?,
            client_output_max: c.get_or("ClientOutputMaxBytes", 16 * 1024 * 1024)?,
            offline_max: c.get_or("OfflineQueueMax", 10_000)?,
            rate_limit: c.get_or("MsgRateLimit", 1_000)?,
            stats_interval: match c.get_or("StatsIntervalSec", 60)? {
                0 => {
                    return Err(ConfigError(
                        "bad value for StatsIntervalSec: \"0\" (must be above 0)".into(),
                    ))
                }
                secs => Duration::from_secs(secs),
            },
            status_notify_max: c.get_or("StatusNotifyMax", 1_000)?,
            login_key: crate::login::link_auth::SharedKey::from_config(c.get("LoginServerKey")),
        })
    }
}

/// Every key [`Settings::from_config`] reads, with its default, for
/// `msg_server --help` and for refusing unknown `--Key` flags.
pub const KEYS: &[Key] = &[
    Key {
        name: "ListenIP",
        default: "127.0.0.1",
        help: "';'-separated addresses for clients",
    },
    Key {
        name: "ListenPort",
        default: "8000",
        help: "client port",
    },
    Key {
        name: "IpAddr1",
        default: "first ListenIP",
        help: "address login_servers hand to clients",
    },
    Key {
        name: "IpAddr2",
        default: "first ListenIP",
        help: "second address handed to clients",
    },
    Key {
        name: "MaxConnCnt",
        default: "10000",
        help: "most client connections",
    },
    Key {
        name: "LoginServerIPN",
        default: "",
        help: "login_server N to register with (N = 1, 2, ...)",
    },
    Key {
        name: "LoginServerPortN",
        default: "",
        help: "its port",
    },
    Key {
        name: "UsersFile",
        default: "",
        help: "accounts file (servers/src/users.rs); none: nobody can log in",
    },
    Key {
        name: "LoginTimeoutMs",
        default: "15000",
        help: "close a client not logged in within this",
    },
    Key {
        name: "ClientIdleMs",
        default: "120000",
        help: "close a client silent this long",
    },
    Key {
        name: "LinkHeartbeatMs",
        default: "5000",
        help: "heartbeat a quiet login_server link",
    },
    Key {
        name: "LinkIdleMs",
        default: "30000",
        help: "drop a login_server link silent this long",
    },
    Key {
        name: "LinkRetryMinMs",
        default: "1000",
        help: "first reconnect delay of a login_server link",
    },
    Key {
        name: "ClientOutputMaxBytes",
        default: "16777216",
        help: "close a client with more unsent output than this",
    },
    Key {
        name: "OfflineQueueMax",
        default: "10000",
        help: "messages kept per offline user",
    },
    Key {
        name: "MsgRateLimit",
        default: "1000",
        help: "messages per second per connection (burst: twice that)",
    },
    Key {
        name: "LoginServerKey",
        default: "",
        help: "shared key proven to login_servers (their MsgServerKey); none: register at once",
    },
    Key {
        name: "StatusNotifyMax",
        default: "1000",
        help: "most users of a department told when one goes on or off line",
    },
    Key {
        name: "StatsIntervalSec",
        default: "60",
        help: "how often to log statistics",
    },
];
