//! The publisher side of a task (seed 002's "Exe2Reg1 发布任务"): a job
//! driver or the CLI publishes tasks to Reg, keeps each task's input until
//! the executor Reg chose fetches it, and takes the first result of every
//! task (a second result - the task ran twice because an executor was
//! presumed dead, or Reg restarted - is counted and dropped).
//!
//! Unfinished tasks are published again every `republish_ms`: Reg ignores
//! tasks it knows, so this only matters when Reg lost them (it
//! restarted) or an executor gave one up.

use crate::config::NodeConfig;
use crate::node::{Node, Shared};
use crate::proto::{self, Kind, ListReply, TaskId, TaskSpec};
use crate::wire::{Reader, Writer};
use msgcenter::pool::random_u64;
use msgcenter::{Handlers, Message};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// What happened to a published task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Reg assigned it to an executor (again, after a failure).
    Assigned {
        /// The task.
        task: TaskId,
        /// The executor.
        exe: SocketAddr,
    },
    /// Its result (the first one; later ones are dropped).
    Result {
        /// The task.
        task: TaskId,
        /// The executor that ran it.
        exe: SocketAddr,
        /// The result, or the reason it failed.
        result: Result<Vec<u8>, String>,
    },
}

struct PubTask {
    spec: TaskSpec,
    input: Vec<u8>,
    exe: Option<SocketAddr>,
    done: bool,
    published: Instant,
}

/// A publisher's tables.
pub struct PubInner {
    reg: SocketAddr,
    tasks: HashMap<TaskId, PubTask>,
    events: mpsc::Sender<Event>,
    duplicates: u64,
    lists: Vec<mpsc::Sender<ListReply>>,
}

impl PubInner {
    fn publish(&mut self, id: TaskId, out: &mut Vec<Message>) {
        if let Some(t) = self.tasks.get_mut(&id) {
            t.published = Instant::now();
            let mut w = Writer::new();
            t.spec.write(&mut w);
            out.push(Message::new(self.reg, proto::PUBLISH, w.finish()).need_ack());
        }
    }
}

type Sh = Arc<Shared<PubInner>>;

/// A running publisher. Dropping it stops it.
pub struct Publisher {
    node: Node,
    sh: Sh,
    events: Mutex<mpsc::Receiver<Event>>,
    base: u64,
    next: AtomicU64,
}

