//! A small blocking TeamTalk client: ask a login_server for a msg_server,
//! log in, send and receive messages with acknowledgements, one to one and
//! in groups.
//!
//! Used by the `im_client` tool and by the end-to-end tests. It is a
//! client, one connection per thread, so plain blocking sockets with
//! timeouts keep it simple; the servers are the event-driven side.
//!
//! - this module: the connection, frames, login, request/answer calls, acks
//!   of what we sent;
//! - `chat` (re-exported here): conversations ([`Peer`]), sending, what the
//!   server pushes ([`Event`], acked with the session it came in), history,
//!   groups;
//! - `discover`: asking a login_server which msg_server to use.

mod chat;
mod discover;

pub use chat::{Event, Peer};
pub use discover::{query_msg_server, query_msg_server_http};

use pdu::proto::{
    ClientType, ImAllUserReq, ImAllUserRsp, ImHeartBeat, ImLoginReq, ImLoginRes, ImMsgDataAck,
    UserInfo, UserStatType,
};
use pdu::{cid, sid, FrameDecoder, Header, Message, Pdu};
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `pdu`'s body as an `M`; a body that does not decode is `InvalidData`.
fn decode<M: Message + Default>(pdu: &Pdu) -> io::Result<M> {
    pdu.decode_body().map_err(|e| invalid(e.to_string()))
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
                let res: ImLoginRes = decode(&pdu)?;
                if res.result_code == 0 {
                    self.user_id = res.user_info.as_ref().map_or(0, |u| u.user_id);
                }
                return Ok(res);
            }
        }
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
                return decode(&pdu);
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
                let ack: ImMsgDataAck = decode(&pdu)?;
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
