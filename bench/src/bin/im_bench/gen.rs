//! The generator's shared state ([`Gen`], the `Shared` of every user's
//! connection): the ladder of target rates and its phases (login, pause,
//! send, drain, late), the send schedule run from the 1 ms timer, the
//! exactly-once check of each step and the `im_best` line (`report` writes
//! the `im_step` lines).
//! With several msg_servers, user `u` lives on server `(u - 1) % servers`
//! and each message's latency is also recorded as same-server or crossing.

use crate::report::{out, Cpu};
use crate::user::User;
use hdrhistogram::Histogram;
use imconn::{ConnConfig, SendError, Server};
use netlib::{Context, Handle};
use pdu::proto::ImMsgData;
use pdu::{cid, sid, Header};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

pub(crate) use bench::traffic::{MAGIC, PAYLOAD_LEN};
/// Logins in progress at once (connects are spread, not a SYN flood).
pub(crate) const LOGIN_WINDOW: u32 = 256;
pub(crate) const TICK: Duration = Duration::from_millis(1);
/// A tick sends at most this much of the schedule it is behind: a loop too
/// busy to keep up shows as an achieved rate below the target.
pub(crate) const CATCH_UP: f64 = 0.020;
pub(crate) const PAUSE: Duration = Duration::from_millis(300);
/// Before the latency runs, msg_server counts as quiet (done with a late
/// step's backlog, a durable store with its deferred writes) once it uses
/// less than this many cores over [`QUIET_WINDOW`]...
const QUIET_CPU: f64 = 0.10;
const QUIET_WINDOW: Duration = Duration::from_millis(500);
/// ...or after this long anyway.
const QUIET_MAX: Duration = Duration::from_secs(60);

/// What a step is for: a rung of the ladder, or a latency run at 50% / 90%
/// of the best rate.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// Nothing sent, all users logged in: the CPU the processes use idle
    /// (`--idle-step`), run first.
    Idle,
    /// A fixed offered rate, run once before the ladder (`--fixed-rate`).
    Fixed,
    Ladder,
    /// A rate between the highest passing and the lowest failing one, after
    /// the ladder stopped (`--refine`).
    Refine,
    Lat50,
    Lat90,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Idle => "idle",
            Kind::Fixed => "fixed",
            Kind::Ladder => "ladder",
            Kind::Refine => "refine",
            Kind::Lat50 => "lat50",
            Kind::Lat90 => "lat90",
        }
    }
}

/// Where the run is: what the 1 ms timer does next.
pub(crate) enum Phase {
    Login,
    Pause(Instant),
    Send,
    Drain(Instant),
    Late {
        progress: u64,
        at: Instant,
    },
    /// Waiting for msg_server to be quiet before the latency runs: since
    /// `start`; `cpu`, the servers' CPU seconds at `at`.
    Quiet {
        start: Instant,
        at: Instant,
        cpu: f64,
    },
    Done,
}

/// One step of the ladder (or a latency run): its counters and CPU readings.
pub(crate) struct Step {
    pub(crate) kind: Kind,
    pub(crate) target: u64,
    pub(crate) start: Instant,
    pub(crate) send_secs: f64,
    /// Per user: its `sent` when the step began.
    pub(crate) first_seq: Vec<u32>,
    pub(crate) sent: u64,
    pub(crate) acked: u64,
    pub(crate) received: u64,
    pub(crate) dup: u64,
    /// A late step's acked and received counts when its drain window ended.
    pub(crate) at_drain: Option<(u64, u64)>,
    pub(crate) cpu0: Cpu,
    pub(crate) cpu1: Cpu,
    pub(crate) wall0: Instant,
    pub(crate) wall1: Instant,
}

/// Latency of the messages whose sender and receiver are on the same
/// msg_server, and of those that cross servers (over NATS).
pub(crate) struct Split {
    pub(crate) same: Histogram<u64>,
    pub(crate) cross: Histogram<u64>,
}