impl Publisher {
    /// Starts a publisher (it listens on `cfg.center.listen`: executors
    /// connect to it) for the Reg at `reg`.
    pub fn start(cfg: NodeConfig, reg: SocketAddr) -> Result<Publisher, String> {
        let (tx, rx) = mpsc::channel();
        let sh: Sh = Shared::new(
            PubInner {
                reg,
                tasks: HashMap::new(),
                events: tx,
                duplicates: 0,
                lists: Vec::new(),
            },
            cfg.clone(),
        );
        let (a, b, c, d) = (sh.clone(), sh.clone(), sh.clone(), sh.clone());
        let handlers = Handlers::new()
            .on(proto::FETCH, move |cx, m| {
                let mut r = Reader::new(m.body);
                let Ok(id) = r.u64() else {
                    return log::warn!("publisher: bad FETCH from {}", m.from);
                };
                let s = a.lock();
                let body = match s.tasks.get(&id) {
                    Some(t) if !t.done => proto::encode_tagged(id, true, &t.input),
                    _ => proto::encode_tagged(id, false, &[]),
                };
                drop(s);
                cx.post(Message::new(m.from, proto::INPUT, body).need_ack());
            })
            .on(proto::RESULT, move |_, m| {
                match proto::decode_tagged(m.body) {
                    Ok((id, ok, data)) => b.run(|s, _| match s.tasks.get_mut(&id) {
                        Some(t) if !t.done => {
                            t.done = true;
                            t.input = Vec::new();
                            let result = if ok {
                                Ok(data.to_vec())
                            } else {
                                Err(String::from_utf8_lossy(data).into_owned())
                            };
                            let _ = s.events.send(Event::Result {
                                task: id,
                                exe: m.from,
                                result,
                            });
                        }
                        Some(_) => {
                            s.duplicates += 1;
                            log::info!(
                                "publisher: second result of task {id:x} from {} dropped",
                                m.from
                            );
                        }
                        None => {
                            log::warn!("publisher: result of unknown task {id:x} from {}", m.from)
                        }
                    }),
                    Err(e) => log::warn!("publisher: RESULT from {}: {e}", m.from),
                }
            })
            .on(proto::ASSIGNED, move |_, m| {
                let mut r = Reader::new(m.body);
                let (Ok(id), Ok(exe)) = (r.u64(), r.addr()) else {
                    return log::warn!("publisher: bad ASSIGNED from {}", m.from);
                };
                c.run(|s, _| {
                    if let Some(t) = s.tasks.get_mut(&id) {
                        if !t.done && t.exe != Some(exe) {
                            t.exe = Some(exe);
                            let _ = s.events.send(Event::Assigned { task: id, exe });
                        }
                    }
                });
            })
            .on(proto::LIST_REPLY, move |_, m| {
                match ListReply::decode(m.body) {
                    Ok(l) => {
                        for w in d.lock().lists.drain(..) {
                            let _ = w.send(l.clone());
                        }
                    }
                    Err(e) => log::warn!("publisher: LIST_REPLY: {e}"),
                }
            });
        let every = (cfg.republish / 4).max(Duration::from_millis(20));
        let node = Node::start(&sh, handlers, every, |sh| {
            let period = sh.cfg.republish;
            sh.run(|s, out| {
                let due: Vec<TaskId> = s
                    .tasks
                    .iter()
                    .filter(|(_, t)| !t.done && t.published.elapsed() >= period)
                    .map(|(id, _)| *id)
                    .collect();
                for id in due {
                    s.publish(id, out);
                }
            })
        })?;
        Ok(Publisher {
            node,
            sh,
            events: Mutex::new(rx),
            base: random_u64() & !0xffff_ffff,
            next: AtomicU64::new(1),
        })
    }

    /// Publishes a task of `kind` with `input`; `file` (or "") is a file
    /// the executor must hold; a `passive` task takes no slot.
    pub fn submit(
        &self,
        kind: Kind,
        file: &str,
        passive: bool,
        input: Vec<u8>,
    ) -> Result<TaskId, String> {
        if input.len() > self.sh.cfg.max_task_bytes {
            return Err(format!(
                "task input of {} bytes is over max_task_bytes ({})",
                input.len(),
                self.sh.cfg.max_task_bytes
            ));
        }
        let id = self.base | self.next.fetch_add(1, Ordering::Relaxed);
        let spec = TaskSpec {
            id,
            kind,
            file: file.to_string(),
            passive,
        };
        self.sh.run(|s, out| {
            s.tasks.insert(
                id,
                PubTask {
                    spec,
                    input,
                    exe: None,
                    done: false,
                    published: Instant::now(),
                },
            );
            s.publish(id, out);
        });
        Ok(id)
    }

    /// The next event, or `None` after `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<Event> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .recv_timeout(timeout)
            .ok()
    }

    /// Stops waiting for `task` (an executor fetching it is told so).
    pub fn cancel(&self, task: TaskId) {
        if let Some(t) = self.sh.lock().tasks.get_mut(&task) {
            t.done = true;
            t.input = Vec::new();
        }
    }

    /// Results received for tasks that already had one.
    pub fn duplicates(&self) -> u64 {
        self.sh.lock().duplicates
    }

    /// Reg's executors and tasks, or `None` if Reg did not answer within
    /// `timeout`.
    pub fn list(&self, timeout: Duration) -> Option<ListReply> {
        let (tx, rx) = mpsc::channel();
        let reg = self.sh.run(|s, out| {
            s.lists.push(tx);
            out.push(Message::new(s.reg, proto::LIST, Vec::new()));
            s.reg
        });
        let r = rx.recv_timeout(timeout).ok();
        if r.is_none() {
            log::warn!("publisher: no list from Reg {reg}");
        }
        r
    }

    /// The address executors reach this publisher at.
    pub fn addr(&self) -> SocketAddr {
        self.node.advertised()
    }
}
