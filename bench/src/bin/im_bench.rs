//! Scenario 5, IM routing: a load generator for msg_server, on netlib (one
//! [`EventDispatch`], one non-blocking connection per user).
//!
//! ```text
//! im_bench --users N [--rates 1000,2000,5000,...] [--step-secs 5]
//!          [--drain-secs 2] [--server PATH] [--no-pin]
//! ```
//!
//! It writes a users file with N users (ids 1..N, names `uID`, one fixed
//! salt, password `pw`), starts `msg_server` (the binary next to this one
//! unless `--server`) on port 0 and reads its `LISTEN client ADDR` line, logs
//! every user in on its own connection, then climbs the ladder of target
//! rates: for `--step-secs` a 1 ms repeating timer sends the messages due so
//! far (from random senders to random other users). Each message carries
//! (magic, sender, receiver, per-sender sequence number, send time in
//! monotonic ns) in `msg_data`; the header's seq_num is the low 16 bits of
//! the sequence number, which the server echoes in its IMMsgDataAck, so the
//! generator knows exactly which messages the server acknowledged.
//! Receivers ack every delivery (IMMsgDataAck with the server's msg_id),
//! record send-to-receive latency (hdrhistogram) and count receipts per
//! (sender, sequence number).
//!
//! After a step's sending ends it waits up to `--drain-secs` for every
//! message to be acknowledged by the server and received. Then:
//!
//! - everything acked and received exactly once, and the achieved send rate
//!   at least 95% of the target: the step **passes**;
//! - achieved rate below 95%: the step fails as `gen_limit` (the generator,
//!   not the server, could not go faster);
//! - messages still missing after the window: the step fails as `late`
//!   (the server fell behind). The generator keeps waiting while anything
//!   still arrives; if all of them then arrive exactly once the run goes on,
//!   otherwise it is an exactly-once violation.
//!
//! The ladder stops at the first failing step. Then it runs at 50% and 90%
//! of the highest passing rate and reports latency percentiles.
//!
//! Any exactly-once violation - a duplicate, a message lost for good, a
//! message delivered to the wrong user or with the wrong sender, an ack out
//! of order, a connection closed by the server - prints `im_fail ...` and
//! exits with status 1.
//!
//! Output, one line each (`key value` pairs, parsed by the `bench` driver):
//!
//! ```text
//! im_login users N secs S
//! im_step users N kind ladder|lat50|lat90 target R sent M secs S rate A acked M received M dup 0 missing 0 p50_us . p99_us . p999_us . max_us . gen_cpu . server_cpu . result pass|late|gen_limit
//! im_best users N rate R limit late|gen_limit|none
//! ```

use examples::conns::ConnTable;
use hdrhistogram::Histogram;
use imconn::{BufferedConn, Limits};
use netlib::{
    CloseReason, ConnectOptions, Context, Event, EventDispatch, Handle, Handler, TimerId,
};
use pdu::proto::{
    ClientType, ImLoginReq, ImLoginRes, ImMsgData, ImMsgDataAck, MsgType, SessionType, UserStatType,
};
use pdu::{cid, sid, FrameDecoder, Header, Pdu};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const MAGIC: u32 = 0x494d_4231; // "IMB1"
const PAYLOAD_LEN: usize = 24;
/// Logins in progress at once (connects are spread, not a SYN flood).
const LOGIN_WINDOW: u32 = 256;
const TICK: Duration = Duration::from_millis(1);
/// A tick sends at most this much of the schedule it is behind: a loop too
/// busy to keep up shows as an achieved rate below the target.
const CATCH_UP: f64 = 0.020;
/// After a late step, how long without any progress means "lost".
const STALL: Duration = Duration::from_secs(3);
const PAUSE: Duration = Duration::from_millis(300);
const SALT: &str = "imbench0salt";
const PASSWORD: &str = "pw";

struct Conn {
    io: BufferedConn,
    user: u32,
    logged_in: bool,
    /// Messages this user sent (the next sequence number).
    sent: u32,
    /// Of those, acknowledged by the server (acks come in order).
    acked: u32,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Ladder,
    Lat50,
    Lat90,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Ladder => "ladder",
            Kind::Lat50 => "lat50",
            Kind::Lat90 => "lat90",
        }
    }
}

