//! Scenario 5, IM routing: a load generator for msg_server, on netlib (one
//! [`EventDispatch`], one non-blocking connection per user, all of them
//! outgoing connections of one [`imconn::Server`] with the PDU codec).
//!
//! ```text
//! im_bench --users N [--rates 1000,2000,5000,...] [--step-secs 5]
//!          [--drain-secs 2] [--server PATH] [--no-pin] [--store sqlite|memory]
//! ```
//!
//! It writes a users file with N users (ids 1..N, names `uID`, one fixed
//! salt, password `pw`), starts `msg_server` (the binary next to this one
//! unless `--server`) on port 0 with the message store `--store` (sqlite: a
//! fresh database file in the run's temporary directory, the default; or
//! memory) and reads its `LISTEN client ADDR` line, logs
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

use hdrhistogram::Histogram;
use imconn::{Accepted, ConnConfig, ConnCtx, Connection, Limits, PduCodec, SendError, Server};
use netlib::{CloseReason, ConnectOptions, Context, EventDispatch, Handle};
use pdu::proto::{
    ClientType, ImLoginReq, ImLoginRes, ImMsgData, ImMsgDataAck, MsgType, SessionType, UserStatType,
};
use pdu::{cid, sid, Header, PduRef};
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

/// One user's connection; its counters are in [`Gen`].
struct User {
    user: u32,
    logged_in: bool,
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
    config: ConnConfig,
    /// Per user: its open connection.
    by_user: Vec<Option<Handle>>,
    /// Per user: messages it sent (the next sequence number).
    sent: Vec<u32>,
    /// Per user: of those, acknowledged by the server (acks come in order).
    acked: Vec<u32>,
    next_connect: u32,
    logged_in: u32,
    login_start: Instant,
    /// recv[user][seq]: times message `seq` of `user` was received.
    recv: Vec<Vec<u8>>,
    rng: u64,
    epoch: Instant,
    hist: Histogram<u64>,
    msg: ImMsgData,
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
}

