//! A small blocking TeamTalk client: ask a login_server for a msg_server,
//! log in, send and receive messages with acknowledgements.
//!
//! Used by the `im_client` tool and by the end-to-end tests. It is a
//! client, one connection per thread, so plain blocking sockets with
//! timeouts keep it simple; the servers are the event-driven side.

use pdu::proto::{
    ClientType, ImAllUserReq, ImAllUserRsp, ImGetMsgListReq, ImGetMsgListRsp, ImHeartBeat,
    ImKickUser, ImLoginReq, ImLoginRes, ImMsgData, ImMsgDataAck, ImMsgServReq, ImMsgServRsp,
    ImUserStatNotify, MsgInfo, MsgType, SessionType, UserInfo, UserStat, UserStatType,
};
use pdu::{cid, sid, FrameDecoder, Header, Message, Pdu};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One connection speaking TeamTalk frames.
pub struct ImClient {
    stream: TcpStream,
    buf: Vec<u8>,
    seq: u16,
    /// The logged-in user's id (0 before login).
    pub user_id: u32,
    /// Message ids the server acknowledged for messages we sent.
    pub acked: Vec<u32>,
    last_send: Instant,
    /// Frames that arrived while [`call`](Self::call) waited for its answer.
    early: VecDeque<Pdu>,
}

/// Something the server pushed to a logged-in client.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A message (already acked to the server).
    Message(ImMsgData),
    /// A user went on or off line (`IMUserStatNotify`).
    Status(UserStat),
    /// This session was kicked (`IMKickUser`); the server closes it next.
    Kicked(ImKickUser),
}

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
        let rsp: ImMsgServRsp = pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
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

