//! One user's connection to msg_server: it logs in, then acks every
//! delivery and hands it to [`Gen::received`], and checks the server's acks
//! of its own messages. The last login starts the ladder; each login lets
//! the next connection start (see [`Gen::users_to_connect`]).

use crate::gen::{Gen, Phase, PAUSE};
use crate::report::out;
use imconn::{ConnCtx, Connection, PduCodec};
use netlib::{CloseReason, ConnectOptions};
use pdu::proto::{
    ClientType, ImLoginReq, ImLoginRes, ImMsgData, ImMsgDataAck, SessionType, UserStatType,
};
use pdu::{cid, sid, Header, PduRef};
use std::time::{Duration, Instant};

/// The salt of every user in the users file.
pub(crate) const SALT: &str = "imbench0salt";
/// The password of every user in the users file.
pub(crate) const PASSWORD: &str = "pw";

/// One user's connection; its counters are in [`Gen`].
pub(crate) struct User {
    pub(crate) user: u32,
    pub(crate) logged_in: bool,
}

pub(crate) fn opts() -> ConnectOptions {
    ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    }
}

impl Connection for User {
    type Codec = PduCodec;
    type Shared = Gen;

    fn on_confirm(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let user = self.user;
        let req = ImLoginReq {
            user_name: format!("u{user}"),
            password: servers::users::md5_hex(PASSWORD),
            online_status: UserStatType::UserStatusOnline as i32,
            client_type: ClientType::Windows as i32,
            client_version: Some("im_bench".into()),
        };
        let header = Header::new(sid::LOGIN, cid::login::REQ_USERLOGIN);
        if cx.send_pdu(&header, &req).is_err() {
            cx.shared
                .fail(cx.ctx, format!("user {user}: login send failed"));
        }
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, f: PduRef<'_>) {
        if cx.shared.error.is_some() {
            return;
        }
        if let Err(e) = self.frame(cx, f) {
            cx.shared.fail(cx.ctx, e);
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, reason: CloseReason) {
        let g = &mut *cx.shared;
        let user = self.user;
        g.by_user[self.user as usize] = None;
        if !matches!(g.phase, Phase::Done) && reason != CloseReason::Shutdown {
            g.fail(
                cx.ctx,
                format!("connection of user {user} closed: {reason}"),
            );
        }
    }
}

impl User {
    /// One frame from msg_server; acks to deliveries are batched by the
    /// server with the rest of this read's replies into one write.
    fn frame(&mut self, cx: &mut ConnCtx<'_, Self>, f: PduRef<'_>) -> Result<(), String> {
        let user = self.user;
        match (f.service_id(), f.command_id()) {
            (sid::MSG, cid::msg::DATA) => {
                let msg: ImMsgData = f
                    .decode_body()
                    .map_err(|e| format!("user {user}: bad IMMsgData: {e}"))?;
                // The time of the read that brought the frame: one clock
                // reading per read, not per frame.
                let now = cx
                    .io()
                    .last_recv
                    .saturating_duration_since(cx.shared.epoch)
                    .as_nanos() as u64;
                cx.shared.received(user, &msg, now)?;
                let ack = ImMsgDataAck {
                    user_id: user,
                    session_id: msg.from_user_id,
                    msg_id: msg.msg_id,
                    session_type: SessionType::Single as i32,
                };
                cx.send_pdu(&Header::new(sid::MSG, cid::msg::DATA_ACK), &ack)
                    .map_err(|e| format!("user {user}: ack send failed: {e}"))?;
            }
            (sid::MSG, cid::msg::DATA_ACK) => {
                let g = &mut *cx.shared;
                let (sent, acked) = (g.sent[user as usize], g.acked[user as usize]);
                if f.seq_num() != acked as u16 || acked >= sent {
                    return Err(format!(
                        "user {user}: server ack with seq {} but {acked} of {sent} sent were acked (acks out of order or unexpected)",
                        f.seq_num()
                    ));
                }
                g.acked[user as usize] += 1;
                if let Some(s) = &mut g.step {
                    s.acked += 1;
                }
            }
            (sid::LOGIN, cid::login::RES_USERLOGIN) => {
                let res: ImLoginRes = f.decode_body().unwrap_or_default();
                let id = res.user_info.as_ref().map_or(0, |u| u.user_id);
                if res.result_code != 0 || id != user || self.logged_in {
                    return Err(format!(
                        "user {user}: login refused or wrong (result {}, user id {id})",
                        res.result_code
                    ));
                }
                self.logged_in = true;
                self.logged_in_now(cx);
            }
            (sid::LOGIN, cid::login::KICK_USER) => {
                return Err(format!("user {user}: kicked by the server"));
            }
            _ => {}
        }
        Ok(())
    }

    /// Counts a login; at the last one reports and starts the ladder, before
    /// it starts the next connection.
    fn logged_in_now(&mut self, cx: &mut ConnCtx<'_, Self>) {
        let g = &mut *cx.shared;
        g.logged_in += 1;
        if g.logged_in == g.users {
            let secs = g.login_start.elapsed().as_secs_f64();
            out(&format!("im_login users {} secs {secs:.3}", g.users));
            g.phase = Phase::Pause(Instant::now() + PAUSE);
            return;
        }
        let config = g.config;
        for user in g.users_to_connect() {
            let conn = User {
                user,
                logged_in: false,
            };
            let addr = cx.shared.addrs[cx.shared.server_of(user)];
            let r = cx.connect(addr, &opts(), conn, config);
            if !cx.shared.connecting(cx.ctx, user, r) {
                return;
            }
        }
    }
}
