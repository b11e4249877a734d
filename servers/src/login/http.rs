//! The HTTP side of the login server: `GET /msg_server` answers with
//! TeamTalk's JSON, so mobile and web clients can find a message server
//! without speaking PDUs.
//!
//! It is an [`imconn::Server`] with imconn's [`HttpCodec`], the workspace's
//! one HTTP parser. A connection carries one request: it must arrive
//! complete within `HttpTimeoutMs` (a connection timer, so a slowloris peer
//! is closed, not kept), its head may not exceed `HttpMaxRequestBytes` (a
//! `Content-Length` body is read with it, up to 64 KiB in all), and after
//! the response the server half-closes and waits for the peer's
//! end-of-stream (or the same deadline) - TeamTalk's `Connection: close`
//! behaviour without resetting a peer whose input is still unread.
//!
//! | request | response |
//! |---|---|
//! | `GET`/`POST /msg_server[?...]` | 200, `{"code":0,"msg":"","priorIP":..}` or code 1/2 |
//! | another path | 404 |
//! | another method on `/msg_server` | 405 |
//! | not HTTP/1.x, head over the limit, bad `Content-Length` | 400 |
//!
//! The registry lives in the PDU server ([`LoginState`]); this server reads
//! it through [`Context::with_handler`], which is safe because the two
//! handlers never run at the same time.

use super::conn::{LoginConn, LoginState};
use super::registry::{MsgServerEntry, Refusal};
use super::settings::LoginSettings;
use imconn::http::{HttpCodec, HttpFrame, Reply, Request, Response};
use imconn::{
    Accepted, ConnConfig, ConnCtx, Connection, ImServer, Limits, Server, DEFAULT_MAX_FRAME,
};
use netlib::{CloseReason, Context, HandlerRef, TimerId};
use std::fmt::Write as _;
use std::time::Duration;

/// Appends `s` to `out` as a JSON string literal.
fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The JSON body of the `/msg_server` answer, keys in the order TeamTalk's
/// JsonCpp printed them. `port` is a string, as in TeamTalk.
///
/// ```
/// use servers::login::http::msg_server_json;
/// use servers::login::registry::Refusal;
/// assert_eq!(msg_server_json(Err(Refusal::AllFull), "", ""), r#"{"code":2,"msg":"负载过高"}"#);
/// ```
pub fn msg_server_json(
    choice: Result<&MsgServerEntry, Refusal>,
    msfs: &str,
    discovery: &str,
) -> String {
    let mut out = String::with_capacity(256);
    match choice {
        Err(refusal) => {
            let msg = match refusal {
                Refusal::NoMsgServer => "没有msg_server",
                Refusal::AllFull => "负载过高",
            };
            let _ = write!(out, "{{\"code\":{},\"msg\":", refusal as i32);
            json_string(&mut out, msg);
            out.push('}');
        }
        Ok(e) => {
            out.push_str("{\"backupIP\":");
            json_string(&mut out, &e.ip2);
            out.push_str(",\"code\":0,\"discovery\":");
            json_string(&mut out, discovery);
            out.push_str(",\"msfsBackup\":");
            json_string(&mut out, msfs);
            out.push_str(",\"msfsPrior\":");
            json_string(&mut out, msfs);
            out.push_str(",\"msg\":\"\",\"port\":");
            json_string(&mut out, &e.port.to_string());
            out.push_str(",\"priorIP\":");
            json_string(&mut out, &e.ip1);
            out.push('}');
        }
    }
    out
}

/// What the HTTP connections share.
pub struct HttpShared {
    login: HandlerRef,
    timeout: Duration,
    max_conns: usize,
    msfs: String,
    discovery: String,
    /// Connections open now.
    pub connections: usize,
}

/// The HTTP connection server of a login server. See the module docs.
pub struct HttpServer;

