//! [`LoginSettings`]: the login server's configuration, read from a
//! TeamTalk `loginserver.conf` ([`Config`]) with this port's additions.
//!
//! TeamTalk's keys and defaults:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `ClientListenIP` | `127.0.0.1` | `;`-separated addresses for clients (TCP, PDUs) |
//! | `ClientPort` | 8008 | |
//! | `HttpListenIP` | `127.0.0.1` | addresses for `GET /msg_server` |
//! | `HttpPort` | 8080 | |
//! | `MsgServerListenIP` | `127.0.0.1` | addresses message servers register on |
//! | `MsgServerPort` | 8100 | |
//! | `msfs` | `http://127.0.0.1:8700/` | file server URL returned over HTTP |
//! | `discovery` | `http://127.0.0.1/api/discovery` | discovery URL returned over HTTP |
//!
//! TeamTalk listened on `0.0.0.0` in its sample file; with no file at all
//! this port stays on loopback. The limits TeamTalk hard-coded (or lacked)
//! are keys too:
//!
//! | key | default | meaning |
//! |---|---|---|
//! | `ClientTimeoutMs` | 120000 | close a client silent this long (TeamTalk never tracked them) |
//! | `MaxClientConns` | 10000 | refuse client connections beyond this |
//! | `HttpTimeoutMs` | 10000 | a request must be complete (and answered) within this |
//! | `HttpMaxRequestBytes` | 8192 | larger request heads get 400 |
//! | `MaxHttpConns` | 10000 | refuse HTTP connections beyond this |
//! | `MsgServerHeartbeatMs` | 5000 | heartbeat a quiet msg_server link |
//! | `MsgServerTimeoutMs` | 30000 | drop a msg_server link silent this long |
//! | `MaxFrameBytes` | 65536 | largest PDU accepted on either TCP port |
//! | `MsgServerAllow` | `127.0.0.0/8;::1/128` | `;`-separated networks (CIDR) msg_servers may register from |
//! | `MsgServerKey` | (none) | shared key msg_servers must prove (HMAC-SHA256, see [`link_auth`](super::link_auth)); msg_server's `LoginServerKey` |

use super::link_auth::{parse_cidrs, Cidr, SharedKey};
use crate::config::{Config, ConfigError, Key};
use std::net::SocketAddr;
use std::time::Duration;

/// Everything the login server needs to start.
#[derive(Debug, Clone)]
pub struct LoginSettings {
    /// Where clients ask for a message server over TCP.
    pub client_addrs: Vec<SocketAddr>,
    /// Where clients ask over HTTP.
    pub http_addrs: Vec<SocketAddr>,
    /// Where message servers register.
    pub msg_server_addrs: Vec<SocketAddr>,
    /// The file server URL (`msfsPrior`/`msfsBackup` in the HTTP answer).
    pub msfs: String,
    /// The discovery URL in the HTTP answer.
    pub discovery: String,
    /// Idle limit of a client connection.
    pub client_timeout: Duration,
    /// Client connections beyond this are refused.
    pub max_client_conns: usize,
    /// Time allowed for an HTTP request to arrive and be answered.
    pub http_timeout: Duration,
    /// Largest HTTP request head.
    pub http_max_request: usize,
    /// HTTP connections beyond this are refused.
    pub max_http_conns: usize,
    /// Heartbeat interval on a quiet msg_server link.
    pub msg_server_heartbeat: Duration,
    /// Idle limit of a msg_server link.
    pub msg_server_timeout: Duration,
    /// Largest PDU accepted.
    pub max_frame_len: u32,
    /// Networks message servers may connect from.
    pub msg_server_allow: Vec<Cidr>,
    /// Shared key message servers must prove, if any.
    pub msg_server_key: Option<SharedKey>,
}

/// Every key [`LoginSettings::from_config`] reads, with its default, for
/// `login_server --help` and for refusing unknown `--Key` flags.
pub const KEYS: &[Key] = &[
    Key {
        name: "ClientListenIP",
        default: "127.0.0.1",
        help: "';'-separated addresses for clients (TCP, PDUs)",
    },
    Key {
        name: "ClientPort",
        default: "8008",
        help: "client port",
    },
    Key {
        name: "HttpListenIP",
        default: "127.0.0.1",
        help: "addresses for GET /msg_server",
    },
    Key {
        name: "HttpPort",
        default: "8080",
        help: "HTTP port",
    },
    Key {
        name: "MsgServerListenIP",
        default: "127.0.0.1",
        help: "addresses message servers register on",
    },
    Key {
        name: "MsgServerPort",
        default: "8100",
        help: "message server port",
    },
    Key {
        name: "msfs",
        default: "http://127.0.0.1:8700/",
        help: "file server URL returned over HTTP",
    },
    Key {
        name: "discovery",
        default: "http://127.0.0.1/api/discovery",
        help: "discovery URL returned over HTTP",
    },
    Key {
        name: "ClientTimeoutMs",
        default: "120000",
        help: "close a client silent this long",
    },
    Key {
        name: "MaxClientConns",
        default: "10000",
        help: "refuse client connections beyond this",
    },
    Key {
        name: "HttpTimeoutMs",
        default: "10000",
        help: "a request must be complete (and answered) within this",
    },
    Key {
        name: "HttpMaxRequestBytes",
        default: "8192",
        help: "larger request heads get 400",
    },
    Key {
        name: "MaxHttpConns",
        default: "10000",
        help: "refuse HTTP connections beyond this",
    },
    Key {
        name: "MsgServerHeartbeatMs",
        default: "5000",
        help: "heartbeat a quiet msg_server link",
    },
    Key {
        name: "MsgServerTimeoutMs",
        default: "30000",
        help: "drop a msg_server link silent this long",
    },
    Key {
        name: "MaxFrameBytes",
        default: "65536",
        help: "largest PDU accepted on either TCP port",
    },
    Key {
        name: "MsgServerAllow",
        default: "127.0.0.0/8;::1/128",
        help: "';'-separated networks (CIDR) message servers may register from",
    },
    Key {
        name: "MsgServerKey",
        default: "",
        help: "shared key message servers must prove (their LoginServerKey); none: not asked",
    },
];

