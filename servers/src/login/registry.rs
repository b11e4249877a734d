//! [`Registry`]: the message servers registered with this login server and
//! the choice of one for each client.
//!
//! A message server's link registers with `IMMsgServInfo` (addresses,
//! capacity, current load) and then reports every user arriving or leaving
//! with `IMUserCntUpdate`. The registry keeps one [`MsgServerEntry`] per link,
//! keyed by the link's handle: a second registration on the same link replaces
//! the entry, and closing the link removes it with its counts.
//!
//! [`Registry::choose`] picks the least loaded server that is below its
//! maximum. TeamTalk iterated a `std::map` and always returned the first of
//! equally loaded servers, so a fleet of idle servers sent every client to the
//! same one until its count moved; here ties rotate.
//!
//! Plain data, no I/O: owned by the login server's connection handler on the
//! loop thread, and unit-tested below without sockets.

use netlib::Handle;
use pdu::proto::{ImMsgServInfo, USER_CNT_DEC, USER_CNT_INC};
use std::fmt;

/// What a message server told us about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgServerEntry {
    /// First address clients should use (TeamTalk's `ip_addr1`, "prior").
    pub ip1: String,
    /// Second address (TeamTalk's `ip_addr2`, "backup").
    pub ip2: String,
    /// The port clients connect to.
    pub port: u16,
    /// Capacity: no client is sent here once `cur_conn_cnt` reaches it.
    pub max_conn_cnt: u32,
    /// Users connected now.
    pub cur_conn_cnt: u32,
    /// The machine's host name, for logs.
    pub host_name: String,
}

/// Why an `IMMsgServInfo` was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationError {
    /// The port does not fit in 16 bits (or is 0).
    BadPort(u32),
}

impl fmt::Display for RegistrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegistrationError::BadPort(p) => write!(f, "invalid msg_server port {p}"),
        }
    }
}

impl std::error::Error for RegistrationError {}

impl TryFrom<ImMsgServInfo> for MsgServerEntry {
    type Error = RegistrationError;

    fn try_from(info: ImMsgServInfo) -> Result<Self, Self::Error> {
        let port = u16::try_from(info.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or(RegistrationError::BadPort(info.port))?;
        Ok(MsgServerEntry {
            ip1: info.ip1,
            ip2: info.ip2,
            port,
            max_conn_cnt: info.max_conn_cnt,
            cur_conn_cnt: info.cur_conn_cnt,
            host_name: info.host_name,
        })
    }
}

/// Why no message server could be chosen; the discriminants are TeamTalk's
/// `ResultType` values (and the HTTP `code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No message server is registered (`REFUSE_REASON_NO_MSG_SERVER`).
    NoMsgServer = 1,
    /// Every registered server is at its maximum (`REFUSE_REASON_MSG_SERVER_FULL`).
    AllFull = 2,
}

/// Registered message servers, in registration order.
///
/// ```
/// use servers::login::registry::{MsgServerEntry, Refusal, Registry};
/// # let mut dispatch = netlib::EventDispatch::new().unwrap();
/// # let ctx = dispatch.context();
/// # let link = ctx.create_socket(|_: &mut netlib::Context, _, _| {});
/// let mut reg = Registry::default();
/// assert_eq!(reg.choose().unwrap_err(), Refusal::NoMsgServer);
/// reg.register(link, MsgServerEntry {
///     ip1: "10.0.0.1".into(), ip2: "10.0.0.2".into(), port: 8000,
///     max_conn_cnt: 100, cur_conn_cnt: 0, host_name: "ms1".into(),
/// });
/// assert_eq!(reg.choose().unwrap().port, 8000);
/// ```
#[derive(Debug, Default)]
pub struct Registry {
    /// Few entries (one per message server): a vector keeps the order stable
    /// for rotation and is cheaper than a map at this size.
    entries: Vec<(Handle, MsgServerEntry)>,
    /// Advanced on every choice that had a tie, to rotate among equals.
    turn: usize,
}

impl Registry {
    /// Records (or replaces) the entry of link `link`.
    pub fn register(&mut self, link: Handle, entry: MsgServerEntry) {
        match self.entries.iter_mut().find(|(h, _)| *h == link) {
            Some((_, old)) => *old = entry,
            None => self.entries.push((link, entry)),
        }
    }

    /// Forgets link `link`; returns its entry if it had registered.
    pub fn remove(&mut self, link: Handle) -> Option<MsgServerEntry> {
        let i = self.entries.iter().position(|(h, _)| *h == link)?;
        Some(self.entries.remove(i).1)
    }

    /// Applies an `IMUserCntUpdate` action from link `link`: one user more
    /// ([`USER_CNT_INC`]) or fewer ([`USER_CNT_DEC`], never below zero).
    /// Returns the new count, or `None` if the link has not registered or the
    /// action is unknown.
    pub fn update_count(&mut self, link: Handle, action: u32) -> Option<u32> {
        let entry = self.get_mut(link)?;
        match action {
            USER_CNT_INC => entry.cur_conn_cnt = entry.cur_conn_cnt.saturating_add(1),
            USER_CNT_DEC => entry.cur_conn_cnt = entry.cur_conn_cnt.saturating_sub(1),
            _ => return None,
        }
        Some(entry.cur_conn_cnt)
    }

    /// The entry of link `link`.
    pub fn get(&self, link: Handle) -> Option<&MsgServerEntry> {
        self.entries
            .iter()
            .find(|(h, _)| *h == link)
            .map(|(_, e)| e)
    }

