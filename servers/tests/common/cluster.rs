//! Several msg_servers as one service for a test: a database of its own on
//! a temporary PostgreSQL, one nats-server, `n` msg_servers using both.
//!
//! Starting PostgreSQL (initdb) is most of a cluster test's time, so the
//! tests of one binary running at once share one server, each with a
//! database of its own; it stops when the last of them ends. NATS is not
//! shared: its subjects (`im.user.<id>`, `im.group`) would mix the tests'
//! users. Also the status query (0x020a) and waiting until two servers
//! hear each other.

use super::nats::Nats;
use super::pg::TempPostgres;
use super::{ask, eventually, msg_server, users_file, Proc, T};
use pdu::proto::{ImUsersStatReq, ImUsersStatRsp, UserStatType};
use servers::client::ImClient;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};

/// The PostgreSQL server of the tests running now (a new one if none is).
fn shared_postgres() -> Arc<TempPostgres> {
    static PG: Mutex<Weak<TempPostgres>> = Mutex::new(Weak::new());
    let mut slot = PG.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(pg) = slot.upgrade() {
        return pg;
    }
    let pg = Arc::new(TempPostgres::start());
    *slot = Arc::downgrade(&pg);
    pg
}

/// A fresh database on the shared server: its connection string.
fn fresh_database(pg: &TempPostgres) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let name = format!("im_{}", N.fetch_add(1, Ordering::Relaxed));
    let mut c = postgres::Client::connect(&pg.url_of("postgres"), postgres::NoTls)
        .expect("connect to the temporary postgres");
    c.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    pg.url_of(&name)
}

/// A database of its own, a NATS server and msg_servers using both.
pub struct Cluster {
    _pg: Arc<TempPostgres>,
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
    cluster_via(users, n, Nats::start(), |_, addr| addr)
}

/// `n` msg_servers for the users file at `users`, server `i` reaching
/// `nats` at `nats_for(i, its address)`: through a
/// [`CutProxy`](testkit::proxy::CutProxy), for one server to lose NATS
/// alone.
pub fn cluster_via(
    users: &std::path::Path,
    n: usize,
    nats: Nats,
    nats_for: impl Fn(usize, SocketAddr) -> SocketAddr,
) -> Cluster {
    let pg = shared_postgres();
    let url = fresh_database(&pg);
    let servers = (0..n)
        .map(|i| {
            let addr = nats_for(i, nats.addr).to_string();
            msg_server(users, None, &cluster_args(&url, &addr))
        })
        .collect();
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

/// `ids`' status as `c`'s server tells it (0x020a): online or not.
pub fn online(c: &mut ImClient, ids: &[u32]) -> Vec<bool> {
    let req = ImUsersStatReq {
        user_id: c.user_id,
        user_id_list: ids.to_vec(),
        attach_data: None,
    };
    let rsp: ImUsersStatRsp = ask(
        c,
        pdu::sid::BUDDY_LIST,
        pdu::cid::buddy::USERS_STATUS_REQUEST,
        &req,
        pdu::cid::buddy::USERS_STATUS_RESPONSE,
    );
    assert_eq!(
        rsp.user_stat_list
            .iter()
            .map(|s| s.user_id)
            .collect::<Vec<_>>(),
        ids
    );
    rsp.user_stat_list
        .iter()
        .map(|s| s.status == UserStatType::UserStatusOnline as i32)
        .collect()
}

/// Waits until both servers, of `x` and of `y`, hear each other over NATS
/// (each tells the other's user online): what one announces from now on
/// reaches the other at once. (What is announced while a server's link is
/// still connecting reaches it when the link is up: presence and department
/// status at the refresh it asks for, group changes and its online users'
/// mailboxes read back from the database.)
pub fn linked(x: &mut ImClient, y: &mut ImClient) {
    let (xi, yi) = (x.user_id, y.user_id);
    eventually("both servers linked over NATS", T, || {
        online(x, &[yi]) == [true] && online(y, &[xi]) == [true]
    });
}
