//! [`NatsCodec`]: the client side of NATS's text protocol, so a connection
//! of this crate (with its buffering, deadlines and reconnecting links) can
//! talk to a `nats-server` without a second runtime.
//!
//! From the server ([`NatsFrame`]): `INFO {json}`, `MSG <subject> <sid>
//! [reply-to] <#bytes>` followed by the payload, `PING`, `PONG`, `+OK`,
//! `-ERR '<text>'`. To the server ([`NatsOut`]): `CONNECT {json}`, `PUB`,
//! `SUB`, `UNSUB`, `PING`, `PONG`. Operation names are case-insensitive on
//! input, as the protocol says; every line ends with CRLF. Headers (`HMSG`)
//! are not negotiated (`"headers":false` in CONNECT), so one is an error.
//!
//! A `MSG` whose declared size is above `max_frame` is refused as soon as
//! its control line is read; a control line longer than [`MAX_CONTROL`]
//! (or `max_frame`) is refused too. The heartbeat is `PING`.
//!
//! ```
//! use imconn::{Codec, Encoder, NatsCodec, NatsFrame, NatsOut};
//! let mut codec = NatsCodec;
//! let input = b"MSG im.user.7 1 5\r\nhello\r\nPING\r\n";
//! let (frame, used) = codec.decode(input, 1024).unwrap().unwrap();
//! assert_eq!(
//!     frame,
//!     NatsFrame::Msg { subject: "im.user.7", sid: 1, reply: None, payload: b"hello" }
//! );
//! assert_eq!(codec.decode(&input[used..], 1024).unwrap().unwrap().0, NatsFrame::Ping);
//! let mut out = Vec::new();
//! codec
//!     .encode(NatsOut::Pub { subject: "im.user.8", reply: None, payload: b"hi" }, &mut out)
//!     .unwrap();
//! assert_eq!(out, b"PUB im.user.8 2\r\nhi\r\n");
//! ```

use crate::codec::{Codec, DecodeError, EncodeError, Encoder};

/// Longest control line accepted (an `INFO` with many cluster URLs fits).
pub const MAX_CONTROL: usize = 64 * 1024;