impl HttpServer {
    /// Registers a server answering from the registry of the PDU server
    /// `login`; listen with the returned reference.
    pub fn register(ctx: &mut Context, login: HandlerRef, settings: &LoginSettings) -> HandlerRef {
        let shared = HttpShared {
            login,
            timeout: settings.http_timeout,
            max_conns: settings.max_http_conns,
            msfs: settings.msfs.clone(),
            discovery: settings.discovery.clone(),
            connections: 0,
        };
        let codec = HttpCodec::new(settings.http_max_request);
        let config = ConnConfig {
            limits: Limits {
                high_water: 64 * 1024,
                hard_cap: 1024 * 1024,
                read_chunk: 16 * 1024,
            },
            max_frame: DEFAULT_MAX_FRAME.max(settings.http_max_request),
            ..ConnConfig::default()
        };
        Server::<HttpConn>::register_with_codec(ctx, shared, codec, move |s, _: &Accepted| {
            if s.connections >= s.max_conns {
                log::warn!("login: http connection refused, {} open", s.connections);
                return None;
            }
            s.connections += 1;
            Some((
                HttpConn {
                    deadline: None,
                    answered: false,
                },
                config,
            ))
        })
    }
}

/// The answer to `req`.
fn answer(ctx: &mut Context, shared: &HttpShared, req: &Request<'_>) -> Response<'static> {
    const TEXT: &str = "text/plain; charset=utf-8";
    if req.path != "/msg_server" {
        log::info!("login: http {} {}: not found", req.method, req.path);
        return Response::new(404, TEXT, &b"not found\n"[..]);
    }
    if req.method != "GET" && req.method != "POST" {
        return Response::new(405, TEXT, &b"method not allowed\n"[..])
            .with_headers("Allow: GET, POST\r\n");
    }
    let body = ctx
        .with_handler(shared.login, |s: &mut ImServer<LoginConn>, _| {
            let state: &mut LoginState = &mut s.shared;
            msg_server_json(state.registry.choose(), &shared.msfs, &shared.discovery)
        })
        .unwrap_or_else(|| msg_server_json(Err(Refusal::NoMsgServer), "", ""));
    log::debug!("login: http {} {} -> {body}", req.method, req.path);
    // TeamTalk's content type, which its clients expect.
    Response::new(200, "text/html;charset=utf-8", body.into_bytes())
}

/// One HTTP connection.
pub struct HttpConn {
    deadline: Option<TimerId>,
    /// The response went out; input is now discarded.
    answered: bool,
}

impl Connection for HttpConn {
    type Codec = HttpCodec;
    type Shared = HttpShared;

    fn on_connect(&mut self, cx: &mut ConnCtx<'_, Self>) {
        self.deadline = cx.add_timer(cx.shared.timeout, None);
    }

    fn on_frame(&mut self, cx: &mut ConnCtx<'_, Self>, frame: HttpFrame<'_>) {
        if self.answered {
            return;
        }
        let response = match frame {
            HttpFrame::Request(req) => answer(cx.ctx, cx.shared, &req),
            HttpFrame::Bad(bad) => {
                log::warn!(
                    "login: http {} {} bad request: {bad}",
                    cx.handle(),
                    crate::runtime::addr_or_unknown(cx.peer())
                );
                Response::bad_request()
            }
            HttpFrame::Discard => return,
        };
        self.answered = true;
        let reply = Reply {
            response: &response,
            keep_alive: false,
            head_only: false,
        };
        if cx.send(reply).is_ok() {
            cx.close_after_flush();
        }
    }

    fn on_timer(&mut self, cx: &mut ConnCtx<'_, Self>, id: TimerId) {
        if self.deadline == Some(id) {
            log::info!(
                "login: http {} {} closed: no complete exchange within {:?}",
                cx.handle(),
                crate::runtime::addr_or_unknown(cx.peer()),
                cx.shared.timeout
            );
            cx.close();
        }
    }

    fn on_close(&mut self, cx: &mut ConnCtx<'_, Self>, _reason: CloseReason) {
        cx.shared.connections -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_matches_teamtalk() {
        let e = MsgServerEntry {
            ip1: "1.2.3.4".into(),
            ip2: "5.6.7.8".into(),
            port: 8000,
            max_conn_cnt: 10,
            cur_conn_cnt: 0,
            host_name: "h".into(),
        };
        assert_eq!(
            msg_server_json(Ok(&e), "http://m/", "http://d\"/"),
            r#"{"backupIP":"5.6.7.8","code":0,"discovery":"http://d\"/","msfsBackup":"http://m/","msfsPrior":"http://m/","msg":"","port":"8000","priorIP":"1.2.3.4"}"#
        );
        assert_eq!(
            msg_server_json(Err(Refusal::NoMsgServer), "", ""),
            r#"{"code":1,"msg":"没有msg_server"}"#
        );
        let mut s = String::new();
        json_string(&mut s, "a\u{1}\n");
        assert_eq!(s, r#""a\u0001\n""#);
    }
}