enum Phase {
    Login,
    Pause(Instant),
    Send,
    Drain(Instant),
    Late { progress: u64, at: Instant },
    Done,
}

struct Step {
    kind: Kind,
    target: u64,
    start: Instant,
    send_secs: f64,
    /// Per user: its `sent` when the step began.
    first_seq: Vec<u32>,
    sent: u64,
    acked: u64,
    received: u64,
    dup: u64,
    cpu0: (f64, f64),
    cpu1: (f64, f64),
    wall0: Instant,
    wall1: Instant,
}

struct Gen {
    users: u32,
    addr: SocketAddr,
    conns: ConnTable<Conn>,
    by_user: Vec<Option<Handle>>,
    next_connect: u32,
    logged_in: u32,
    login_start: Instant,
    /// recv[user][seq]: times message `seq` of `user` was received.
    recv: Vec<Vec<u8>>,
    rng: u64,
    epoch: Instant,
    hist: Histogram<u64>,
    msg: ImMsgData,
    out: Vec<u8>,
    decoder: FrameDecoder,
    phase: Phase,
    step: Option<Step>,
    step_secs: f64,
    drain: Duration,
    rates: Vec<u64>,
    ladder_idx: usize,
    best: Option<u64>,
    limit: &'static str,
    server_pid: u32,
    error: Option<String>,
    pending_next: Option<(Kind, u64)>,
    /// Users of connections not confirmed yet.
    connecting: ConnTable<u32>,
    me: Option<netlib::HandlerRef>,
}

fn opts() -> ConnectOptions {
    ConnectOptions {
        nodelay: true,
        timeout: Some(Duration::from_secs(10)),
        ..ConnectOptions::default()
    }
}

fn self_cpu() -> f64 {
    // SAFETY: `rusage` is plain old data, so all-zero is a valid value, and
    // getrusage writes only into the local struct we point it at.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        let t = |v: libc::timeval| v.tv_sec as f64 + v.tv_usec as f64 / 1e6;
        t(ru.ru_utime) + t(ru.ru_stime)
    }
}

fn proc_cpu(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return f64::NAN;
    };
    let Some(i) = stat.rfind(')') else {
        return f64::NAN;
    };
    let f: Vec<&str> = stat[i + 2..].split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) as f64 }
}