/// What a NATS server sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsFrame<'a> {
    /// `INFO {json}`: the server's description (sent first, and again when
    /// the cluster changes).
    Info(&'a str),
    /// A message on a subscription.
    Msg {
        /// Its subject.
        subject: &'a str,
        /// The subscription id given in `SUB`.
        sid: u64,
        /// Reply subject, if the publisher gave one.
        reply: Option<&'a str>,
        /// The payload.
        payload: &'a [u8],
    },
    /// `PING`: answer with [`NatsOut::Pong`].
    Ping,
    /// `PONG`: the answer to a `PING` (everything sent before it was
    /// processed by the server).
    Pong,
    /// `+OK` (verbose mode only).
    Ok,
    /// `-ERR '<text>'`: the text without its quotes.
    Err(&'a str),
}

/// What a client sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsOut<'a> {
    /// `CONNECT {json}` (the JSON as given).
    Connect(&'a str),
    /// `PUB <subject> [reply] <#bytes>\r\n<payload>`.
    Pub {
        /// Subject.
        subject: &'a str,
        /// Reply subject.
        reply: Option<&'a str>,
        /// Payload.
        payload: &'a [u8],
    },
    /// `SUB <subject> [queue group] <sid>`.
    Sub {
        /// Subject (wildcards allowed).
        subject: &'a str,
        /// Queue group.
        queue: Option<&'a str>,
        /// Subscription id, chosen by the client.
        sid: u64,
    },
    /// `UNSUB <sid> [max_msgs]`.
    Unsub {
        /// Subscription id.
        sid: u64,
        /// Unsubscribe after this many more messages.
        max: Option<u64>,
    },
    /// `PING`.
    Ping,
    /// `PONG`.
    Pong,
}

/// The client side of NATS's protocol. Stateless.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsCodec;

fn bad(msg: String) -> DecodeError {
    msg.into()
}

fn parse_u64(s: &str, what: &str) -> Result<u64, DecodeError> {
    s.parse()
        .map_err(|_| bad(format!("NATS: bad {what} {s:?}")))
}

impl Codec for NatsCodec {
    type Frame<'a> = NatsFrame<'a>;

    fn decode<'a>(
        &mut self,
        src: &'a [u8],
        max_frame: usize,
    ) -> Result<Option<(NatsFrame<'a>, usize)>, DecodeError> {
        let limit = MAX_CONTROL.min(max_frame.max(256));
        let Some(end) = src.windows(2).position(|w| w == b"\r\n") else {
            if src.len() > limit {
                return Err(bad(format!("NATS: control line longer than {limit} bytes")));
            }
            return Ok(None);
        };
        if end > limit {
            return Err(bad(format!("NATS: control line longer than {limit} bytes")));
        }
        let line = std::str::from_utf8(&src[..end])
            .map_err(|_| bad("NATS: control line is not UTF-8".into()))?;
        let (op, rest) = line.split_once([' ', '\t']).unwrap_or((line, ""));
        let rest = rest.trim();
        let used = end + 2;
        // Case-insensitive without an uppercased copy of the name.
        let is = |name: &str| op.eq_ignore_ascii_case(name);
        let frame = if is("INFO") {
            NatsFrame::Info(rest)
        } else if is("PING") {
            NatsFrame::Ping
        } else if is("PONG") {
            NatsFrame::Pong
        } else if is("+OK") {
            NatsFrame::Ok
        } else if is("-ERR") {
            NatsFrame::Err(rest.trim_matches('\''))
        } else if is("MSG") {
            // Three or four fields, read without collecting them.
            let mut f = rest.split_ascii_whitespace();
            let (subject, sid, reply, size) =
                match (f.next(), f.next(), f.next(), f.next(), f.next()) {
                    (Some(s), Some(sid), Some(n), None, None) => (s, sid, None, n),
                    (Some(s), Some(sid), Some(r), Some(n), None) => (s, sid, Some(r), n),
                    _ => return Err(bad(format!("NATS: bad MSG line {line:?}"))),
                };
            let sid = parse_u64(sid, "subscription id")?;
            let size = parse_u64(size, "payload size")? as usize;
            if size > max_frame {
                return Err(bad(format!(
                    "NATS: message of {size} bytes, more than {max_frame}"
                )));
            }
            if src.len() < used + size + 2 {
                return Ok(None);
            }
            if &src[used + size..used + size + 2] != b"\r\n" {
                return Err(bad("NATS: payload not followed by CRLF".into()));
            }
            let payload = &src[used..used + size];
            return Ok(Some((
                NatsFrame::Msg {
                    subject,
                    sid,
                    reply,
                    payload,
                },
                used + size + 2,
            )));
        } else {
            return Err(bad(format!("NATS: unknown operation {op:?}")));
        };
        Ok(Some((frame, used)))
    }

    fn heartbeat(&mut self, dst: &mut Vec<u8>) -> bool {
        dst.extend_from_slice(b"PING\r\n");
        true
    }
}

/// A subject or queue name goes on a control line: non-empty, no
/// whitespace or control characters.
fn check_token(what: &str, t: &str) -> Result<(), EncodeError> {
    if t.is_empty() || t.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(format!("NATS: bad {what} {t:?}").into());
    }
    Ok(())
}