/// The generator: every user's counters and the run's phase.
pub(crate) struct Gen {
    pub(crate) users: u32,
    /// The msg_servers' client addresses; user `u` connects to
    /// `addrs[(u - 1) % addrs.len()]`.
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) config: ConnConfig,
    /// Per user: its open connection.
    pub(crate) by_user: Vec<Option<Handle>>,
    /// Per user: messages it sent (the next sequence number).
    pub(crate) sent: Vec<u32>,
    /// Per user: of those, acknowledged by the server (acks come in order).
    pub(crate) acked: Vec<u32>,
    pub(crate) next_connect: u32,
    pub(crate) logged_in: u32,
    pub(crate) login_start: Instant,
    /// `recv[user][seq]`: times message `seq` of `user` was received.
    pub(crate) recv: Vec<Vec<u8>>,
    pub(crate) rng: bench::traffic::Traffic,
    pub(crate) epoch: Instant,
    pub(crate) hist: Histogram<u64>,
    pub(crate) split: Split,
    pub(crate) msg: ImMsgData,
    pub(crate) phase: Phase,
    pub(crate) step: Option<Step>,
    pub(crate) step_secs: f64,
    pub(crate) drain: Duration,
    /// After a late step, how long without any progress means "lost"
    /// (`--stall-secs`).
    pub(crate) stall: Duration,
    pub(crate) rates: Vec<u64>,
    pub(crate) ladder_idx: usize,
    pub(crate) best: Option<u64>,
    /// The lowest rate that failed, once one did.
    pub(crate) failed_at: Option<u64>,
    /// Refinement steps left (`--refine`).
    pub(crate) refine_left: u32,
    pub(crate) limit: &'static str,
    pub(crate) server_pids: Vec<u32>,
    /// Process trees whose CPU is reported by name (`--watch NAME=PID`).
    pub(crate) watch: Vec<(String, u32)>,
    pub(crate) error: Option<String>,
    pub(crate) pending_next: Option<(Kind, u64)>,
    /// The rate of the fixed step, if any (`--fixed-rate`).
    pub(crate) fixed_rate: Option<u64>,
}

/// The generator: its connections, and [`Gen`] as their shared state.
pub(crate) type GenServer = Server<User>;

impl Gen {
    pub(crate) fn fail(&mut self, ctx: &mut Context, msg: String) {
        if self.error.is_none() {
            self.error = Some(msg);
        }
        self.phase = Phase::Done;
        ctx.stop();
    }

    /// The index of the msg_server `user` connects to.
    pub(crate) fn server_of(&self, user: u32) -> usize {
        (user as usize - 1) % self.addrs.len()
    }

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    /// Users whose connections may start now (logins in flight are kept
    /// within [`LOGIN_WINDOW`]).
    pub(crate) fn users_to_connect(&mut self) -> std::ops::Range<u32> {
        let first = self.next_connect;
        while self.next_connect <= self.users
            && self.next_connect - 1 - self.logged_in < LOGIN_WINDOW
        {
            self.next_connect += 1;
        }
        first..self.next_connect
    }