/// The generator: its connections, and [`Gen`] as their shared state.
type GenServer = Server<User>;

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

    /// Users whose connections may start now (logins in flight are kept
    /// within [`LOGIN_WINDOW`]).
    fn users_to_connect(&mut self) -> std::ops::Range<u32> {
        let first = self.next_connect;
        while self.next_connect <= self.users
            && self.next_connect - 1 - self.logged_in < LOGIN_WINDOW
        {
            self.next_connect += 1;
        }
        first..self.next_connect
    }

    /// Notes the outcome of starting `user`'s connection; false on failure.
    fn connecting(&mut self, ctx: &mut Context, user: u32, r: netlib::Result<Handle>) -> bool {
        match r {
            Ok(h) => {
                self.by_user[user as usize] = Some(h);
                true
            }
            Err(e) => {
                self.fail(ctx, format!("connect for user {user}: {e}"));
                false
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
        let first_seq = self.sent.clone();
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

    fn send_one(server: &mut GenServer, ctx: &mut Context) -> Result<(), String> {
        let g = &mut server.shared;
        let n = g.users as u64;
        let from = 1 + (g.rand() % n) as u32;
        let mut to = 1 + (g.rand() % (n - 1)) as u32;
        if to >= from {
            to += 1;
        }
        let h = g.by_user[from as usize].ok_or("no connection")?;
        let now = g.now_ns();
        let seq = g.sent[from as usize];
        let d = &mut g.msg.msg_data;
        d.clear();
        for v in [MAGIC, from, to, seq] {
            d.extend_from_slice(&v.to_le_bytes());
        }
        d.extend_from_slice(&now.to_le_bytes());
        g.msg.to_session_id = to;
        g.msg.from_user_id = from;
        let header = Header::new(sid::MSG, cid::msg::DATA).with_seq_num(seq as u16);
        // Out of the shared state while the server encodes it.
        let msg = std::mem::take(&mut g.msg);
        let sent = server.send_to(ctx, h, (&header, &msg));
        let g = &mut server.shared;
        g.msg = msg;
        match sent {
            Ok(_) => {}
            Err(SendError::Closed) => return Err(format!("user {from}: connection gone")),
            Err(SendError::Encode(e)) => return Err(format!("user {from}: encode: {e}")),
            Err(e) => return Err(format!("user {from}: send: {e}")),
        }
        g.sent[from as usize] += 1;
        g.recv[from as usize].push(0);
        if let Some(s) = &mut g.step {
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
            if self.by_user[u].is_none() {
                return Err(format!("user {u}: connection gone"));
            }
            unacked += u64::from(self.sent[u] - self.acked[u]);
            for seq in s.first_seq[u]..self.sent[u] {
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

    /// A tick of the timer; returns how many messages are due now.
    fn tick(&mut self, ctx: &mut Context) -> u64 {
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
                    return 0;
                }
                let due = (target * elapsed) as u64;
                let cap = (target * CATCH_UP).max(1.0) as u64;
                return due.saturating_sub(s.sent).min(cap);
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
                            return 0;
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
                        return 0;
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
        0
    }
}

fn out(line: &str) {
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}

/// Sends the messages due, from the 1 ms timer.
fn tick(server: &mut GenServer, ctx: &mut Context) {
    let n = server.shared.tick(ctx);
    for _ in 0..n {
        if let Err(e) = Gen::send_one(server, ctx) {
            server.shared.fail(ctx, e);
            return;
        }
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
        let (addr, config) = (g.addr, g.config);
        for user in g.users_to_connect() {
            let conn = User {
                user,
                logged_in: false,
            };
            let r = cx.connect(addr, &opts(), conn, config);
            if !cx.shared.connecting(cx.ctx, user, r) {
                return;
            }
        }
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
    /// msg_server's message store: sqlite (durable, a fresh database file
    /// in the run's temporary directory) or memory
    #[arg(long, default_value = "sqlite", value_parser = ["sqlite", "memory"])]
    store: String,
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
            "--Store",
            &args.store,
            // Behind by this many operations the server refuses messages
            // (no ack); the bench measures how far it keeps up instead: a
            // store that falls behind shows as a `late` step.
            "--StoreInFlightMax",
            "1000000000",
        ])
        .arg("--DbPath")
        .arg(dir.join("msg.db"))
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

    // One connection per user: the limits need only fit a login and the
    // acks to one read, and frames up to what the old FrameDecoder took
    // (4 MiB). The output cap is far above anything a step queues, so the
    // generator never closes a connection of its own: a server that falls
    // behind shows as `late`.
    let config = ConnConfig {
        limits: Limits {
            high_water: 64 << 20,
            hard_cap: 64 << 20,
            ..Limits::default()
        },
        max_frame: pdu::DEFAULT_MAX_FRAME_LEN as usize,
        ..ConnConfig::default()
    };
    let mut dispatch = EventDispatch::new()?;
    let ctx = dispatch.context();
    let gen = Gen {
        users,
        addr,
        config,
        by_user: vec![None; users as usize + 1],
        sent: vec![0; users as usize + 1],
        acked: vec![0; users as usize + 1],
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
    };
    // Outgoing connections only: nothing is accepted.
    let r = GenServer::register(ctx, gen, |_, _: &Accepted| None);
    ctx.add_repeating_timer(TICK, move |ctx, _| {
        ctx.with_handler(r, tick);
    });
    ctx.with_handler(r, |s: &mut GenServer, ctx| {
        let (addr, config) = (s.shared.addr, s.shared.config);
        for user in s.shared.users_to_connect() {
            let conn = User {
                user,
                logged_in: false,
            };
            let r = s.connect(ctx, addr, &opts(), conn, config);
            if !s.shared.connecting(ctx, user, r) {
                return;
            }
        }
    });
    dispatch.run()?;
    let error = dispatch
        .context()
        .with_handler(r, |s: &mut GenServer, _| s.shared.error.take())
        .ok_or("generator state lost")?;
    drop(child);
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(e) = error {
        out(&format!("im_fail users {users} {e}"));
        return Err(e.into());
    }
    Ok(())
}
