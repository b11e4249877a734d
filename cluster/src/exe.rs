//! The executor node (seed 002 section 3, "Exe"). It registers with Reg
//! and renews its lease by sending its [`ExeState`] every `heartbeat_ms`
//! (and at once when a task ends, so its slot is reused without delay).
//! For each task Reg assigns (ASSIGN) it opens an executor-to-executor
//! connection to the publisher (FETCH, the seed's steps 3-6), runs the
//! task on its thread pool when the input arrives (INPUT), and sends the
//! result back (RESULT). A task that cannot get its input, or whose
//! publisher is gone, ends without a result; the publisher's republishing
//! covers it.
//!
//! Its files are the regular files of its data directory (rescanned on
//! every heartbeat, so a file it pulled or generated is announced).

use crate::config::NodeConfig;
use crate::jobs::{self, Env};
use crate::node::{Node, Recent, Shared};
use crate::proto::{self, Assign, ExeState, FileInfo, TaskId};
use msgcenter::pool::random_u64;
use msgcenter::pool::Pool;
use msgcenter::{Handlers, Message, Outcome};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where an executor runs and what it offers.
#[derive(Debug, Clone)]
pub struct ExeOptions {
    /// Reg's address.
    pub reg: SocketAddr,
    /// Tasks run at once (pool threads).
    pub capacity: u32,
    /// The data directory (its files are announced to Reg).
    pub data_dir: PathBuf,
}

struct Run {
    assign: Assign,
    started: bool,
}

/// An executor's bookkeeping.
pub struct ExeInner {
    opts: ExeOptions,
    incarnation: u64,
    files: Vec<FileInfo>,
    running: HashMap<TaskId, Run>,
    finished: Recent,
    abandoned: Vec<(TaskId, std::time::Instant)>,
    registered: bool,
}

type Sh = Arc<Shared<ExeInner>>;

/// The files in `dir` (regular files; partial downloads excluded).
pub fn scan_files(dir: &Path) -> Vec<FileInfo> {
    let mut files: Vec<FileInfo> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let md = e.metadata().ok()?;
            let size = md.len();
            (md.is_file() && !name.ends_with(".part") && !name.starts_with('.'))
                .then_some(FileInfo { name, size })
        })
        .collect();
    files.sort_by(|a, b| a.name.cmp(&b.name));
    files
}

impl ExeInner {
    fn state_msg(&mut self, sh: &Sh) -> Message {
        let st = ExeState {
            capacity: self.opts.capacity,
            incarnation: self.incarnation,
            files: self.files.clone(),
            running: self.running.values().map(|r| r.assign.clone()).collect(),
            finished: self.finished.iter().rev().take(512).copied().collect(),
            abandoned: self.abandoned.iter().map(|(id, _)| *id).collect(),
        };
        let msg = Message::new(self.opts.reg, proto::EXE_STATE, st.encode());
        if self.registered {
            return msg;
        }
        // Until Reg acknowledged one, every state message asks for an ack.
        let sh = sh.clone();
        msg.need_ack().on_done(move |_, o| {
            if let Outcome::Acked { .. } = o {
                let first = !std::mem::replace(&mut sh.lock().registered, true);
                if first {
                    log::info!("exe: registered with Reg");
                }
            }
        })
    }

    /// Ends task `id`: `delivered` (its result reached the publisher, or
    /// the publisher no longer needs it) or abandoned.
    fn finish(&mut self, sh: &Sh, id: TaskId, delivered: bool, why: &str, out: &mut Vec<Message>) {
        if self.running.remove(&id).is_some() {
            log::info!("exe: task {id:x} ended: {why}");
            if delivered {
                self.finished.insert(id);
            } else {
                self.abandoned.push((id, std::time::Instant::now()));
            }
            out.push(self.state_msg(sh));
        }
    }
}

/// A running executor. Dropping it stops it.
pub struct Exe {
    node: Node,
    _env: Arc<Env>,
}