    fn get_mut(&mut self, link: Handle) -> Option<&mut MsgServerEntry> {
        self.entries
            .iter_mut()
            .find(|(h, _)| *h == link)
            .map(|(_, e)| e)
    }

    /// Number of registered servers.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no server is registered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Every entry, in registration order.
    pub fn iter(&self) -> impl Iterator<Item = (Handle, &MsgServerEntry)> {
        self.entries.iter().map(|(h, e)| (*h, e))
    }

    /// The least loaded server below its maximum; among equally loaded ones,
    /// each call takes the next in turn.
    pub fn choose(&mut self) -> Result<&MsgServerEntry, Refusal> {
        if self.entries.is_empty() {
            return Err(Refusal::NoMsgServer);
        }
        let available = || {
            self.entries
                .iter()
                .map(|(_, e)| e)
                .enumerate()
                .filter(|(_, e)| e.cur_conn_cnt < e.max_conn_cnt)
        };
        let least = available()
            .map(|(_, e)| e.cur_conn_cnt)
            .min()
            .ok_or(Refusal::AllFull)?;
        let tied = available().filter(|(_, e)| e.cur_conn_cnt == least).count();
        let pick = self.turn % tied;
        let index = available()
            .filter(|(_, e)| e.cur_conn_cnt == least)
            .nth(pick)
            .map(|(i, _)| i)
            .ok_or(Refusal::AllFull)?;
        if tied > 1 {
            self.turn = self.turn.wrapping_add(1);
        }
        Ok(&self.entries[index].1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlib::EventDispatch;

    fn entry(name: &str, cur: u32, max: u32) -> MsgServerEntry {
        MsgServerEntry {
            ip1: format!("{name}-1"),
            ip2: format!("{name}-2"),
            port: 8000,
            max_conn_cnt: max,
            cur_conn_cnt: cur,
            host_name: name.into(),
        }
    }

    /// Distinct handles from a real dispatcher (handles have no public constructor).
    fn handles(n: usize) -> (EventDispatch, Vec<Handle>) {
        let mut dispatch = EventDispatch::new().unwrap();
        let ctx = dispatch.context();
        let hs = (0..n)
            .map(|_| ctx.create_socket(|_: &mut netlib::Context, _, _| {}))
            .collect();
        (dispatch, hs)
    }

    fn chosen(reg: &mut Registry) -> String {
        reg.choose().unwrap().host_name.clone()
    }

    #[test]
    fn least_loaded_below_maximum_wins() {
        let (_d, h) = handles(3);
        let mut reg = Registry::default();
        reg.register(h[0], entry("a", 5, 10));
        reg.register(h[1], entry("b", 2, 10));
        reg.register(h[2], entry("c", 1, 1)); // full despite the lowest count
        for _ in 0..3 {
            assert_eq!(chosen(&mut reg), "b");
        }
    }

    #[test]
    fn ties_rotate() {
        let (_d, h) = handles(3);
        let mut reg = Registry::default();
        reg.register(h[0], entry("a", 0, 10));
        reg.register(h[1], entry("b", 0, 10));
        reg.register(h[2], entry("c", 3, 10));
        let picks: Vec<String> = (0..4).map(|_| chosen(&mut reg)).collect();
        assert_eq!(picks, ["a", "b", "a", "b"]);
    }

    #[test]
    fn refusals() {
        let (_d, h) = handles(2);
        let mut reg = Registry::default();
        assert_eq!(reg.choose().unwrap_err(), Refusal::NoMsgServer);
        reg.register(h[0], entry("a", 3, 3));
        reg.register(h[1], entry("b", 0, 0));
        assert_eq!(reg.choose().unwrap_err(), Refusal::AllFull);
        reg.update_count(h[0], USER_CNT_DEC);
        assert_eq!(chosen(&mut reg), "a");
    }

    #[test]
    fn counts_move_and_never_go_below_zero() {
        let (_d, h) = handles(3);
        let mut reg = Registry::default();
        reg.register(h[0], entry("a", 0, 10));
        reg.register(h[1], entry("b", 0, 10));
        assert_eq!(reg.update_count(h[0], USER_CNT_INC), Some(1));
        assert_eq!(chosen(&mut reg), "b");
        assert_eq!(reg.update_count(h[0], USER_CNT_DEC), Some(0));
        assert_eq!(reg.update_count(h[0], USER_CNT_DEC), Some(0));
        assert_eq!(reg.update_count(h[0], 99), None);
        assert_eq!(reg.update_count(h[2], USER_CNT_INC), None); // never registered
    }

    #[test]
    fn re_registration_replaces_and_close_removes() {
        let (_d, h) = handles(1);
        let mut reg = Registry::default();
        reg.register(h[0], entry("a", 0, 10));
        reg.register(h[0], entry("a2", 4, 10));
        assert_eq!(reg.len(), 1);
        assert_eq!(reg.get(h[0]).unwrap().cur_conn_cnt, 4);
        assert_eq!(reg.remove(h[0]).unwrap().host_name, "a2");
        assert!(reg.is_empty());
        assert_eq!(reg.remove(h[0]), None);
    }

    #[test]
    fn bad_ports_are_rejected() {
        let info = |port| ImMsgServInfo {
            port,
            ..Default::default()
        };
        assert!(MsgServerEntry::try_from(info(8000)).is_ok());
        assert_eq!(
            MsgServerEntry::try_from(info(70000)).unwrap_err(),
            RegistrationError::BadPort(70000)
        );
        assert!(MsgServerEntry::try_from(info(0)).is_err());
    }
}