    /// Notes the outcome of starting `user`'s connection; false on failure.
    pub(crate) fn connecting(
        &mut self,
        ctx: &mut Context,
        user: u32,
        r: netlib::Result<Handle>,
    ) -> bool {
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

    pub(crate) fn received(&mut self, me: u32, msg: &ImMsgData, now: u64) -> Result<(), String> {
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
        let us = (now.saturating_sub(sent_ns) / 1000).max(1);
        let _ = self.hist.record(us);
        let split = if self.server_of(from) == self.server_of(me) {
            &mut self.split.same
        } else {
            &mut self.split.cross
        };
        let _ = split.record(us);
        Ok(())
    }

    fn start_step(&mut self, kind: Kind, target: u64) {
        let first_seq = self.sent.clone();
        self.hist.reset();
        self.split.same.reset();
        self.split.cross.reset();
        let now = Instant::now();
        let cpu0 = self.cpu_now();
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
            at_drain: None,
            cpu0,
            cpu1: Cpu::default(),
            wall0: now,
            wall1: now,
        });
        self.phase = Phase::Send;
    }

    fn send_one(server: &mut GenServer, ctx: &mut Context) -> Result<(), String> {
        let g = &mut server.shared;
        let (from, to) = g.rng.pair(g.users);
        let h = g.by_user[from as usize].ok_or("no connection")?;
        let now = g.now_ns();
        let seq = g.sent[from as usize];
        bench::traffic::write_payload(&mut g.msg.msg_data, from, to, seq, now);
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

    /// The step is settled (verified): pick what runs next.
    fn next(&mut self, passed: bool, why: &'static str) {
        let s = self.step.as_ref().unwrap();
        let (kind, target) = (s.kind, s.target);
        let now = Instant::now();
        match kind {
            Kind::Idle => {
                self.pending_next = Some(match self.fixed_rate {
                    Some(r) => (Kind::Fixed, r),
                    None => (Kind::Ladder, self.rates[self.ladder_idx]),
                });
                self.phase = Phase::Pause(now + PAUSE);
            }
            Kind::Fixed => {
                // A rate passed with zero loss, like a rung of the ladder.
                if passed {
                    self.best = Some(target);
                }
                self.pending_next = Some((Kind::Ladder, self.rates[self.ladder_idx]));
                self.phase = Phase::Pause(now + PAUSE);
            }
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
                    self.failed_at = Some(target);
                    if self.refine_next(now) {
                        return;
                    }
                }
                self.finish_ladder(now);
            }
            Kind::Refine => {
                if passed {
                    self.best = self.best.max(Some(target));
                } else {
                    self.limit = why;
                    self.failed_at = Some(target);
                }
                if !self.refine_next(now) {
                    self.finish_ladder(now);
                }
            }
            Kind::Lat50 => {
                let best = self.best.unwrap_or(0);
                self.pending_next = Some((Kind::Lat90, best * 9 / 10));
                self.phase = Phase::Pause(now + PAUSE);
            }
            Kind::Lat90 => self.phase = Phase::Done,
        }
    }

    /// After a failing step: queues a step halfway between the highest
    /// passing rate and the lowest failing one, while refinement steps are
    /// left and the two are more than 5% apart. False if there is none.
    fn refine_next(&mut self, now: Instant) -> bool {
        let (Some(low), Some(high)) = (self.best, self.failed_at) else {
            return false;
        };
        let mid = (low + high) / 2 / 100 * 100;
        if self.refine_left == 0 || (high.saturating_sub(low)) * 20 <= high || mid <= low {
            return false;
        }
        self.refine_left -= 1;
        self.pending_next = Some((Kind::Refine, mid));
        self.phase = Phase::Pause(now + PAUSE);
        true
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
                self.phase = Phase::Quiet {
                    start: now,
                    at: now,
                    cpu: self.servers_cpu(),
                };
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
            Phase::Quiet { start, at, cpu } => {
                if now - at >= QUIET_WINDOW {
                    let servers = self.servers_cpu();
                    let used = (servers - cpu) / (now - at).as_secs_f64();
                    if used < QUIET_CPU || now - start >= QUIET_MAX {
                        out(&format!(
                            "im_quiet users {} after_s {:.1} server_cpu {used:.2}",
                            self.users,
                            (now - start).as_secs_f64()
                        ));
                        self.phase = Phase::Pause(now + PAUSE);
                    } else {
                        self.phase = Phase::Quiet {
                            start,
                            at: now,
                            cpu: servers,
                        };
                    }
                }
            }
            Phase::Drain(since) => {
                let done = self.complete();
                if done || now - since >= self.drain {
                    let cpu1 = self.cpu_now();
                    {
                        let s = self.step.as_mut().unwrap();
                        s.wall1 = now;
                        s.cpu1 = cpu1;
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
                        // Reported when it settles: its CPU and latency
                        // then cover every message.
                        let s = self.step.as_mut().unwrap();
                        s.at_drain = Some((s.acked, s.received));
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
                    let cpu1 = self.cpu_now();
                    let s = self.step.as_mut().unwrap();
                    (s.wall1, s.cpu1) = (now, cpu1);
                    self.report("late");
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
                } else if now - at >= self.stall {
                    self.report("late");
                    let e = self.verify().err().unwrap_or_default();
                    self.fail(
                        ctx,
                        format!(
                            "exactly-once violated: nothing more arrived for {:.1} s: {e}",
                            self.stall.as_secs_f64()
                        ),
                    );
                }
            }
        }
        0
    }
}

/// Sends the messages due, from the 1 ms timer.
pub(crate) fn tick(server: &mut GenServer, ctx: &mut Context) {
    let n = server.shared.tick(ctx);
    for _ in 0..n {
        if let Err(e) = Gen::send_one(server, ctx) {
            server.shared.fail(ctx, e);
            return;
        }
    }
}