impl Exe {
    /// Starts an executor; it registers with `opts.reg` at once.
    pub fn start(cfg: NodeConfig, opts: ExeOptions) -> Result<Exe, String> {
        std::fs::create_dir_all(&opts.data_dir)
            .map_err(|e| format!("{}: {e}", opts.data_dir.display()))?;
        let pool = Pool::new(opts.capacity as usize + 1, "exe-task").map_err(|e| e.to_string())?;
        let env = Arc::new(Env {
            data_dir: opts.data_dir.clone(),
            handle: OnceLock::new(),
            pool,
            shuffle: Default::default(),
            files: crate::files::FileService::new(opts.data_dir.clone(), cfg.clone()),
            cfg: cfg.clone(),
        });
        let sh: Sh = Shared::new(
            ExeInner {
                files: scan_files(&opts.data_dir),
                opts,
                incarnation: random_u64(),
                running: HashMap::new(),
                finished: Recent::new(4096),
                abandoned: Vec::new(),
                registered: false,
            },
            cfg.clone(),
        );
        let handlers = Self::handlers(&sh, &env);
        let env_t = env.clone();
        let node = Node::start(&sh, handlers, cfg.heartbeat, move |sh| {
            if let Some(h) = env_t.handle.get() {
                env_t.files.tick(h);
            }
            let pruned = env_t
                .shuffle
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .prune(Duration::from_secs(600));
            if pruned > 0 {
                log::info!("exe: dropped shuffle input of {pruned} reducers not here");
            }
            let files = scan_files(&sh.lock().opts.data_dir);
            sh.run(|s, out| {
                s.files = files;
                let keep = std::time::Duration::from_secs(10);
                s.abandoned.retain(|(_, at)| at.elapsed() < keep);
                out.push(s.state_msg(sh));
            });
        })?;
        let _ = env.handle.set(sh.handle().clone());
        sh.run(|s, out| out.push(s.state_msg(&sh)));
        log::info!("exe: listening on {}", node.addr());
        Ok(Exe { node, _env: env })
    }

    fn handlers(sh: &Sh, env: &Arc<Env>) -> Handlers {
        let (a, b) = (sh.clone(), sh.clone());
        let env_b = env.clone();
        let handlers = Handlers::new()
            .on(proto::ASSIGN, move |_, m| match Assign::decode(m.body) {
                Ok(assign) => {
                    let sh = a.clone();
                    a.run(|s, out| on_assign(s, &sh, assign, out));
                }
                Err(e) => log::warn!("exe: ASSIGN from {}: {e}", m.from),
            })
            .on(proto::INPUT, move |_, m| {
                match proto::decode_tagged(m.body) {
                    Ok((id, found, input)) => {
                        let input = input.to_vec();
                        let sh = b.clone();
                        b.run(|s, out| on_input(s, &sh, &env_b, id, found, input, out));
                    }
                    Err(e) => log::warn!("exe: INPUT from {}: {e}", m.from),
                }
            });
        let handlers = jobs::topk::handlers(handlers, env);
        crate::files::FileService::handlers(handlers, env)
    }

    /// The address the executor listens on.
    pub fn addr(&self) -> SocketAddr {
        self.node.addr()
    }
}

fn on_assign(s: &mut ExeInner, sh: &Sh, assign: Assign, out: &mut Vec<Message>) {
    let id = assign.spec.id;
    if s.running.contains_key(&id) || s.finished.contains(id) {
        return;
    }
    if s.running.len() >= sh.cfg.max_tasks {
        return log::warn!(
            "exe: {} tasks here (max_tasks); ASSIGN of {id:x} refused",
            s.running.len()
        );
    }
    s.abandoned.retain(|(a, _)| *a != id);
    log::info!(
        "exe: task {id:x} ({}) from {}",
        assign.spec.kind.name(),
        assign.publisher
    );
    let sh = sh.clone();
    out.push(
        Message::new(
            assign.publisher,
            proto::FETCH,
            crate::wire::Writer::new().u64(id).finish(),
        )
        .need_ack()
        .on_done(move |_, o| {
            if let Outcome::Failed(why) = o {
                let sh2 = sh.clone();
                sh.run(|s, out| s.finish(&sh2, id, false, &format!("no input: {why}"), out));
            }
        }),
    );
    s.running.insert(
        id,
        Run {
            assign,
            started: false,
        },
    );
}

fn on_input(
    s: &mut ExeInner,
    sh: &Sh,
    env: &Arc<Env>,
    id: TaskId,
    found: bool,
    input: Vec<u8>,
    out: &mut Vec<Message>,
) {
    if !found {
        return s.finish(sh, id, true, "the publisher no longer needs it", out);
    }
    let Some(run) = s.running.get_mut(&id) else {
        return;
    };
    if std::mem::replace(&mut run.started, true) {
        return;
    }
    let assign = run.assign.clone();
    let publisher = assign.publisher;
    let sh = sh.clone();
    let max = env.cfg.max_task_bytes;
    let done: jobs::Done = Box::new(move |result| {
        let (ok, body, why) = match result {
            Ok(r) if r.len() <= max => (true, r, "done".to_string()),
            Ok(r) => (
                false,
                format!("result of {} bytes over max_task_bytes", r.len()).into_bytes(),
                "result too large".to_string(),
            ),
            Err(e) => (false, e.clone().into_bytes(), format!("failed: {e}")),
        };
        let sh2 = sh.clone();
        sh.post_all(vec![Message::new(
            publisher,
            proto::RESULT,
            proto::encode_tagged(id, ok, &body),
        )
        .need_ack()
        .on_done(move |_, o| {
            let delivered = matches!(o, Outcome::Acked { .. });
            let why = format!("{why}, result {o:?}");
            let sh3 = sh2.clone();
            sh2.run(|s, out| s.finish(&sh3, id, delivered, &why, out));
        })]);
    });
    jobs::start(env, &assign, input, done);
}
