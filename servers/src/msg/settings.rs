//! msg_server's settings: TeamTalk's `msgserver.conf` keys, their
//! defaults, and the checks that refuse bad values at startup.

use super::store::{Bounds, GroupCommit, GroupRecord};
use crate::config::{Config, ConfigError, Key};
use crate::users::Users;
use imconn::Timeouts;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Where messages are kept (`Store`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreKind {
    /// SQLite file `DbPath`, written by a thread of its own
    /// (`Store=sqlite`, the default).
    Sqlite {
        /// The database file (`DbPath`).
        path: PathBuf,
        /// `DbSynchronous=full` (default) or `normal`.
        sync_full: bool,
        /// How long a write waits for another process's lock
        /// (`DbBusyTimeoutMs`).
        busy_timeout: Duration,
        /// Operations per transaction and time between commits
        /// (`StoreBatchMax`, `StoreCommitIntervalUs`).
        commit: GroupCommit,
        /// How long a message's mailbox and session rows wait before they
        /// are written (`StoreDeferMs`).
        defer: std::time::Duration,
    },
    /// PostgreSQL database `PostgresUrl`, shared by several msg_servers,
    /// written by a thread of its own (`Store=postgres`).
    Postgres {
        /// libpq connection string or `postgresql://` URL (`PostgresUrl`).
        url: String,
        /// Operations per transaction and time between commits
        /// (`StoreBatchMax`, `StoreCommitIntervalUs`).
        commit: GroupCommit,
    },
    /// In memory, lost at exit (`Store=memory`): the comparator of
    /// benchmarks. Keeps `MemoryHistoryPerSession` messages per session.
    Memory {
        /// Messages of history kept per session.
        history_max: usize,
    },
}

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
    /// Normal groups (`GroupsFile`, format in the `groups` module).
    pub groups: Vec<GroupRecord>,
    /// Most groups, normal and temporary (`GroupsMax`).
    pub groups_max: usize,
    /// Most members of a group (`GroupMembersMax`).
    pub group_members_max: usize,
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
    /// NATS server routing messages between msg_servers (`NatsAddr`; none:
    /// a single msg_server).
    pub nats: Option<SocketAddr>,
    /// Where messages are kept (`Store`, `DbPath`, `DbSynchronous`,
    /// `DbBusyTimeoutMs`,
    /// `StoreBatchMax`, `StoreCommitIntervalUs`, `StoreDeferMs`,
    /// `MemoryHistoryPerSession`).
    pub store: StoreKind,
    /// What undelivered messages may hold, per user and in total
    /// (`OfflineQueueMax`, `MailboxMaxBytes`, `MailboxTotalMaxBytes`): past
    /// it, messages are refused.
    pub bounds: Bounds,
    /// Operations submitted to the store and not answered yet beyond which
    /// new messages are refused and connections with requests held back
    /// (`StoreInFlightMax`; `msg/limits.rs`).
    pub store_in_flight_max: usize,
    /// Largest frame a client may send, header included
    /// (`ClientMaxFrameBytes`); a larger one closes the connection.
    pub client_max_frame: usize,
    /// Unacknowledged deliveries per connection beyond which it is closed
    /// (`ConnUnackedMax`); they stay in the mailbox.
    pub unacked_max: usize,
    /// The same bound in bytes of message content (`ConnUnackedMaxBytes`).
    pub unacked_max_bytes: usize,
    /// Messages per second a connection may send, with a burst of twice that
    /// (`MsgRateLimit`); past it the connection is closed (`msg/limits.rs`).
    pub rate_limit: u32,
    /// Requests (queries and other commands but messages, acks and
    /// heartbeats) per second a connection may send, with a burst of twice
    /// that (`QueryRateLimit`); past it the server reads the connection no
    /// faster (`msg/limits.rs`).
    pub query_rate_limit: u32,
    /// Store operations of one connection's requests waiting for the store
    /// beyond which the server stops reading the connection until some are
    /// answered (`ConnQueryInFlightMax`).
    pub conn_query_in_flight_max: usize,
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
        let group_members_max = positive(c, "GroupMembersMax", 500)?;
        let groups = match c.get("GroupsFile") {
            Some(path) => {
                super::groups::load(std::path::Path::new(path), &users, group_members_max)
                    .map_err(ConfigError)?
            }
            None => Vec::new(),
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
            groups,
            groups_max: positive(c, "GroupsMax", 10_000)?,
            group_members_max,
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
            nats: match c.get("NatsAddr").unwrap_or("") {
                "" => None,
                a => Some(a.parse().map_err(|e| {
                    ConfigError(format!("bad value for NatsAddr: {a:?} ({e}; e.g. 127.0.0.1:4222)"))
                })?),
            },
            store: match c.get("Store").unwrap_or("sqlite") {
                "sqlite" => StoreKind::Sqlite {
                    path: PathBuf::from(c.get("DbPath").unwrap_or("msg_server.db")),
                    sync_full: match c.get("DbSynchronous").unwrap_or("full") {
                        "full" => true,
                        "normal" => false,
                        other => {
                            return Err(ConfigError(format!(
                                "bad value for DbSynchronous: {other:?} (full or normal)"
                            )))
                        }
                    },
                    busy_timeout: millis_or(
                        c,
                        "DbBusyTimeoutMs",
                        super::store::sqlite::DEFAULT_BUSY_TIMEOUT,
                    )?,
                    commit: group_commit(c)?,
                    defer: millis_or(c, "StoreDeferMs", super::store::sqlite::DEFAULT_DEFER)?,
                },
                "postgres" => StoreKind::Postgres {
                    url: match c.get("PostgresUrl") {
                        Some(u) if !u.is_empty() => u.to_string(),
                        _ => {
                            return Err(ConfigError(
                                "Store=postgres needs PostgresUrl (e.g. host=127.0.0.1 port=5432 user=im dbname=im)".into(),
                            ))
                        }
                    },
                    commit: group_commit(c)?,
                },
                "memory" => StoreKind::Memory {
                    history_max: positive(c, "MemoryHistoryPerSession", 1000)?,
                },
                other => {
                    return Err(ConfigError(format!(
                        "bad value for Store: {other:?} (sqlite, postgres or memory)"
                    )))
                }
            },
            bounds: Bounds {
                user_msgs: positive(c, "OfflineQueueMax", 10_000)?,
                user_bytes: positive(c, "MailboxMaxBytes", 16 * 1024 * 1024)?,
                total_bytes: positive(c, "MailboxTotalMaxBytes", 1024 * 1024 * 1024)?,
            },
            store_in_flight_max: positive(c, "StoreInFlightMax", 65_536)?,
            client_max_frame: match c.get_or("ClientMaxFrameBytes", 64 * 1024)? {
                n if n < 1024 => {
                    return Err(ConfigError(format!(
                        "bad value for ClientMaxFrameBytes: \"{n}\" (at least 1024)"
                    )))
                }
                n => n,
            },
            unacked_max: positive(c, "ConnUnackedMax", 10_000)?,
            unacked_max_bytes: positive(c, "ConnUnackedMaxBytes", 4 * 1024 * 1024)?,
            rate_limit: c.get_or("MsgRateLimit", 1_000)?,
            query_rate_limit: positive(c, "QueryRateLimit", 100)?.min(u32::MAX as usize) as u32,
            conn_query_in_flight_max: positive(c, "ConnQueryInFlightMax", 8)?,
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

/// `key` in milliseconds (0 allowed), `default` when absent.
fn millis_or(c: &Config, key: &str, default: Duration) -> Result<Duration, ConfigError> {
    let ms: u64 = c.get_or(key, default.as_millis() as u64)?;
    Ok(Duration::from_millis(ms))
}

/// `StoreBatchMax` and `StoreCommitIntervalUs`.
fn group_commit(c: &Config) -> Result<GroupCommit, ConfigError> {
    let default = GroupCommit::default();
    let interval_us: u64 =
        c.get_or("StoreCommitIntervalUs", default.interval.as_micros() as u64)?;
    if interval_us > 1_000_000 {
        return Err(ConfigError(format!(
            "bad value for StoreCommitIntervalUs: {interval_us} (0 to 1000000 microseconds)"
        )));
    }
    Ok(GroupCommit {
        batch_max: positive(c, "StoreBatchMax", default.batch_max)?,
        interval: Duration::from_micros(interval_us),
    })
}

/// `key` as a number above 0, `default` when absent.
fn positive(c: &Config, key: &str, default: usize) -> Result<usize, ConfigError> {
    match c.get_or(key, default)? {
        0 => Err(ConfigError(format!(
            "bad value for {key}: \"0\" (must be above 0)"
        ))),
        n => Ok(n),
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
        name: "GroupsFile",
        default: "",
        help: "normal groups, one a line: id name creator member,member,...",
    },
    Key {
        name: "GroupsMax",
        default: "10000",
        help: "most groups (normal and temporary); more are refused",
    },
    Key {
        name: "GroupMembersMax",
        default: "500",
        help: "most members of a group",
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
        name: "Store",
        default: "sqlite",
        help: "where messages are kept: sqlite (durable), postgres (shared by several msg_servers) or memory (lost at exit)",
    },
    Key {
        name: "DbPath",
        default: "msg_server.db",
        help: "SQLite database file (Store=sqlite)",
    },
    Key {
        name: "NatsAddr",
        default: "",
        help: "NATS server (ip:port) routing messages between msg_servers; empty: one msg_server",
    },
    Key {
        name: "PostgresUrl",
        default: "",
        help: "PostgreSQL connection string (Store=postgres), e.g. host=127.0.0.1 port=5432 user=im dbname=im",
    },
    Key {
        name: "DbSynchronous",
        default: "full",
        help: "full: commits survive a power cut; normal: a crash of the process",
    },
    Key {
        name: "DbBusyTimeoutMs",
        default: "5000",
        help: "how long a write waits for another process's lock on DbPath (e.g. an sqlite3 session in a transaction) before its batch is refused and the store is unavailable until a retry",
    },
    Key {
        name: "StoreBatchMax",
        default: "4096",
        help: "most store operations committed in one transaction",
    },
    Key {
        name: "StoreCommitIntervalUs",
        default: "2000",
        help: "least time between two store commits (microseconds; 0: none): what comes meanwhile joins the next commit, so a busy store commits fewer, larger transactions, at the price of up to this much more before an ack",
    },
    Key {
        name: "StoreDeferMs",
        default: "5000",
        help: "Store=sqlite: a message commits with its own row; its mailbox and session rows are written within this time, half of it's worth at once (none for a delivery acked meanwhile). After a crash, deliveries acked within this time are delivered again",
    },
    Key {
        name: "MemoryHistoryPerSession",
        default: "1000",
        help: "messages of history kept per session (Store=memory)",
    },
    Key {
        name: "StoreInFlightMax",
        default: "65536",
        help: "refuse messages, and hold back connections with requests, while this many operations wait for the store",
    },
    Key {
        name: "OfflineQueueMax",
        default: "10000",
        help: "undelivered messages kept per user; more are refused",
    },
    Key {
        name: "MailboxMaxBytes",
        default: "16777216",
        help: "undelivered bytes kept per user; more are refused",
    },
    Key {
        name: "MailboxTotalMaxBytes",
        default: "1073741824",
        help: "undelivered bytes kept for all users; more are refused",
    },
    Key {
        name: "ClientMaxFrameBytes",
        default: "65536",
        help: "largest frame a client may send (closed past it)",
    },
    Key {
        name: "ConnUnackedMax",
        default: "10000",
        help: "close a connection with this many unacknowledged deliveries",
    },
    Key {
        name: "ConnUnackedMaxBytes",
        default: "4194304",
        help: "close a connection with this many unacknowledged bytes",
    },
    Key {
        name: "MsgRateLimit",
        default: "1000",
        help: "messages per second per connection (burst: twice that); past it the connection is closed",
    },
    Key {
        name: "QueryRateLimit",
        default: "100",
        help: "requests (queries, group and buddy commands) per second per connection (burst: twice that); past it the connection is read no faster",
    },
    Key {
        name: "ConnQueryInFlightMax",
        default: "8",
        help: "store operations of one connection's requests in flight; past it the connection is not read until the store answers",
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
