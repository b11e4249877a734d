//! A logged-in session: finding the msg_server, logging in, fetching the
//! user and group directory; why a session ends; reconnect backoff.

use crate::directory::Directory;
use crate::{user, Opts};
use pdu::proto::{ImGroupChangeMemberNotify, ImMsgData};
use servers::client::{query_msg_server, query_msg_server_http, ImClient, Peer};
use std::io;
use std::time::Duration;

/// Connect and read timeout of a session.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// A heartbeat goes out when nothing else was sent for this long.
pub const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long to wait for the answer to a query a server may not support
/// (history, groups): one that does not answer ignored the request.
pub const QUERY_WAIT: Duration = Duration::from_secs(3);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Why a session ended or could not start.
pub enum Failure {
    /// Worth retrying later: the network or a server is away.
    Lost(io::Error),
    /// Retrying cannot help: the password was refused, the user logged in
    /// elsewhere, a user or group does not exist. Ends the program.
    Fatal(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Lost(e)
    }
}

/// A logged-in connection and the directory of users and groups.
pub struct Session {
    pub client: ImClient,
    pub directory: Directory,
}

impl Session {
    /// Fetches the user's groups again (after a group change, or a message
    /// from a group not known yet). A server that does not answer is taken
    /// as one without groups.
    pub fn refresh_groups(&mut self) -> Result<(), Failure> {
        match self.client.groups(QUERY_WAIT) {
            Ok(groups) => self.directory.set_groups(groups),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                log::warn!("no answer to the group list; groups are shown by id");
            }
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// A user or - when `group` - one of our groups, by name or id (see
    /// [`Directory::resolve`]); a group not known is looked for again on
    /// the server (created or joined since the last fetch) before it is
    /// refused. Unknown: [`Failure::Fatal`] saying so.
    pub fn resolve(&mut self, who: &str, group: bool) -> Result<Peer, Failure> {
        if let Ok(peer) = self.directory.resolve(who, group) {
            return Ok(peer);
        }
        if group {
            self.refresh_groups()?;
        }
        self.directory.resolve(who, group).map_err(Failure::Fatal)
    }

    /// `m`'s line (see [`Directory::show_message`]); a message from a group
    /// not in the directory (created or joined since login) refreshes the
    /// groups first, so it is shown with its name.
    pub fn show_message(&mut self, m: &ImMsgData) -> Result<String, Failure> {
        let me = self.client.user_id;
        if let Peer::Group(g) = Peer::of_message(m, me) {
            if !self.directory.has_group(g) {
                self.refresh_groups()?;
            }
        }
        Ok(self.directory.show_message(me, m))
    }

    /// The line for a membership change, and the groups fetched again (we
    /// may have joined or left). The group is named as it was known before
    /// (one we left), or as fetched (one we just joined).
    pub fn show_group_change(&mut self, n: &ImGroupChangeMemberNotify) -> Result<String, Failure> {
        if !self.directory.has_group(n.group_id) {
            self.refresh_groups()?;
            return Ok(self.directory.show_group_change(n));
        }
        let line = self.directory.show_group_change(n);
        self.refresh_groups()?;
        Ok(line)
    }
}

/// Finds a msg_server, logs in and fetches the users and the user's groups.
pub fn session(o: &Opts) -> Result<Session, Failure> {
    let name = user(o);
    let addr = match (o.msg_server, o.http) {
        (Some(a), _) => a,
        (None, Some(http)) => query_msg_server_http(http, TIMEOUT)?,
        (None, None) => query_msg_server(o.login, TIMEOUT)?,
    };
    let mut client = ImClient::connect(addr, TIMEOUT)?;
    let res = client.login(name, &o.password, o.mobile, TIMEOUT)?;
    if res.result_code != 0 {
        return Err(Failure::Fatal(format!(
            "login refused: {} (result {})",
            res.result_string
                .as_deref()
                .unwrap_or("wrong user name or password"),
            res.result_code
        )));
    }
    let directory = Directory::new(client.all_users(TIMEOUT)?);
    let mut s = Session { client, directory };
    s.refresh_groups()?;
    Ok(s)
}

/// What a kicked client says before it stops.
pub fn kicked_text(o: &Opts) -> String {
    format!(
        "signed out: {} logged in elsewhere (not reconnecting)",
        user(o)
    )
}

/// Reconnect delays: 1 s, doubling up to 30 s; back to 1 s after a login.
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub fn new() -> Backoff {
        Backoff { next: RETRY_FIRST }
    }

    /// The next delay.
    pub fn take(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        d
    }
}

/// A request's answer; no answer in time (a server that ignored the
/// request) is said, not taken for a lost connection.
pub fn answered<T>(r: io::Result<T>) -> Result<T, Failure> {
    match r {
        Ok(v) => Ok(v),
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            Err(Failure::Fatal("the server did not answer".into()))
        }
        Err(e) => Err(e.into()),
    }
}
