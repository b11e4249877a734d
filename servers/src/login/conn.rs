//! The login server's PDU connections: clients asking for a message server,
//! and message servers registering and reporting their load.
//!
//! Both kinds are served by one [`ImServer<LoginConn>`](imconn::ImServer): it
//! owns the [`LoginState`] (the [`Registry`] and connection counts), and the
//! listener a socket was accepted on decides which kind of connection it is.
//!
//! - **Clients** (TeamTalk's `LOGIN_CONN_TYPE_CLIENT`) may send
//!   `IMMsgServReq` and heartbeats, nothing else. The answer echoes the
//!   request's `seq_num`; then, as in TeamTalk, the server is done with the
//!   client and half-closes once the answer is sent. TeamTalk never put these
//!   connections in a map, so a client that connected and said nothing stayed
//!   forever; here every client is counted (`MaxClientConns`) and closed after
//!   `ClientTimeoutMs` of silence. Anything else closes the client.
//! - **Message-server links** (`LOGIN_CONN_TYPE_MSG_SERV`) register with
//!   `IMMsgServInfo` and report users with `IMUserCntUpdate`. imconn sends a
//!   heartbeat when the link has been quiet for `MsgServerHeartbeatMs` and
//!   drops it after `MsgServerTimeoutMs` without traffic (heartbeats from the
//!   peer count as traffic and need no answer). A link must register within
//!   the same timeout. When a link closes, its registry entry goes with it.
//!   Links are accepted only from `MsgServerAllow` networks; each gets a
//!   challenge at once, and with `MsgServerKey` set its registration counts
//!   only after a valid proof ([`link_auth`]).
//!
//! A malformed frame or body closes only the connection that sent it.

use super::link_auth::{self, Cidr};
use super::registry::{MsgServerEntry, Refusal, Registry};
use super::settings::LoginSettings;
use imconn::{ConnConfig, ConnCtx, Connection, Limits, PduCodec, Timeouts};
use netlib::{CloseReason, Handle};
use pdu::proto::{
    ImLinkChallenge, ImLinkProof, ImMsgServInfo, ImMsgServReq, ImMsgServRsp, ImUserCntUpdate,
    ResultType,
};
use pdu::{cid, sid, Header, Message, PduRef};
use std::time::Duration;

/// How long an answered client may keep its end open before it is closed.
const ANSWERED_LINGER: Duration = Duration::from_secs(5);

/// Server-wide state of the login server's PDU connections.
#[derive(Debug)]
pub struct LoginState {
    /// The registered message servers.
    pub registry: Registry,
    client_listeners: Vec<Handle>,
    msg_server_listeners: Vec<Handle>,
    clients: usize,
    max_clients: usize,
    client_config: ConnConfig,
    link_config: ConnConfig,
    link_allow: Vec<Cidr>,
    link_key: Option<link_auth::SharedKey>,
}

impl LoginState {
    /// State for a server with `settings`; no listener is known yet.
    pub fn new(settings: &LoginSettings) -> LoginState {
        // A client gets one small answer: small output limits are plenty.
        let client_limits = Limits {
            high_water: 64 * 1024,
            hard_cap: 1024 * 1024,
            ..Limits::default()
        };
        LoginState {
            registry: Registry::default(),
            client_listeners: Vec::new(),
            msg_server_listeners: Vec::new(),
            clients: 0,
            max_clients: settings.max_client_conns,
            client_config: ConnConfig {
                limits: client_limits,
                timeouts: Timeouts {
                    heartbeat: None,
                    idle: Some(settings.client_timeout),
                    login: None,
                },
                max_frame: settings.max_frame_len as usize,
            },
            link_config: ConnConfig {
                timeouts: Timeouts {
                    heartbeat: Some(settings.msg_server_heartbeat),
                    idle: Some(settings.msg_server_timeout),
                    // "Logged in" means registered with IMMsgServInfo.
                    login: Some(settings.msg_server_timeout),
                },
                max_frame: settings.max_frame_len as usize,
                ..ConnConfig::server_link()
            },
            link_allow: settings.msg_server_allow.clone(),
            link_key: settings.msg_server_key.clone(),
        }
    }

    /// Tells the state which listeners accept which kind of connection.
    pub fn set_listeners(&mut self, clients: Vec<Handle>, msg_servers: Vec<Handle>) {
        self.client_listeners = clients;
        self.msg_server_listeners = msg_servers;
    }

    /// Client connections open now.
    pub fn client_count(&self) -> usize {
        self.clients
    }

    /// The accept callback of the [`ImServer`](imconn::ImServer): the kind of
    /// connection for a socket accepted on `listener`, or `None` to refuse it.
    /// Links from outside `MsgServerAllow` are refused.
    pub fn accept(
        &mut self,
        listener: Handle,
        peer: Option<std::net::SocketAddr>,
    ) -> Option<(LoginConn, ConnConfig)> {
        if self.msg_server_listeners.contains(&listener) {
            let allowed = peer.is_some_and(|p| self.link_allow.iter().any(|n| n.contains(p.ip())));
            if !allowed {
                log::warn!(
                    "login: msg_server link from {} refused: not in MsgServerAllow",
                    crate::runtime::addr_or_unknown(peer)
                );
                return None;
            }
            let link = LoginConn::MsgServer {
                nonce: None,
                proven: false,
            };
            return Some((link, self.link_config));
        }
        if self.client_listeners.contains(&listener) {
            if self.clients >= self.max_clients {
                log::warn!("login: client refused, {} connections open", self.clients);
                return None;
            }
            self.clients += 1;
            return Some((LoginConn::Client { answered: false }, self.client_config));
        }
        log::error!("login: connection from unknown listener {listener}");
        None
    }
}

