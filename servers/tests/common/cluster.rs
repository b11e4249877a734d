//! Several msg_servers as one service for a test: one temporary
//! PostgreSQL, one nats-server, `n` msg_servers using both.

use super::nats::Nats;
use super::pg::TempPostgres;
use super::{msg_server, users_file, Proc};

/// A shared PostgreSQL, a NATS server and msg_servers using both.
pub struct Cluster {
    _pg: TempPostgres,
    /// The NATS server (replaced in outage tests).
    pub nats: Nats,
    /// The msg_servers.
    pub servers: Vec<Proc>,
}

/// `n` msg_servers for a users file of `users` accounts.
pub fn cluster(tag: &str, n: usize, users: u32) -> Cluster {
    cluster_with(&users_file(tag, users), n)
}

/// `n` msg_servers for the users file at `users`.
pub fn cluster_with(users: &std::path::Path, n: usize) -> Cluster {
    let pg = TempPostgres::start();
    let nats = Nats::start();
    let (url, addr) = (pg.url(), nats.addr.to_string());
    let args = cluster_args(&url, &addr);
    let servers = (0..n).map(|_| msg_server(users, None, &args)).collect();
    Cluster {
        _pg: pg,
        nats,
        servers,
    }
}

/// msg_server arguments for the shared database `url` and NATS at `nats`.
pub fn cluster_args<'a>(url: &'a str, nats: &'a str) -> [&'a str; 8] {
    [
        "--Store",
        "postgres",
        "--PostgresUrl",
        url,
        "--NatsAddr",
        nats,
        "--MsgRateLimit",
        "1000000",
    ]
}

impl Cluster {
    /// Client address of server `i`.
    pub fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.servers[i].addr("client")
    }
}

