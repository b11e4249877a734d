//! msg_server's side of the login_server link's registration proof (see
//! [`login::link_auth`](crate::login::link_auth)): answer the login_server's
//! challenge with HMAC-SHA256 under `LoginServerKey`, then register.
//!
//! Without a key, msg_server registers as soon as the link is up (TeamTalk's
//! behaviour) and ignores challenges.

use super::MsgConn;
use imconn::ConnCtx;
use pdu::proto::{ImLinkChallenge, ImLinkProof};
use pdu::{cid, sid, Header, PduRef};

/// Sends `IMMsgServInfo` on the link (registration, with live counts).
fn register(cx: &mut ConnCtx<'_, MsgConn>) {
    let info = cx.shared.serv_info();
    let header = Header::new(sid::OTHER, cid::other::MSG_SERV_INFO);
    let _ = cx.send_pdu(&header, &info);
}

/// The link came up: register now unless a key must be proven first.
pub(super) fn on_link_up(cx: &mut ConnCtx<'_, MsgConn>) {
    if cx.shared.settings.login_key.is_none() {
        register(cx);
    }
}

/// A frame from a login_server: a challenge is answered (with a key) and
/// followed by the registration; everything else (heartbeats) is traffic
/// that keeps the link's idle deadline away.
pub(super) fn on_link_frame(cx: &mut ConnCtx<'_, MsgConn>, pdu: &PduRef<'_>) {
    if (pdu.service_id(), pdu.command_id()) != (sid::INTERNAL, cid::internal::LINK_CHALLENGE) {
        return;
    }
    let Some(key) = cx.shared.settings.login_key.clone() else {
        return;
    };
    let Ok(challenge) = pdu.decode_body::<ImLinkChallenge>() else {
        log::warn!("login_server link: undecodable challenge, closing");
        cx.close();
        return;
    };
    let proof = ImLinkProof {
        mac: key.proof(&challenge.nonce),
    };
    let _ = cx.send_pdu(
        &Header::new(sid::INTERNAL, cid::internal::LINK_PROOF),
        &proof,
    );
    register(cx);
}