/// One PDU connection of the login server.
#[derive(Debug)]
pub enum LoginConn {
    /// A client; `answered` once its `IMMsgServReq` got a response.
    Client {
        /// The response was sent; the connection is closing.
        answered: bool,
    },
    /// A message server's link.
    MsgServer {
        /// The challenge sent on this link.
        nonce: Option<[u8; link_auth::NONCE_LEN]>,
        /// A valid proof arrived (or no key is configured).
        proven: bool,
    },
}

impl Connection for LoginConn {
    type Codec = PduCodec;
    type Shared = LoginState;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let LoginConn::MsgServer { nonce, proven } = self else {
            return;
        };
        *proven = cx.shared.link_key.is_none();
        match link_auth::nonce() {
            Ok(n) => {
                *nonce = Some(n);
                let header = Header::new(sid::INTERNAL, cid::internal::LINK_CHALLENGE);
                let _ = cx.send_pdu(&header, &ImLinkChallenge { nonce: n.to_vec() });
            }
            Err(e) => {
                log::error!("login: msg_server link closed: cannot make a challenge: {e}");
                cx.close();
            }
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, pdu: PduRef<'_>) {
        match self {
            LoginConn::Client { answered } => handle_client_pdu(answered, cx, pdu),
            LoginConn::MsgServer { nonce, proven } => {
                if pdu.service_id() == sid::INTERNAL
                    && pdu.command_id() == cid::internal::LINK_PROOF
                {
                    check_proof(cx, nonce, proven, &pdu);
                } else if *proven
                    || pdu.service_id() == sid::OTHER && pdu.command_id() == cid::other::HEARTBEAT
                {
                    handle_link_pdu(cx, pdu);
                } else {
                    log::warn!(
                        "login: msg_server {} closed: command {:#06x} before proving MsgServerKey \
                         (is its LoginServerKey set to the same key?)",
                        crate::runtime::addr_or_unknown(cx.peer()),
                        pdu.command_id()
                    );
                    cx.close();
                }
            }
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        match self {
            LoginConn::Client { .. } => {
                cx.shared.clients = cx.shared.clients.saturating_sub(1);
            }
            LoginConn::MsgServer { .. } => {
                if let Some(e) = cx.shared.registry.remove(cx.handle()) {
                    log::info!(
                        "login: msg_server {} ({}:{}) gone: {reason}",
                        e.host_name,
                        e.ip1,
                        e.port
                    );
                }
            }
        }
    }
}

fn handle_client_pdu(answered: &mut bool, cx: &mut ConnCtx<'_, LoginConn>, pdu: PduRef<'_>) {
    match (pdu.service_id(), pdu.command_id()) {
        (sid::OTHER, cid::other::HEARTBEAT) => {}
        (sid::LOGIN, cid::login::MSG_SERV_REQ) if !*answered => {
            if pdu.decode_body::<ImMsgServReq>().is_err() {
                log::warn!(
                    "login: client {} sent a bad IMMsgServReq",
                    crate::runtime::addr_or_unknown(cx.peer())
                );
                cx.close();
                return;
            }
            let rsp = msg_serv_rsp(cx.shared.registry.choose());
            let header =
                Header::new(sid::LOGIN, cid::login::MSG_SERV_RSP).with_seq_num(pdu.seq_num());
            log::debug!(
                "login: client {} -> {rsp:?}",
                crate::runtime::addr_or_unknown(cx.peer())
            );
            *answered = true;
            if cx.send_pdu(&header, &rsp).is_ok() {
                // TeamTalk closes after answering: half-close once the answer
                // is out, and let the client's end-of-stream (or a short
                // linger) finish the close.
                cx.close_after_flush();
                let idle = cx.shared.client_config.timeouts.idle;
                cx.set_timeouts(Timeouts {
                    heartbeat: None,
                    idle: Some(idle.map_or(ANSWERED_LINGER, |d| d.min(ANSWERED_LINGER))),
                    login: None,
                });
            }
        }
        (sid::LOGIN, cid::login::MSG_SERV_REQ) => {} // already answered, closing
        (service, command) => {
            log::warn!(
                "login: client {} sent command {service:#06x}/{command:#06x} ({}), closing",
                crate::runtime::addr_or_unknown(cx.peer()),
                pdu::ids::command_name(service, command).unwrap_or("unknown")
            );
            cx.close();
        }
    }
}

/// The `IMMsgServRsp` for a choice.
pub fn msg_serv_rsp(choice: Result<&MsgServerEntry, Refusal>) -> ImMsgServRsp {
    match choice {
        Ok(e) => ImMsgServRsp {
            result_code: ResultType::RefuseReasonNone as i32,
            prior_ip: Some(e.ip1.clone()),
            backip_ip: Some(e.ip2.clone()),
            port: Some(u32::from(e.port)),
        },
        Err(refusal) => ImMsgServRsp {
            result_code: match refusal {
                Refusal::NoMsgServer => ResultType::RefuseReasonNoMsgServer as i32,
                Refusal::AllFull => ResultType::RefuseReasonMsgServerFull as i32,
            },
            ..Default::default()
        },
    }
}

fn decode<M: Message + Default>(cx: &mut ConnCtx<'_, LoginConn>, pdu: &PduRef<'_>) -> Option<M> {
    match pdu.decode_body::<M>() {
        Ok(m) => Some(m),
        Err(e) => {
            log::warn!(
                "login: msg_server {} sent an undecodable {:#06x}, closing: {e}",
                crate::runtime::addr_or_unknown(cx.peer()),
                pdu.command_id()
            );
            cx.close();
            None
        }
    }
}

/// Checks a link's `IMLinkProof`: one per link, against its challenge.
fn check_proof(
    cx: &mut ConnCtx<'_, LoginConn>,
    nonce: &mut Option<[u8; link_auth::NONCE_LEN]>,
    proven: &mut bool,
    pdu: &PduRef<'_>,
) {
    let Some(proof) = decode::<ImLinkProof>(cx, pdu) else {
        return;
    };
    let peer = crate::runtime::addr_or_unknown(cx.peer());
    let Some(key) = cx.shared.link_key.as_ref() else {
        log::debug!("login: msg_server {peer} sent a proof; no MsgServerKey is configured");
        return;
    };
    // The nonce is used once: a second proof on the link is refused.
    match nonce.take() {
        Some(n) if key.verify(&n, &proof.mac) => {
            log::info!("login: msg_server {peer} proved MsgServerKey");
            *proven = true;
        }
        Some(_) => {
            log::warn!("login: msg_server {peer} closed: wrong proof of MsgServerKey");
            cx.close();
        }
        None => {
            log::warn!("login: msg_server {peer} closed: proof sent twice");
            cx.close();
        }
    }
}

fn handle_link_pdu(cx: &mut ConnCtx<'_, LoginConn>, pdu: PduRef<'_>) {
    match (pdu.service_id(), pdu.command_id()) {
        (sid::OTHER, cid::other::HEARTBEAT) => {}
        (sid::OTHER, cid::other::MSG_SERV_INFO) => {
            let Some(info) = decode::<ImMsgServInfo>(cx, &pdu) else {
                return;
            };
            match MsgServerEntry::try_from(info) {
                Ok(entry) => {
                    log::info!(
                        "login: msg_server {} registered: {}/{}:{} {}/{} users",
                        entry.host_name,
                        entry.ip1,
                        entry.ip2,
                        entry.port,
                        entry.cur_conn_cnt,
                        entry.max_conn_cnt
                    );
                    cx.shared.registry.register(cx.handle(), entry);
                    cx.set_logged_in();
                }
                Err(e) => {
                    log::warn!(
                        "login: msg_server {} rejected: {e}",
                        crate::runtime::addr_or_unknown(cx.peer())
                    );
                    cx.close();
                }
            }
        }
        (sid::OTHER, cid::other::USER_CNT_UPDATE) => {
            let Some(update) = decode::<ImUserCntUpdate>(cx, &pdu) else {
                return;
            };
            match cx
                .shared
                .registry
                .update_count(cx.handle(), update.user_action)
            {
                Some(count) => log::debug!(
                    "login: msg_server {} user {} action {}: {count} users",
                    crate::runtime::addr_or_unknown(cx.peer()),
                    update.user_id,
                    update.user_action
                ),
                None => log::warn!(
                    "login: msg_server {} sent IMUserCntUpdate action {} before registering or with an unknown action; ignored",
                    crate::runtime::addr_or_unknown(cx.peer()),
                    update.user_action
                ),
            }
        }
        (service, command) => {
            // A newer msg_server may send more; TeamTalk logged and ignored.
            log::debug!(
                "login: msg_server {} sent unhandled command {service:#06x}/{command:#06x}",
                crate::runtime::addr_or_unknown(cx.peer())
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_teamtalk_result_codes() {
        assert_eq!(msg_serv_rsp(Err(Refusal::NoMsgServer)).result_code, 1);
        assert_eq!(msg_serv_rsp(Err(Refusal::AllFull)).result_code, 2);
        let e = MsgServerEntry {
            ip1: "a".into(),
            ip2: "b".into(),
            port: 8000,
            max_conn_cnt: 1,
            cur_conn_cnt: 0,
            host_name: "h".into(),
        };
        let rsp = msg_serv_rsp(Ok(&e));
        assert_eq!(rsp.result_code, 0);
        assert_eq!(rsp.prior_ip.as_deref(), Some("a"));
        assert_eq!(rsp.backip_ip.as_deref(), Some("b"));
        assert_eq!(rsp.port, Some(8000));
    }
}
