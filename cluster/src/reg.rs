//! The registry node (seed 002 section 3, "Reg"): executors register and
//! renew their lease with every [`ExeState`] they send (kept in an
//! [`ExecutorMgr`]); publishers publish tasks, which Reg assigns (least
//! loaded executor with a free slot and the task's file, ties rotating),
//! telling the executor (ASSIGN) and the publisher (ASSIGNED). An
//! executor whose lease runs out is removed and its tasks are assigned
//! again.
//!
//! State is in memory only. A restarted Reg rebuilds it: every executor's
//! next heartbeat re-registers it with its running tasks, and publishers
//! publish their unfinished tasks again every `republish_ms` (a task Reg
//! knows is not assigned twice). For `grace_ms` after starting Reg assigns
//! nothing, so running tasks are reported before anything is reassigned.

use crate::config::NodeConfig;
use crate::exec_mgr::{ExecutorMgr, Upsert};
use crate::node::{Node, Recent, Shared};
use crate::proto::{self, Assign, ExeState, ListReply, TaskId, TaskRow, TaskSpec};
use crate::wire::{Reader, Writer};
use msgcenter::{Handlers, Message, Outcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A task Reg knows.
struct Entry {
    spec: TaskSpec,
    publisher: SocketAddr,
    exe: Option<SocketAddr>,
    attempts: u32,
    assigned_at: Instant,
    acked: bool,
}

/// Reg's tables. See the module docs.
pub struct RegState {
    mgr: ExecutorMgr,
    tasks: HashMap<TaskId, Entry>,
    pending: Vec<TaskId>,
    done: Recent,
    started: Instant,
    rebuilt: u64,
    cfg: NodeConfig,
}

type Sh = Arc<Shared<RegState>>;

impl RegState {
    fn new(cfg: NodeConfig) -> RegState {
        RegState {
            mgr: ExecutorMgr::default(),
            tasks: HashMap::new(),
            pending: Vec::new(),
            done: Recent::new(100_000),
            started: Instant::now(),
            rebuilt: 0,
            cfg,
        }
    }

    fn requeue(&mut self, id: TaskId, why: &str) {
        if let Some(e) = self.tasks.get_mut(&id) {
            if let Some(x) = e.exe.take() {
                self.mgr.remove_task(x, &e.spec);
                log::info!(
                    "reg: task {id:x} ({}) back to pending: {why}",
                    e.spec.kind.name()
                );
            }
            if !self.pending.contains(&id) {
                self.pending.push(id);
            }
        }
    }

    fn assign(&mut self, sh: &Sh, id: TaskId, x: SocketAddr, out: &mut Vec<Message>) {
        let Some(e) = self.tasks.get_mut(&id) else {
            return;
        };
        e.exe = Some(x);
        e.attempts += 1;
        e.assigned_at = Instant::now();
        e.acked = false;
        self.mgr.add_task(x, &e.spec);
        let holders = if e.spec.file.is_empty() {
            Vec::new()
        } else {
            self.mgr.holders(&e.spec.file)
        };
        let body = Assign {
            spec: e.spec.clone(),
            publisher: e.publisher,
            holders,
        }
        .encode();
        log::info!(
            "reg: task {id:x} ({}) -> {x} (attempt {})",
            e.spec.kind.name(),
            e.attempts
        );
        let sh2 = sh.clone();
        out.push(
            Message::new(x, proto::ASSIGN, body).need_ack().on_done(
                move |_, outcome| match outcome {
                    Outcome::Acked { .. } => sh2.run(|st, _| {
                        if let Some(e) = st.tasks.get_mut(&id) {
                            if e.exe == Some(x) {
                                e.acked = true;
                            }
                        }
                    }),
                    Outcome::Failed(why) => {
                        let sh3 = sh2.clone();
                        sh2.run(|st, out| {
                            if st.tasks.get(&id).is_some_and(|e| e.exe == Some(x)) {
                                st.requeue(id, &format!("ASSIGN to {x} failed: {why}"));
                                st.schedule(&sh3, out);
                            }
                        })
                    }
                    Outcome::Written => {}
                },
            ),
        );
        out.push(assigned_msg(e.publisher, id, x));
    }

    /// Assigns what can be assigned (nothing during the grace period).
    fn schedule(&mut self, sh: &Sh, out: &mut Vec<Message>) {
        if self.started.elapsed() < self.cfg.grace() || self.mgr.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.pending);
        for id in pending {
            let Some(e) = self.tasks.get(&id) else {
                continue;
            };
            if e.exe.is_some() {
                continue;
            }
            match self.mgr.pick(&e.spec) {
                Some(x) => self.assign(sh, id, x, out),
                None => self.pending.push(id),
            }
        }
    }

    fn on_state(&mut self, sh: &Sh, from: SocketAddr, st: ExeState, out: &mut Vec<Message>) {
        let now = Instant::now();
        match self.mgr.upsert(
            from,
            st.capacity,
            st.incarnation,
            st.files,
            self.cfg.lease,
            now,
        ) {
            Upsert::New => log::info!(
                "reg: executor {from} registered (capacity {}, {} running)",
                st.capacity,
                st.running.len()
            ),
            Upsert::Renewed => {}
            Upsert::Restarted(lost) => {
                log::info!("reg: executor {from} restarted; {} tasks lost", lost.len());
                for id in lost {
                    if let Some(e) = self.tasks.get_mut(&id) {
                        e.exe = None;
                        if !self.pending.contains(&id) {
                            self.pending.push(id);
                        }
                    }
                }
            }
        }
        for id in &st.finished {
            if let Some(e) = self.tasks.remove(id) {
                if let Some(x) = e.exe {
                    self.mgr.remove_task(x, &e.spec);
                }
                self.pending.retain(|p| p != id);
            }
            self.done.insert(*id);
        }
        for id in &st.abandoned {
            if self.tasks.get(id).is_some_and(|e| e.exe == Some(from)) {
                if let Some(e) = self.tasks.remove(id) {
                    self.mgr.remove_task(from, &e.spec);
                    log::info!("reg: task {id:x} abandoned by {from}");
                }
            }
        }
        let mut reported = std::collections::HashSet::new();
        for a in st.running {
            let id = a.spec.id;
            reported.insert(id);
            if self.done.contains(id) {
                continue;
            }
            match self.tasks.get_mut(&id) {
                None => {
                    self.rebuilt += 1;
                    log::info!(
                        "reg: rebuilt task {id:x} ({}) on {from}",
                        a.spec.kind.name()
                    );
                    self.mgr.add_task(from, &a.spec);
                    self.tasks.insert(
                        id,
                        Entry {
                            spec: a.spec,
                            publisher: a.publisher,
                            exe: Some(from),
                            attempts: 1,
                            assigned_at: now,
                            acked: true,
                        },
                    );
                }
                Some(e) if e.exe.is_none() => {
                    // Requeued (its lease ran out), or republished to a
                    // restarted Reg, but still running: keep it where it is.
                    self.rebuilt += 1;
                    log::info!("reg: task {id:x} found running on {from}");
                    e.exe = Some(from);
                    e.acked = true;
                    self.mgr.add_task(from, &e.spec);
                    self.pending.retain(|p| *p != id);
                }
                Some(_) => {}
            }
        }
        // Tasks acknowledged by this executor a while ago that it no
        // longer reports were lost (it restarted without us noticing).
        let stale = 2 * self.cfg.heartbeat + Duration::from_secs(1);
        let lost: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(id, e)| {
                e.exe == Some(from)
                    && e.acked
                    && e.assigned_at.elapsed() > stale
                    && !reported.contains(id)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in lost {
            self.requeue(id, "no longer reported by its executor");
        }
        self.schedule(sh, out);
    }

    fn on_publish(&mut self, sh: &Sh, from: SocketAddr, spec: TaskSpec, out: &mut Vec<Message>) {
        if self.done.contains(spec.id) {
            return;
        }
        if let Some(e) = self.tasks.get(&spec.id) {
            if let Some(x) = e.exe {
                out.push(assigned_msg(from, spec.id, x));
            }
            return;
        }
        if self.tasks.len() >= self.cfg.max_tasks {
            return log::warn!(
                "reg: {} unfinished tasks (max_tasks); PUBLISH of {:x} from {from} refused",
                self.tasks.len(),
                spec.id
            );
        }
        let id = spec.id;
        self.tasks.insert(
            id,
            Entry {
                spec,
                publisher: from,
                exe: None,
                attempts: 0,
                assigned_at: Instant::now(),
                acked: false,
            },
        );
        self.pending.push(id);
        self.schedule(sh, out);
    }

    fn tick(&mut self, sh: &Sh, out: &mut Vec<Message>) {
        for dead in self.mgr.expire(Instant::now()) {
            log::warn!(
                "reg: executor {} lease expired; reassigning {} tasks",
                dead.addr,
                dead.tasks.len()
            );
            for id in dead.tasks {
                if let Some(e) = self.tasks.get_mut(&id) {
                    if e.exe == Some(dead.addr) {
                        e.exe = None;
                        self.pending.push(id);
                    }
                }
            }
        }
        self.schedule(sh, out);
    }

    fn list(&self) -> ListReply {
        let mut tasks: Vec<TaskRow> = self
            .tasks
            .values()
            .map(|e| TaskRow {
                spec: e.spec.clone(),
                publisher: e.publisher,
                exe: e.exe,
                attempts: e.attempts,
            })
            .collect();
        tasks.sort_by_key(|t| t.spec.id);
        ListReply {
            exes: self.mgr.rows(Instant::now()),
            tasks,
            rebuilt: self.rebuilt,
        }
    }
}

fn assigned_msg(publisher: SocketAddr, id: TaskId, x: SocketAddr) -> Message {
    Message::new(
        publisher,
        proto::ASSIGNED,
        Writer::new().u64(id).addr(x).finish(),
    )
    .need_ack()
}

/// A running Reg. Dropping it stops it.
pub struct Reg {
    node: Node,
}

impl Reg {
    /// Starts a Reg listening on `cfg.center.listen`.
    pub fn start(cfg: NodeConfig) -> Result<Reg, String> {
        let sh: Sh = Shared::new(RegState::new(cfg.clone()), cfg.clone());
        let (a, b, c) = (sh.clone(), sh.clone(), sh.clone());
        let handlers = Handlers::new()
            .on(proto::EXE_STATE, move |_, m| {
                match ExeState::decode(m.body) {
                    Ok(st) => a.run(|s, out| s.on_state(&a, m.from, st, out)),
                    Err(e) => log::warn!("reg: EXE_STATE from {}: {e}", m.from),
                }
            })
            .on(proto::PUBLISH, move |_, m| {
                let mut r = Reader::new(m.body);
                match TaskSpec::read(&mut r).and_then(|s| r.end().map(|_| s)) {
                    Ok(spec) => b.run(|s, out| s.on_publish(&b, m.from, spec, out)),
                    Err(e) => log::warn!("reg: PUBLISH from {}: {e}", m.from),
                }
            })
            .on(proto::LIST, move |cx, _| {
                let body = c.lock().list().encode();
                cx.reply(proto::LIST_REPLY, body);
            });
        let every = (cfg.lease / 4).max(Duration::from_millis(20));
        let node = Node::start(&sh, handlers, every, |sh| sh.run(|s, out| s.tick(sh, out)))?;
        log::info!("reg: listening on {}", node.addr());
        Ok(Reg { node })
    }

    /// The address Reg listens on.
    pub fn addr(&self) -> SocketAddr {
        self.node.addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Kind;

    fn addr(p: u16) -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 1], p))
    }

    fn state(cap: u32, running: Vec<Assign>, finished: Vec<TaskId>) -> ExeState {
        ExeState {
            capacity: cap,
            incarnation: 1,
            files: Vec::new(),
            running,
            finished,
            abandoned: Vec::new(),
        }
    }

    fn spec(id: TaskId) -> TaskSpec {
        TaskSpec {
            id,
            kind: Kind::NQueens,
            file: String::new(),
            passive: false,
        }
    }

    /// Runs `f` and returns the messages it wanted to send, as (to, type,
    /// task id); they are leaked rather than dropped (dropping reports
    /// `Shutdown` to their callbacks, which would requeue the tasks).
    fn step(
        sh: &Sh,
        f: impl FnOnce(&mut RegState, &Sh, &mut Vec<Message>),
    ) -> Vec<(SocketAddr, u32, u64)> {
        let mut taken = Vec::new();
        sh.run(|st, out| {
            f(st, sh, out);
            taken = std::mem::take(out);
        });
        let seen = taken
            .iter()
            .map(|m| {
                let id = u64::from_be_bytes(m.body[..8].try_into().unwrap());
                (m.to, m.msg_type, id)
            })
            .collect();
        for m in taken {
            std::mem::forget(m);
        }
        seen
    }

    #[test]
    fn expiry_reassigns_and_restart_rebuilds() {
        let cfg = NodeConfig {
            lease: Duration::from_millis(100),
            grace: Some(Duration::ZERO),
            ..NodeConfig::default()
        };
        let sh: Sh = Shared::new(RegState::new(cfg.clone()), cfg.clone());
        let (a, b, p) = (addr(1), addr(2), addr(9));
        step(&sh, |st, sh, out| {
            st.on_state(sh, a, state(1, vec![], vec![]), out)
        });
        step(&sh, |st, sh, out| {
            st.on_state(sh, b, state(1, vec![], vec![]), out)
        });
        let mut sent = Vec::new();
        for id in 1..=3 {
            sent.extend(step(&sh, |st, sh, out| st.on_publish(sh, p, spec(id), out)));
        }
        // One task per executor (capacity 1), each with ASSIGN and ASSIGNED.
        let assigns: Vec<_> = sent.iter().filter(|m| m.1 == proto::ASSIGN).collect();
        assert_eq!(assigns.len(), 2, "{sent:?}");
        assert!(sent
            .iter()
            .filter(|m| m.1 == proto::ASSIGNED)
            .all(|m| m.0 == p));
        let on_a = assigns.iter().find(|m| m.0 == a).unwrap().2;
        let on_b = assigns.iter().find(|m| m.0 == b).unwrap().2;
        // A falls silent; B renews. A's task waits for a free slot.
        std::thread::sleep(Duration::from_millis(150));
        let running_b = Assign {
            spec: spec(on_b),
            publisher: p,
            holders: vec![],
        };
        step(&sh, |st, sh, out| {
            st.on_state(sh, b, state(1, vec![running_b.clone()], vec![]), out)
        });
        assert!(step(&sh, |st, sh, out| st.tick(sh, out)).is_empty());
        let l = sh.lock().list();
        assert_eq!(l.exes.len(), 1);
        assert!(l.tasks.iter().any(|t| t.spec.id == on_a && t.exe.is_none()));
        // B finishes: A's old task (or the third) goes to B.
        let sent = step(&sh, |st, sh, out| {
            st.on_state(sh, b, state(1, vec![], vec![on_b]), out)
        });
        assert!(
            sent.iter().any(|m| m.0 == b && m.1 == proto::ASSIGN),
            "{sent:?}"
        );
        // A result already delivered is not published again.
        assert!(step(&sh, |st, sh, out| st.on_publish(sh, p, spec(on_b), out)).is_empty());

        // A new Reg learns B's running task from its heartbeat, assigns
        // nothing during its grace, and does not assign that task twice.
        let cfg2 = NodeConfig {
            grace: Some(Duration::from_secs(60)),
            ..cfg.clone()
        };
        let sh2: Sh = Shared::new(RegState::new(cfg2.clone()), cfg2);
        step(&sh2, |st, sh, out| {
            st.on_state(sh, b, state(2, vec![running_b.clone()], vec![]), out)
        });
        let l = sh2.lock().list();
        assert_eq!(l.tasks.len(), 1);
        assert_eq!(l.tasks[0].exe, Some(b));
        assert_eq!(l.rebuilt, 1);
        let sent = step(&sh2, |st, sh, out| st.on_publish(sh, p, spec(on_b), out));
        assert_eq!(sent, vec![(p, proto::ASSIGNED, on_b)]);
        assert!(step(&sh2, |st, sh, out| st.on_publish(sh, p, spec(77), out)).is_empty());
    }
}