impl Gen {
    fn fail(&mut self, ctx: &mut Context, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
        self.phase = Phase::Done;
        ctx.stop();
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn rand(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn connect_more(&mut self, ctx: &mut Context, me: netlib::HandlerRef) {
        while self.next_connect <= self.users
            && self.next_connect - 1 - self.logged_in < LOGIN_WINDOW
        {
            let user = self.next_connect;
            self.next_connect += 1;
            match ctx.connect_with(self.addr, &opts(), me) {
                Ok(h) => {
                    self.by_user[user as usize] = Some(h);
                    self.connecting.insert(h, user);
                }
                Err(e) => {
                    self.fail(ctx, format!("connect for user {user}: {e}"));
                    return;
                }
            }
        }
    }

    fn on_confirm(&mut self, ctx: &mut Context, h: Handle) {
        let Some(user) = self.connecting.remove(h) else {
            return;
        };
        let mut io = BufferedConn::new(ctx, h, Limits::default());
        let req = ImLoginReq {
            user_name: format!("u{user}"),
            password: PASSWORD.into(),
            online_status: UserStatType::UserStatusOnline as i32,
            client_type: ClientType::Windows as i32,
            client_version: Some("im_bench".into()),
        };
        let header = Header::new(sid::LOGIN, cid::login::REQ_USERLOGIN);
        let r = io.send_encoded(ctx, |b| {
            Pdu::encode_message_into(b, &header, &req).map(|_| ())
        });
        if !matches!(r, Ok(Ok(_))) {
            self.fail(ctx, format!("user {user}: login send failed"));
            return;
        }
        self.conns.insert(
            h,
            Conn {
                io,
                user,
                logged_in: false,
                sent: 0,
                acked: 0,
            },
        );
    }

    fn on_read(&mut self, ctx: &mut Context, h: Handle, me: netlib::HandlerRef) {
        let Some(mut conn) = self.conns.remove(h) else {
            return;
        };
        conn.io.fill(ctx);
        let now = self.now_ns();
        self.out.clear();
        let mut err = None;
        let mut newly_logged_in = false;
        {
            let buf = conn.io.in_buf.as_slice();
            let mut frames = self.decoder.frames(buf);
            for f in frames.by_ref() {
                let f = match f {
                    Ok(f) => f,
                    Err(e) => {
                        err = Some(format!("user {}: bad frame: {e}", conn.user));
                        break;
                    }
                };
                match (f.service_id(), f.command_id()) {
                    (sid::MSG, cid::msg::DATA) => {
                        let msg: ImMsgData = match f.decode_body() {
                            Ok(m) => m,
                            Err(e) => {
                                err = Some(format!("user {}: bad IMMsgData: {e}", conn.user));
                                break;
                            }
                        };
                        if let Err(e) = self.received(conn.user, &msg, now) {
                            err = Some(e);
                            break;
                        }
                        let ack = ImMsgDataAck {
                            user_id: conn.user,
                            session_id: msg.from_user_id,
                            msg_id: msg.msg_id,
                            session_type: SessionType::Single as i32,
                        };
                        let _ = Pdu::encode_message_into(
                            &mut self.out,
                            &Header::new(sid::MSG, cid::msg::DATA_ACK),
                            &ack,
                        );
                    }
                    (sid::MSG, cid::msg::DATA_ACK) => {
                        if f.seq_num() != conn.acked as u16 || conn.acked >= conn.sent {
                            err = Some(format!(
                                "user {}: server ack with seq {} but {} of {} sent were acked (acks out of order or unexpected)",
                                conn.user, f.seq_num(), conn.acked, conn.sent
                            ));
                            break;
                        }
                        conn.acked += 1;
                        if let Some(s) = &mut self.step {
                            s.acked += 1;
                        }
                    }
                    (sid::LOGIN, cid::login::RES_USERLOGIN) => {
                        let res: ImLoginRes = f.decode_body().unwrap_or_default();
                        let id = res.user_info.as_ref().map_or(0, |u| u.user_id);
                        if res.result_code != 0 || id != conn.user || conn.logged_in {
                            err = Some(format!(
                                "user {}: login refused or wrong (result {}, user id {id})",
                                conn.user, res.result_code
                            ));
                            break;
                        }
                        conn.logged_in = true;
                        newly_logged_in = true;
                    }
                    (sid::LOGIN, cid::login::KICK_USER) => {
                        err = Some(format!("user {}: kicked by the server", conn.user));
                        break;
                    }
                    _ => {}
                }
            }
            let used = frames.consumed();
            conn.io.in_buf.consume(used);
        }
        if !self.out.is_empty() {
            if let Err(e) = conn.io.send(ctx, &self.out) {
                err.get_or_insert(format!("user {}: ack send failed: {e}", conn.user));
            }
        }
        self.conns.insert(h, conn);
        if let Some(e) = err {
            self.fail(ctx, e);
            return;
        }
        if newly_logged_in {
            self.logged_in += 1;
            if self.logged_in == self.users {
                let secs = self.login_start.elapsed().as_secs_f64();
                out(&format!("im_login users {} secs {secs:.3}", self.users));
                self.phase = Phase::Pause(Instant::now() + PAUSE);
            } else {
                self.connect_more(ctx, me);
            }
        }
    }

    fn received(&mut self, me: u32, msg: &ImMsgData, now: u64) -> Result<(), String> {
        let d = &msg.msg_data;
        if d.len() != PAYLOAD_LEN {
            return Err(format!("user {me}: msg_data of {} bytes", d.len()));
        }
        let u32_at = |i: usize| u32::from_le_bytes(d[i..i + 4].try_into().unwrap());
        let (magic, from, to, seq) = (u32_at(0), u32_at(4), u32_at(8), u32_at(12));
        let sent_ns = u64::from_le_bytes(d[16..24].try_into().unwrap());
        if magic != MAGIC {
            return Err(format!("user {me}: corrupt msg_data {d:02x?}"));
        }
        if to != me || msg.to_session_id != me || msg.from_user_id != from {
            return Err(format!(
                "misrouted: user {me} got message {from}#{seq} meant for {to} (server says from {} to {})",
                msg.from_user_id, msg.to_session_id
            ));
        }
        let Some(count) = self
            .recv
            .get_mut(from as usize)
            .and_then(|v| v.get_mut(seq as usize))
        else {
            return Err(format!(
                "user {me} got message {from}#{seq}, which was never sent"
            ));
        };
        *count = count.saturating_add(1);
        let Some(s) = &mut self.step else {
            return Ok(());
        };
        if *count > 1 {
            s.dup += 1;
            return Err(format!(
                "duplicate: message {from}#{seq} received {} times by user {me}",
                *count
            ));
        }
        if seq < s.first_seq[from as usize] {
            return Err(format!(
                "message {from}#{seq} of an earlier, already verified step arrived now"
            ));
        }
        s.received += 1;
        let _ = self
            .hist
            .record((now.saturating_sub(sent_ns) / 1000).max(1));
        Ok(())
    }

    fn start_step(&mut self, kind: Kind, target: u64) {
        let first_seq = (0..=self.users as usize)
            .map(|u| {
                self.by_user[u]
                    .and_then(|h| self.conns.get(h))
                    .map_or(0, |c| c.sent)
            })
            .collect();
        self.hist.reset();
        let now = Instant::now();
        self.step = Some(Step {
            kind,
            target,
            start: now,
            send_secs: 0.0,
            first_seq,
            sent: 0,
            acked: 0,
            received: 0,
            dup: 0,
            cpu0: (self_cpu(), proc_cpu(self.server_pid)),
            cpu1: (0.0, 0.0),
            wall0: now,
            wall1: now,
        });
        self.phase = Phase::Send;
    }

    fn send_one(&mut self, ctx: &mut Context) -> Result<(), String> {
        let n = self.users as u64;
        let from = 1 + (self.rand() % n) as u32;
        let mut to = 1 + (self.rand() % (n - 1)) as u32;
        if to >= from {
            to += 1;
        }
        let h = self.by_user[from as usize].ok_or("no connection")?;
        let now = self.now_ns();
        let conn = self
            .conns
            .get_mut(h)
            .ok_or_else(|| format!("user {from}: connection gone"))?;
        let seq = conn.sent;
        let d = &mut self.msg.msg_data;
        d.clear();
        for v in [MAGIC, from, to, seq] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&now.to_le_bytes());
        self.msg.to_session_id = to;
        self.msg.from_user_id = from;
        let header = Header::new(sid::MSG, cid::msg::DATA).with_seq_num(seq as u16);
        let msg = &self.msg;
        match conn.io.send_encoded(ctx, |b| {
            Pdu::encode_message_into(b, &header, msg).map(|_| ())
        }) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(format!("user {from}: encode: {e}")),
            Err(e) => return Err(format!("user {from}: send: {e}")),
        }
        conn.sent += 1;
        self.recv[from as usize].push(0);
        if let Some(s) = &mut self.step {
            s.sent += 1;
        }
        Ok(())
    }

