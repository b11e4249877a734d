//! The jobs of seed 004, each in its own module with both halves: what an
//! executor computes for one task, and the driver that splits the job into
//! tasks, publishes them ([`Publisher`]) and
//! combines the results.
//!
//! - [`nqueens`]: the board split by the first queens' positions;
//! - [`median`]: the k-th smallest value of data files held by the
//!   executors, found by searching on value (only counts travel);
//! - [`topk`]: the most frequent words, by a map-reduce shuffle between
//!   executors;
//! - [`datagen`]: the data files (`cluster gen-data`, `cluster gen-words`).
//!
//! Task work runs on the executor's [`Pool`], never on its loop.

pub mod datagen;
pub mod median;
pub mod nqueens;
pub mod topk;

use crate::config::NodeConfig;
use crate::proto::{Assign, Kind, TaskId};
use crate::publisher::{Event, Publisher};
use msgcenter::pool::Pool;
use msgcenter::CenterHandle;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Called once with a task's result or the reason it failed.
pub type Done = Box<dyn FnOnce(Result<Vec<u8>, String>) + Send>;

/// What an executor's tasks can use.
pub struct Env {
    /// The executor's data directory.
    pub data_dir: PathBuf,
    /// Its message center (set once started).
    pub handle: OnceLock<CenterHandle>,
    /// Its task threads.
    pub pool: Pool,
    /// Shuffle input waiting for reducers.
    pub shuffle: Mutex<topk::Shuffle>,
    /// File transfer, both sides.
    pub files: crate::files::FileService,
    /// Its settings.
    pub cfg: NodeConfig,
}

impl Env {
    /// A file of the data directory, refusing names that leave it.
    pub fn data_file(&self, name: &str) -> Result<PathBuf, String> {
        crate::files::check_name(name)?;
        Ok(self.data_dir.join(name))
    }
}

/// Starts task `a` with `input`; `done` is called once, from a pool
/// thread (or later, for a reducer waiting for its input).
pub fn start(env: &Arc<Env>, a: &Assign, input: Vec<u8>, done: Done) {
    let env2 = env.clone();
    let spec = a.spec.clone();
    match spec.kind {
        Kind::TopkReduce => topk::start_reduce(env, spec.id, &input, done),
        Kind::PullFile => {
            // On the pool: starting a transfer touches the disk.
            let (env, a) = (env.clone(), a.clone());
            if !env
                .clone()
                .pool
                .run(move || pull_file(&env, &a, &input, done))
            {
                log::warn!("exe: pool stopped; task {:x} dropped", spec.id);
            }
        }
        kind => {
            let queued = env.pool.run(move || {
                let r = match kind {
                    Kind::NQueens => nqueens::run_task(&input),
                    Kind::MedianCount => median::run_task(&env2, &input),
                    Kind::TopkMap => topk::run_map(&env2, spec.id, &input),
                    Kind::TopkReduce | Kind::PullFile => {
                        Err(format!("{} is not run on the pool", kind.name()))
                    }
                };
                done(r)
            });
            if !queued {
                log::warn!("exe: pool stopped; task {:x} dropped", a.spec.id);
            }
        }
    }
}

/// A PullFile task (input: the file's name): copies the file from an
/// executor holding it into this one's data directory.
fn pull_file(env: &Arc<Env>, a: &Assign, input: &[u8], done: Done) {
    let name = String::from_utf8_lossy(input).into_owned();
    let Some(h) = env.handle.get() else {
        return done(Err("center not started".into()));
    };
    let me = [h.local_addr(), h.advertised_addr()];
    if env.data_dir.join(&name).is_file() {
        return done(Ok(format!("{name} already here").into_bytes()));
    }
    let Some(&holder) = a.holders.iter().find(|x| !me.contains(x)) else {
        return done(Err(format!("no executor holds {name}")));
    };
    env.files.request(
        h,
        holder,
        &name,
        Box::new(move |r| {
            done(r.map(|t| {
                format!(
                    "{} {} bytes from {holder}, {} attempts, resumed from chunks {:?}",
                    t.path.display(),
                    t.size,
                    t.attempts,
                    t.resumed_from
                )
                .into_bytes()
            }))
        }),
    );
}

/// Progress of a job, for a CLI's progress bar.
pub trait Progress {
    /// `done` of `total` units finished; `note` says what is going on.
    fn update(&self, done: u64, total: u64, note: &str);
}

impl<F: Fn(u64, u64, &str)> Progress for F {
    fn update(&self, done: u64, total: u64, note: &str) {
        self(done, total, note)
    }
}

/// Per-executor tallies of a job: tasks and summed task time.
#[derive(Debug, Clone, Default)]
pub struct Work {
    /// Results per executor.
    pub tasks: HashMap<std::net::SocketAddr, u64>,
    /// Tasks whose result came second and was dropped.
    pub duplicates: u64,
    /// Tasks assigned more than once.
    pub reassigned: u64,
}

/// Publishes `inputs` and waits for every result (in input order). A task
/// failure ends the job with its reason; `timeout` bounds the wait for any
/// single event.
pub fn run_all(
    p: &Publisher,
    kind: Kind,
    inputs: Vec<(String, Vec<u8>)>,
    timeout: Duration,
    progress: &dyn Progress,
    work: &mut Work,
) -> Result<Vec<Vec<u8>>, String> {
    let total = inputs.len();
    let mut ids: HashMap<TaskId, usize> = HashMap::new();
    for (i, (file, input)) in inputs.into_iter().enumerate() {
        ids.insert(p.submit(kind, &file, false, input)?, i);
    }
    let mut results: Vec<Option<Vec<u8>>> = vec![None; total];
    let mut got = 0;
    let mut assigned: HashMap<TaskId, u32> = HashMap::new();
    progress.update(0, total as u64, kind.name());
    while got < total {
        let start = Instant::now();
        match p.next_event(timeout) {
            None => {
                return Err(format!(
                    "no progress for {:?} ({got} of {total} {} tasks done)",
                    start.elapsed(),
                    kind.name()
                ))
            }
            Some(Event::Assigned { task, .. }) => {
                let n = assigned.entry(task).or_default();
                *n += 1;
                if *n > 1 {
                    work.reassigned += 1;
                }
            }
            Some(Event::Result { task, exe, result }) => {
                let Some(&i) = ids.get(&task) else {
                    continue;
                };
                let r = result.map_err(|e| format!("task {task:x} on {exe}: {e}"))?;
                if results[i].replace(r).is_none() {
                    got += 1;
                    *work.tasks.entry(exe).or_default() += 1;
                    progress.update(got as u64, total as u64, kind.name());
                }
            }
        }
    }
    work.duplicates = p.duplicates();
    Ok(results.into_iter().map(|r| r.unwrap_or_default()).collect())
}