impl Encoder<NatsOut<'_>> for NatsCodec {
    fn encode(&mut self, item: NatsOut<'_>, dst: &mut Vec<u8>) -> Result<(), EncodeError> {
        use std::io::Write;
        match item {
            NatsOut::Connect(json) => {
                if json.contains(['\r', '\n']) {
                    return Err("NATS: CONNECT JSON on more than one line".into());
                }
                write!(dst, "CONNECT {json}\r\n")?;
            }
            NatsOut::Pub {
                subject,
                reply,
                payload,
            } => {
                check_token("subject", subject)?;
                match reply {
                    Some(r) => {
                        check_token("reply subject", r)?;
                        write!(dst, "PUB {subject} {r} {}\r\n", payload.len())?;
                    }
                    None => write!(dst, "PUB {subject} {}\r\n", payload.len())?,
                }
                dst.extend_from_slice(payload);
                dst.extend_from_slice(b"\r\n");
            }
            NatsOut::Sub {
                subject,
                queue,
                sid,
            } => {
                check_token("subject", subject)?;
                match queue {
                    Some(q) => {
                        check_token("queue group", q)?;
                        write!(dst, "SUB {subject} {q} {sid}\r\n")?;
                    }
                    None => write!(dst, "SUB {subject} {sid}\r\n")?,
                }
            }
            NatsOut::Unsub { sid, max } => match max {
                Some(m) => write!(dst, "UNSUB {sid} {m}\r\n")?,
                None => write!(dst, "UNSUB {sid}\r\n")?,
            },
            NatsOut::Ping => dst.extend_from_slice(b"PING\r\n"),
            NatsOut::Pong => dst.extend_from_slice(b"PONG\r\n"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Vec<NatsFrame<'_>> {
        let mut c = NatsCodec;
        let mut at = 0;
        let mut out = Vec::new();
        while let Some((f, used)) = c.decode(&input[at..], 1024).unwrap() {
            out.push(f);
            at += used;
        }
        assert_eq!(at, input.len(), "everything decoded");
        out
    }

    #[test]
    fn decodes_every_server_operation() {
        let input =
            b"INFO {\"server_id\":\"x\"}\r\nping\r\nPONG\r\n+OK\r\n-ERR 'Unknown Subject'\r\n\
              MSG a.b 9 reply.to 4\r\n\r\n\r\n\r\nMSG a 1 0\r\n\r\n";
        assert_eq!(
            decode_all(input),
            [
                NatsFrame::Info("{\"server_id\":\"x\"}"),
                NatsFrame::Ping,
                NatsFrame::Pong,
                NatsFrame::Ok,
                NatsFrame::Err("Unknown Subject"),
                NatsFrame::Msg {
                    subject: "a.b",
                    sid: 9,
                    reply: Some("reply.to"),
                    payload: b"\r\n\r\n"
                },
                NatsFrame::Msg {
                    subject: "a",
                    sid: 1,
                    reply: None,
                    payload: b""
                },
            ]
        );
    }

    #[test]
    fn waits_for_whole_frames_at_every_cut() {
        let input = b"MSG im.user.7 3 5\r\nhello\r\nPING\r\n";
        for cut in 0..input.len() {
            let mut c = NatsCodec;
            let first = c.decode(&input[..cut], 1024).unwrap();
            if cut < 26 {
                assert!(first.is_none(), "cut {cut}");
            }
        }
        assert_eq!(decode_all(input).len(), 2);
    }

    #[test]
    fn refuses_what_cannot_become_a_frame() {
        let mut c = NatsCodec;
        for bad in [
            &b"MSG a 1 2000\r\n"[..],
            b"MSG a x 1\r\nz\r\n",
            b"MSG a 1\r\n",
            b"MSG a 1 1\r\nzz\r\n",
            b"HMSG a 1 2 2\r\n",
            b"BOGUS\r\n",
        ] {
            assert!(
                c.decode(bad, 1024).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(
            c.decode(&[b'x'; 2000], 1024).is_err(),
            "unterminated long line"
        );
    }

    #[test]
    fn encodes_client_operations_and_refuses_bad_subjects() {
        let mut c = NatsCodec;
        let mut out = Vec::new();
        c.encode(NatsOut::Connect("{\"verbose\":false}"), &mut out)
            .unwrap();
        c.encode(
            NatsOut::Sub {
                subject: "im.user.*",
                queue: Some("q"),
                sid: 4,
            },
            &mut out,
        )
        .unwrap();
        c.encode(
            NatsOut::Unsub {
                sid: 4,
                max: Some(2),
            },
            &mut out,
        )
        .unwrap();
        c.encode(
            NatsOut::Pub {
                subject: "a",
                reply: Some("r"),
                payload: b"x\r\ny",
            },
            &mut out,
        )
        .unwrap();
        c.encode(NatsOut::Ping, &mut out).unwrap();
        c.encode(NatsOut::Pong, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "CONNECT {\"verbose\":false}\r\nSUB im.user.* q 4\r\nUNSUB 4 2\r\nPUB a r 4\r\nx\r\ny\r\nPING\r\nPONG\r\n"
        );
        let before = out.len();
        for subject in ["", "a b", "a\r\nPUB x 1"] {
            let item = NatsOut::Pub {
                subject,
                reply: None,
                payload: b"",
            };
            assert!(c.encode(item, &mut out).is_err());
        }
        assert_eq!(out.len(), before, "nothing appended on error");
    }
}
