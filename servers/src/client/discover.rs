//! Finding a msg_server: ask a login_server over its TeamTalk client port
//! (`IMMsgServReq`) or its HTTP port (`GET /msg_server`).

use super::{decode, invalid, ImClient};
use pdu::proto::{ImMsgServReq, ImMsgServRsp};
use pdu::{cid, sid};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Asks a login_server (client port) which msg_server to use.
pub fn query_msg_server(login: SocketAddr, timeout: Duration) -> io::Result<SocketAddr> {
    let mut c = ImClient::connect(login, timeout)?;
    c.send_pdu(sid::LOGIN, cid::login::MSG_SERV_REQ, &ImMsgServReq {})?;
    let deadline = Instant::now() + timeout;
    loop {
        let pdu = c.recv_pdu(deadline)?;
        if pdu.command_id() != cid::login::MSG_SERV_RSP {
            continue;
        }
        let rsp: ImMsgServRsp = decode(&pdu)?;
        if rsp.result_code != 0 {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("login_server refused: result {}", rsp.result_code),
            ));
        }
        let ip = rsp.prior_ip.unwrap_or_default();
        let port = rsp.port.unwrap_or(0);
        return format!("{ip}:{port}")
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| invalid("no address in IMMsgServRsp"));
    }
}

/// Asks a login_server's HTTP port (`GET /msg_server`) which msg_server to
/// use, reading `priorIP` and `port` from TeamTalk's JSON answer.
pub fn query_msg_server_http(http: SocketAddr, timeout: Duration) -> io::Result<SocketAddr> {
    let mut s = TcpStream::connect_timeout(&http, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    write!(
        s,
        "GET /msg_server HTTP/1.1\r\nHost: {http}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    s.read_to_string(&mut response)?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or_else(|| invalid("no HTTP body"))?;
    let field = |name: &str| -> Option<String> {
        let at = body.find(&format!("\"{name}\""))?;
        let rest = body[at + name.len() + 2..]
            .trim_start()
            .strip_prefix(':')?
            .trim_start();
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        let end = rest.find(['"', ',', '}'])?;
        Some(rest[..end].to_string())
    };
    if field("code").as_deref() != Some("0") {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("login_server refused: {}", body.trim()),
        ));
    }
    let (ip, port) = field("priorIP")
        .zip(field("port"))
        .ok_or_else(|| invalid(format!("unexpected answer: {body}")))?;
    format!("{ip}:{port}")
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| invalid("no address in the answer"))
}