    fn complete(&self) -> bool {
        self.step
            .as_ref()
            .is_some_and(|s| s.acked == s.sent && s.received == s.sent)
    }

    /// Exactly-once check over every message of the step; `Err` names what
    /// is wrong.
    fn verify(&self) -> Result<(), String> {
        let s = self.step.as_ref().ok_or("no step")?;
        let mut missing = Vec::new();
        let mut dups = Vec::new();
        let mut unacked = 0u64;
        let mut checked = 0u64;
        for u in 1..=self.users as usize {
            let Some(c) = self.by_user[u].and_then(|h| self.conns.get(h)) else {
                return Err(format!("user {u}: connection gone"));
            };
            unacked += u64::from(c.sent - c.acked);
            for seq in s.first_seq[u]..c.sent {
                checked += 1;
                match self.recv[u][seq as usize] {
                    1 => {}
                    0 => missing.push((u, seq)),
                    n => dups.push((u, seq, n)),
                }
            }
        }
        if checked != s.sent {
            return Err(format!("{} messages sent but {checked} found", s.sent));
        }
        if missing.is_empty() && dups.is_empty() && unacked == 0 {
            return Ok(());
        }
        Err(format!(
            "{} of {} messages never received (first: {:?}), {} received more than once (first: {:?}), {} never acknowledged by the server",
            missing.len(),
            s.sent,
            &missing[..missing.len().min(5)],
            dups.len(),
            &dups[..dups.len().min(5)],
            unacked
        ))
    }