impl ImClient {
    /// Connects with `timeout` for connecting and for each read.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<ImClient> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(ImClient {
            stream,
            buf: Vec::new(),
            seq: 0,
            user_id: 0,
            acked: Vec::new(),
            last_send: Instant::now(),
            early: VecDeque::new(),
        })
    }

    /// The raw stream (tests send garbage through it).
    pub fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Sends one frame; returns its sequence number.
    pub fn send_pdu<M: Message>(&mut self, service: u16, command: u16, msg: &M) -> io::Result<u16> {
        self.seq = self.seq.wrapping_add(1);
        let header = Header::new(service, command).with_seq_num(self.seq);
        let pdu = Pdu::from_message(header, msg).map_err(|e| invalid(e.to_string()))?;
        self.stream.write_all(pdu.as_bytes())?;
        self.last_send = Instant::now();
        Ok(self.seq)
    }

    /// Reads the next frame, waiting until `deadline`.
    pub fn recv_pdu(&mut self, deadline: Instant) -> io::Result<Pdu> {
        if let Some(pdu) = self.early.pop_front() {
            return Ok(pdu);
        }
        self.read_pdu(deadline)
    }

    fn read_pdu(&mut self, deadline: Instant) -> io::Result<Pdu> {
        let decoder = FrameDecoder::new();
        loop {
            if let Some(frame) = decoder
                .decode(&self.buf)
                .map_err(|e| invalid(e.to_string()))?
            {
                let pdu = frame.to_pdu();
                let n = pdu.frame_len();
                self.buf.drain(..n);
                return Ok(pdu);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no frame in time"));
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 16 * 1024];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "server closed the connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                // A signal (a child process of the caller ending): read on.
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no frame in time"))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Logs in with the password as the person typed it (sent, as TeamTalk
    /// clients do, as its MD5 in lowercase hex); `Ok` carries the server's
    /// answer, whatever its result code.
    pub fn login(
        &mut self,
        user: &str,
        password: &str,
        mobile: bool,
        timeout: Duration,
    ) -> io::Result<ImLoginRes> {
        let req = ImLoginReq {
            user_name: user.into(),
            password: crate::users::md5_hex(password),
            online_status: UserStatType::UserStatusOnline as i32,
            client_type: if mobile {
                ClientType::Android
            } else {
                ClientType::Windows
            } as i32,
            client_version: Some(concat!("netlib-im_client/", env!("CARGO_PKG_VERSION")).into()),
        };
        self.send_pdu(sid::LOGIN, cid::login::REQ_USERLOGIN, &req)?;
        let deadline = Instant::now() + timeout;
        loop {
            let pdu = self.recv_pdu(deadline)?;
            if pdu.command_id() == cid::login::RES_USERLOGIN {
                let res: ImLoginRes = pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                if res.result_code == 0 {
                    self.user_id = res.user_info.as_ref().map_or(0, |u| u.user_id);
                }
                return Ok(res);
            }
        }
    }

    /// Sends a text message to user `to`; the ack arrives later (see
    /// [`wait_ack`](Self::wait_ack)).
    pub fn send_text(&mut self, to: u32, text: &str) -> io::Result<u16> {
        let msg = ImMsgData {
            from_user_id: self.user_id,
            to_session_id: to,
            msg_id: 0,
            create_time: 0,
            msg_type: MsgType::SingleText as i32,
            msg_data: text.as_bytes().to_vec(),
            attach_data: None,
        };
        self.send_pdu(sid::MSG, cid::msg::DATA, &msg)
    }

    /// Sends a heartbeat if nothing was sent for `every`.
    pub fn heartbeat_if_idle(&mut self, every: Duration) -> io::Result<()> {
        if self.last_send.elapsed() >= every {
            self.send_pdu(sid::OTHER, cid::other::HEARTBEAT, &ImHeartBeat {})?;
        }
        Ok(())
    }

    /// Sends a request and waits until `timeout` for the frame with command
    /// `answer`, decoded; frames arriving meanwhile are kept for
    /// [`next_event`](Self::next_event) and [`recv_pdu`](Self::recv_pdu).
    pub fn call<Q: Message, R: Message + Default>(
        &mut self,
        service: u16,
        command: u16,
        request: &Q,
        answer: u16,
        timeout: Duration,
    ) -> io::Result<R> {
        let seq = self.send_pdu(service, command, request)?;
        let deadline = Instant::now() + timeout;
        loop {
            let pdu = self.read_pdu(deadline)?;
            if pdu.command_id() == answer && pdu.seq_num() == seq {
                return pdu.decode_body().map_err(|e| invalid(e.to_string()));
            }
            self.early.push_back(pdu);
        }
    }

    /// Every account the server knows (`IMAllUserReq`, version 0).
    pub fn all_users(&mut self, timeout: Duration) -> io::Result<Vec<UserInfo>> {
        let req = ImAllUserReq {
            user_id: self.user_id,
            latest_update_time: 0,
            attach_data: None,
        };
        let rsp: ImAllUserRsp = self.call(
            sid::BUDDY_LIST,
            cid::buddy::ALL_USER_REQUEST,
            &req,
            cid::buddy::ALL_USER_RESPONSE,
            timeout,
        )?;
        Ok(rsp.user_list)
    }

    /// The newest `count` messages of the one-to-one session with `peer`
    /// (`IMGetMsgListReq`), oldest first.
    pub fn history(
        &mut self,
        peer: u32,
        count: u32,
        timeout: Duration,
    ) -> io::Result<Vec<MsgInfo>> {
        let req = ImGetMsgListReq {
            user_id: self.user_id,
            session_type: SessionType::Single as i32,
            session_id: peer,
            msg_id_begin: 0,
            msg_cnt: count,
            attach_data: None,
        };
        let rsp: ImGetMsgListRsp = self.call(
            sid::MSG,
            cid::msg::LIST_REQUEST,
            &req,
            cid::msg::LIST_RESPONSE,
            timeout,
        )?;
        let mut list = rsp.msg_list;
        list.sort_by_key(|m| m.msg_id);
        Ok(list)
    }

    /// Waits for the next event the server pushes: a message (acked on
    /// the way), a status change, a kick. Records acks of our own messages
    /// on the way. `Ok(None)` when `deadline` passes.
    pub fn next_event(&mut self, deadline: Instant) -> io::Result<Option<Event>> {
        loop {
            let pdu = match self.recv_pdu(deadline) {
                Ok(p) => p,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(None),
                Err(e) => return Err(e),
            };
            match (pdu.service_id(), pdu.command_id()) {
                (sid::MSG, cid::msg::DATA) => {
                    let msg: ImMsgData = pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                    let ack = ImMsgDataAck {
                        user_id: self.user_id,
                        session_id: msg.from_user_id,
                        msg_id: msg.msg_id,
                        session_type: SessionType::Single as i32,
                    };
                    self.send_pdu(sid::MSG, cid::msg::DATA_ACK, &ack)?;
                    return Ok(Some(Event::Message(msg)));
                }
                (sid::MSG, cid::msg::DATA_ACK) => {
                    let ack: ImMsgDataAck =
                        pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                    self.acked.push(ack.msg_id);
                }
                (sid::BUDDY_LIST, cid::buddy::STATUS_NOTIFY) => {
                    let n: ImUserStatNotify =
                        pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                    return Ok(Some(Event::Status(n.user_stat)));
                }
                (sid::LOGIN, cid::login::KICK_USER) => {
                    let k: ImKickUser = pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                    return Ok(Some(Event::Kicked(k)));
                }
                _ => {}
            }
        }
    }

    /// Waits for the next incoming message, acking it; records acks of our
    /// own messages on the way. `Ok(None)` when `deadline` passes; a kick
    /// is an error.
    pub fn next_message(&mut self, deadline: Instant) -> io::Result<Option<ImMsgData>> {
        loop {
            match self.next_event(deadline)? {
                None => return Ok(None),
                Some(Event::Message(m)) => return Ok(Some(m)),
                Some(Event::Status(_)) => {}
                Some(Event::Kicked(_)) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "kicked: logged in elsewhere",
                    ))
                }
            }
        }
    }

    /// Waits until the server acknowledged `count` of our messages.
    pub fn wait_acks(&mut self, count: usize, deadline: Instant) -> io::Result<()> {
        // Other frames wait in `early` for next_event.
        while self.acked.len() < count {
            let kept = self
                .early
                .iter()
                .position(|p| p.command_id() == cid::msg::DATA_ACK)
                .and_then(|i| self.early.remove(i));
            let pdu = match kept {
                Some(p) => p,
                None => self.read_pdu(deadline)?,
            };
            if pdu.command_id() == cid::msg::DATA_ACK {
                let ack: ImMsgDataAck = pdu.decode_body().map_err(|e| invalid(e.to_string()))?;
                self.acked.push(ack.msg_id);
            } else {
                self.early.push_back(pdu);
            }
        }
        Ok(())
    }

    /// Waits for the ack of the last message sent.
    pub fn wait_ack(&mut self, deadline: Instant) -> io::Result<u32> {
        let n = self.acked.len() + 1;
        self.wait_acks(n, deadline)?;
        Ok(self.acked[n - 1])
    }
}