impl Default for LoginSettings {
    fn default() -> Self {
        LoginSettings::from_config(&Config::default()).expect("defaults are valid")
    }
}

/// Loopback only.
const DEFAULT_ALLOW: &str = "127.0.0.0/8;::1/128";

fn millis(config: &Config, key: &str, default_ms: u64) -> Result<Duration, ConfigError> {
    let ms: u64 = config.get_or(key, default_ms)?;
    if ms == 0 {
        return Err(ConfigError(format!(
            "bad value for {key}: \"0\" (must be above 0)"
        )));
    }
    Ok(Duration::from_millis(ms))
}

impl LoginSettings {
    /// Reads the settings from parsed configuration; missing keys take the
    /// defaults in the module docs.
    pub fn from_config(config: &Config) -> Result<LoginSettings, ConfigError> {
        let max_frame_len: u32 = config.get_or("MaxFrameBytes", 64 * 1024)?;
        if (max_frame_len as usize) < pdu::HEADER_LEN {
            return Err(ConfigError(format!(
                "MaxFrameBytes must be at least {}",
                pdu::HEADER_LEN
            )));
        }
        Ok(LoginSettings {
            client_addrs: config.listen_addrs("ClientListenIP", "ClientPort", 8008)?,
            http_addrs: config.listen_addrs("HttpListenIP", "HttpPort", 8080)?,
            msg_server_addrs: config.listen_addrs("MsgServerListenIP", "MsgServerPort", 8100)?,
            msfs: config
                .get("msfs")
                .unwrap_or("http://127.0.0.1:8700/")
                .to_string(),
            discovery: config
                .get("discovery")
                .unwrap_or("http://127.0.0.1/api/discovery")
                .to_string(),
            client_timeout: millis(config, "ClientTimeoutMs", 120_000)?,
            max_client_conns: config.get_or("MaxClientConns", 10_000)?,
            http_timeout: millis(config, "HttpTimeoutMs", 10_000)?,
            http_max_request: config.get_or("HttpMaxRequestBytes", 8 * 1024)?,
            max_http_conns: config.get_or("MaxHttpConns", 10_000)?,
            msg_server_heartbeat: millis(config, "MsgServerHeartbeatMs", 5_000)?,
            msg_server_timeout: millis(config, "MsgServerTimeoutMs", 30_000)?,
            max_frame_len,
            msg_server_allow: parse_cidrs(config.get("MsgServerAllow").unwrap_or(DEFAULT_ALLOW))
                .map_err(|e| ConfigError(format!("bad value for MsgServerAllow: {e}")))?,
            msg_server_key: SharedKey::from_config(config.get("MsgServerKey")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teamtalk_defaults_on_loopback() {
        let s = LoginSettings::default();
        assert_eq!(s.client_addrs, ["127.0.0.1:8008".parse().unwrap()]);
        assert_eq!(s.http_addrs, ["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(s.msg_server_addrs, ["127.0.0.1:8100".parse().unwrap()]);
        assert_eq!(s.client_timeout, Duration::from_secs(120));
        assert_eq!(s.msg_server_timeout, Duration::from_secs(30));
        assert!(s.msg_server_allow[0].contains("127.0.0.1".parse().unwrap()));
        assert!(!s
            .msg_server_allow
            .iter()
            .any(|n| n.contains("10.0.0.1".parse().unwrap())));
        assert_eq!(s.msg_server_key, None);
    }

    #[test]
    fn reads_a_teamtalk_file() {
        let c = Config::parse(
            "ClientListenIP=0.0.0.0\nClientPort=18008\nHttpListenIP=127.0.0.1;::1\n\
             HttpPort=18080\nMsgServerListenIP=127.0.0.1\nMsgServerPort=18100\n\
             msfs=http://files/\ndiscovery=http://d/\nHttpTimeoutMs=500\n",
        )
        .unwrap();
        let s = LoginSettings::from_config(&c).unwrap();
        assert_eq!(s.client_addrs, ["0.0.0.0:18008".parse().unwrap()]);
        assert_eq!(s.http_addrs.len(), 2);
        assert_eq!(s.msfs, "http://files/");
        assert_eq!(s.discovery, "http://d/");
        assert_eq!(s.http_timeout, Duration::from_millis(500));
        let mut bad = c.clone();
        bad.set("ClientTimeoutMs", "0");
        assert!(LoginSettings::from_config(&bad).is_err());
        bad.set("ClientTimeoutMs", "soon");
        assert!(LoginSettings::from_config(&bad).is_err());
        let mut bad = c.clone();
        bad.set("MsgServerAllow", "10.0.0.0/40");
        assert!(LoginSettings::from_config(&bad).is_err());
    }
}