    fn report(&mut self, result: &str) {
        let Some(s) = &mut self.step else { return };
        if s.wall1 <= s.wall0 {
            s.wall1 = Instant::now();
            s.cpu1 = (self_cpu(), proc_cpu(self.server_pid));
        }
        let wall = (s.wall1 - s.wall0).as_secs_f64();
        let h = &self.hist;
        out(&format!(
            "im_step users {} kind {} target {} sent {} secs {:.3} rate {:.0} acked {} received {} dup {} missing {} p50_us {} p99_us {} p999_us {} max_us {} gen_cpu {:.2} server_cpu {:.2} result {result}",
            self.users,
            s.kind.name(),
            s.target,
            s.sent,
            s.send_secs,
            s.sent as f64 / s.send_secs,
            s.acked,
            s.received,
            s.dup,
            s.sent - s.received,
            h.value_at_quantile(0.5),
            h.value_at_quantile(0.99),
            h.value_at_quantile(0.999),
            h.max(),
            (s.cpu1.0 - s.cpu0.0) / wall,
            (s.cpu1.1 - s.cpu0.1) / wall,
        ));
    }

    /// The step is settled (verified): pick what runs next.
    fn next(&mut self, passed: bool, why: &'static str) {
        let s = self.step.as_ref().unwrap();
        let (kind, target) = (s.kind, s.target);
        let now = Instant::now();
        match kind {
            Kind::Ladder => {
                if passed {
                    self.best = Some(target);
                    self.ladder_idx += 1;
                    if self.ladder_idx < self.rates.len() {
                        self.pending_next = Some((Kind::Ladder, self.rates[self.ladder_idx]));
                        self.phase = Phase::Pause(now + PAUSE);
                        return;
                    }
                    self.limit = "none";
                } else {
                    self.limit = why;
                }
                self.finish_ladder(now);
            }
            Kind::Lat50 => {
                let best = self.best.unwrap_or(0);
                self.pending_next = Some((Kind::Lat90, best * 9 / 10));
                self.phase = Phase::Pause(now + PAUSE);
            }
            Kind::Lat90 => self.phase = Phase::Done,
        }
    }

    fn finish_ladder(&mut self, now: Instant) {
        out(&format!(
            "im_best users {} rate {} limit {}",
            self.users,
            self.best.unwrap_or(0),
            self.limit
        ));
        match self.best {
            Some(b) if b >= 2 => {
                self.pending_next = Some((Kind::Lat50, b / 2));
                self.phase = Phase::Pause(now + PAUSE);
            }
            _ => self.phase = Phase::Done,
        }
    }

    fn tick(&mut self, ctx: &mut Context) {
        let now = Instant::now();
        match self.phase {
            Phase::Done => ctx.stop(),
            Phase::Login => {}
            Phase::Pause(until) => {
                if now >= until {
                    let (kind, target) = self
                        .pending_next
                        .take()
                        .unwrap_or_else(|| (Kind::Ladder, self.rates[self.ladder_idx]));
                    self.start_step(kind, target);
                }
            }
            Phase::Send => {
                let s = self.step.as_ref().unwrap();
                let elapsed = (now - s.start).as_secs_f64();
                let target = s.target as f64;
                if elapsed >= self.step_secs {
                    let s = self.step.as_mut().unwrap();
                    s.send_secs = elapsed;
                    self.phase = Phase::Drain(now);
                    return;
                }
                let due = (target * elapsed) as u64;
                let cap = (target * CATCH_UP).max(1.0) as u64;
                let n = due.saturating_sub(s.sent).min(cap);
                for _ in 0..n {
                    if let Err(e) = self.send_one(ctx) {
                        self.fail(ctx, e);
                        return;
                    }
                }
            }
            Phase::Drain(since) => {
                let done = self.complete();
                if done || now - since >= self.drain {
                    {
                        let s = self.step.as_mut().unwrap();
                        s.wall1 = now;
                        s.cpu1 = (self_cpu(), proc_cpu(self.server_pid));
                    }
                    if done {
                        if let Err(e) = self.verify() {
                            self.fail(ctx, format!("exactly-once violated: {e}"));
                            return;
                        }
                        let s = self.step.as_ref().unwrap();
                        let achieved = s.sent as f64 / s.send_secs;
                        let ok = achieved >= 0.95 * s.target as f64;
                        self.report(if ok { "pass" } else { "gen_limit" });
                        self.next(ok, "gen_limit");
                    } else {
                        self.report("late");
                        let s = self.step.as_ref().unwrap();
                        self.phase = Phase::Late {
                            progress: s.acked + s.received,
                            at: now,
                        };
                    }
                }
            }
            Phase::Late { progress, at } => {
                let s = self.step.as_ref().unwrap();
                let p = s.acked + s.received;
                if self.complete() {
                    if let Err(e) = self.verify() {
                        self.fail(ctx, format!("exactly-once violated: {e}"));
                        return;
                    }
                    let s = self.step.as_ref().unwrap();
                    out(&format!(
                        "im_late users {} target {} settled_after_s {:.1} all received exactly once",
                        self.users,
                        s.target,
                        (now - s.start).as_secs_f64()
                    ));
                    self.next(false, "late");
                } else if p != progress {
                    self.phase = Phase::Late {
                        progress: p,
                        at: now,
                    };
                } else if now - at >= STALL {
                    let e = self.verify().err().unwrap_or_default();
                    self.fail(
                        ctx,
                        format!(
                            "exactly-once violated: nothing more arrived for {} s: {e}",
                            STALL.as_secs()
                        ),
                    );
                }
            }
        }
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

impl Handler for Gen {
    fn on_event(&mut self, ctx: &mut Context, h: Handle, event: Event) {
        let Some(me) = self.me else { return };
        match event {
            Event::Confirm => self.on_confirm(ctx, h),
            Event::Read => self.on_read(ctx, h, me),
            Event::Write => {
                if let Some(c) = self.conns.get_mut(h) {
                    let _ = c.io.flush(ctx);
                }
            }
            Event::Close(reason) => {
                let user = self.conns.remove(h).map(|c| c.user);
                if !matches!(self.phase, Phase::Done) && reason != CloseReason::Shutdown {
                    self.fail(ctx, format!("connection of user {user:?} closed: {reason}"));
                }
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, ctx: &mut Context, _id: TimerId) {
        self.tick(ctx);
    }
}

struct ServerProc(Child);

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn pin_self(core: usize) {
    // SAFETY: `cpu_set_t` is plain old data (all-zero is valid); the CPU_*
    // macros and sched_setaffinity touch only the local set, whose size we pass.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_ZERO(&mut set);
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

fn main() {
    match run() {
        Ok(()) => {}
        Err(e) => {
            eprintln!("im_bench: FAILED: {e}");
            std::process::exit(1);
        }
    }
}

/// A load generator for msg_server: N users, a ladder of message rates.
#[derive(clap::Parser)]
#[command(name = "im_bench")]
struct Args {
    /// Users, each logged in on its own connection (at least 2)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(2..))]
    users: u32,
    /// Target messages per second, one ladder step each
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "1000,2000,5000,10000,20000,30000,50000,70000,100000,150000,200000"
    )]
    rates: Vec<u64>,
    /// Seconds per ladder step
    #[arg(long, default_value_t = 5.0)]
    step_secs: f64,
    /// Seconds to wait for stragglers after each step
    #[arg(long, default_value_t = 2.0)]
    drain_secs: f64,
    /// msg_server binary [default: the one next to im_bench]
    #[arg(long)]
    server: Option<PathBuf>,
    /// Do not pin the server and the load generator to separate cores
    #[arg(long)]
    no_pin: bool,
}

fn run() -> Res<()> {
    let args = <Args as clap::Parser>::parse();
    let users = args.users;
    let rates = args.rates;
    let (step_secs, drain_secs) = (args.step_secs, args.drain_secs);
    let exe = std::env::current_exe()?;
    let server: PathBuf = args
        .server
        .unwrap_or_else(|| exe.with_file_name("msg_server"));
    let pin = !args.no_pin
        && std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2
        && Command::new("taskset").arg("-V").output().is_ok();
    let nofile = bench::raise_nofile(u64::MAX);
    if u64::from(users) + 64 > nofile {
        return Err(format!("RLIMIT_NOFILE is {nofile}: too low for {users} users").into());
    }

    // Users file.
    let dir = std::env::temp_dir().join(format!("im_bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let users_file = dir.join("users");
    let mut text = String::with_capacity(users as usize * 100);
    for id in 1..=users {
        text.push_str(&servers::users::user_line(
            id,
            &format!("u{id}"),
            SALT,
            PASSWORD,
        ));
        text.push('\n');
    }
    std::fs::write(&users_file, text)?;

    // msg_server.
    let mut cmd = if pin {
        let mut c = Command::new("taskset");
        c.arg("-c").arg("0").arg(&server);
        c
    } else {
        Command::new(&server)
    };
    cmd.args(["--ListenPort", "0", "--UsersFile"])
        .arg(&users_file)
        .args([
            "--MsgRateLimit",
            "1000000",
            "--ClientIdleMs",
            "600000",
            "--MaxConnCnt",
            "100000",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped());
    let mut child = ServerProc(
        cmd.spawn()
            .map_err(|e| format!("starting {}: {e}", server.display()))?,
    );
    let server_pid = child.0.id();
    let stdout = child.0.stdout.take().ok_or("no server stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let addr: SocketAddr = loop {
        let line = lines
            .next()
            .ok_or("msg_server exited before announcing its address")??;
        if let Some(a) = line.strip_prefix("LISTEN client ") {
            break a.trim().parse()?;
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    if pin {
        pin_self(1);
    }

    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let gen = Gen {
        users,
        addr,
        conns: ConnTable::new(),
        by_user: vec![None; users as usize + 1],
        next_connect: 1,
        logged_in: 0,
        login_start: Instant::now(),
        recv: vec![Vec::new(); users as usize + 1],
        rng: 0x9e37_79b9_7f4a_7c15 ^ u64::from(users),
        epoch: Instant::now(),
        hist: Histogram::new_with_bounds(1, 600_000_000, 3)?,
        msg: ImMsgData {
            msg_type: MsgType::SingleText as i32,
            msg_data: Vec::with_capacity(PAYLOAD_LEN),
            ..Default::default()
        },
        out: Vec::with_capacity(64 * 1024),
        decoder: FrameDecoder::new(),
        phase: Phase::Login,
        step: None,
        step_secs,
        drain: Duration::from_secs_f64(drain_secs),
        rates,
        ladder_idx: 0,
        best: None,
        limit: "none",
        server_pid,
        error: None,
        pending_next: None,
        connecting: ConnTable::new(),
        me: None,
    };
    let r = ctx.add_handler(gen);
    ctx.add_handler_timer(r, TICK, Some(TICK))?;
    ctx.with_handler(r, |g: &mut Gen, ctx| {
        g.me = Some(r);
        g.connect_more(ctx, r)
    });
    dispatch.run()?;
    let error = dispatch
        .context()
        .with_handler(r, |g: &mut Gen, _| g.error.take())
        .ok_or("generator state lost")?;
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = error {
        out(&format!("im_fail users {users} {e}"));
        return Err(e.into());
    }
    Ok(())
}
