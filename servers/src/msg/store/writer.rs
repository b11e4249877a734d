//! The part shared by the stores served by a thread of their own (SQLite,
//! PostgreSQL): the queue from the loop, group commit, and what happens
//! when the database fails.
//!
//! The loop's side is a [`WriterThread`], a [`MessageStore`] that sends each
//! operation over a channel. The thread blocks for the first queued
//! operation, takes every other one already queued (up to `StoreBatchMax`),
//! hands them to its [`Backend`] (one transaction, one commit) and posts
//! all outcomes back at once through [`Completions`].
//!
//! **Commits at least `StoreCommitIntervalUs` apart** ([`GroupCommit`]).
//! A commit costs about the same whether it carries one message or
//! hundreds (the write of the log and its fsync), and the loop pays to wake
//! a thread blocked on the channel. Under moderate load, committing as soon
//! as one operation is queued makes many small commits; so when an
//! operation comes sooner than the interval after the last batch started,
//! the thread first sleeps until the interval has passed (the loop's
//! sends meanwhile wake nobody) and then takes everything queued. An
//! operation after a quiet spell is not held back; under full load a commit
//! takes longer than the interval anyway. The price is up to one interval
//! more before a busy store acknowledges.
//!
//! **When the database fails** (disk full, file removed, permissions, the
//! server gone, a panic in the store code), a user of msg_server expects
//! three things, and gets them here, once for both backends:
//!
//! - *Nobody waits.* The failed batch is answered at once: every write
//!   refused ([`Refusal::Failed`], so no sender is acked), every query
//!   [`Outcome::Failed`]. Until the next retry every later operation is
//!   answered the same way without touching the database
//!   ([`Refusal::Unavailable`]), so the loop refuses messages at once
//!   instead of queueing them behind a dead disk.
//! - *It is visible.* One error line when the store becomes unavailable
//!   (another only if the error changes), one line when it is back with how
//!   many operations were refused meanwhile; [`MessageStore::health`] (shown
//!   in msg_server's stats line) says since when and why.
//! - *It comes back by itself.* The backend is dropped (its connection,
//!   its caches, whatever state a panic left) and opened afresh at the next
//!   retry, after a backoff of [`RETRY_MIN`] doubling to [`RETRY_MAX`]; the
//!   first batch that commits makes the store available again. A retry is
//!   made with real operations (the first ones queued after the backoff):
//!   only a commit shows the database takes writes again.

use super::{Completions, Done, GroupRecord, MessageStore, Op, Outcome, Refusal};
use imconn::Backoff;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// First wait before a failed store is tried again.
pub const RETRY_MIN: Duration = Duration::from_millis(100);

/// Longest wait between two tries of a failed store.
pub const RETRY_MAX: Duration = Duration::from_secs(5);

/// A database behind a [`WriterThread`].
pub trait Backend: Send {
    /// Runs `ops` in one transaction and commits it: one outcome per
    /// operation, in order. An error means the transaction rolled back -
    /// nothing of the batch is stored - and the backend is dropped (the
    /// next batch opens a new one).
    fn run_batch(&mut self, ops: Vec<Op>) -> Result<Vec<Outcome>, String>;

    /// The store is stopping (every queued operation ran): write whatever
    /// the backend held back. Nothing by default.
    fn close(&mut self) -> Result<(), String> {
        Ok(())
    }

    /// When the backend wants a batch even if no operation comes (to write
    /// what it held back); the thread then runs an empty one. None by
    /// default.
    fn wake_at(&self) -> Option<Instant> {
        None
    }
}

/// How long dropping a [`WriterThread`] waits for its thread to finish the
/// queue and [`Backend::close`].
pub const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Opens a backend (at start, and again after a failure).
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Backend>, String> + Send>;

/// How a writer thread groups operations into transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommit {
    /// Most operations per transaction (`StoreBatchMax`, at least 1).
    pub batch_max: usize,
    /// Least time between the starts of two batches
    /// (`StoreCommitIntervalUs`; zero: a batch starts as soon as an
    /// operation is queued).
    pub interval: Duration,
}

impl Default for GroupCommit {
    /// msg_server's defaults: 4096 operations, 2 ms.
    fn default() -> Self {
        GroupCommit {
            batch_max: 4096,
            interval: Duration::from_millis(2),
        }
    }
}

/// An operation queued for a writer thread, with its continuation.
pub type Job = (Op, Option<Done>);

/// Whether a store takes operations: see [`MessageStore::health`].
#[derive(Debug, Clone, PartialEq)]
pub enum Health {
    /// Operations commit.
    Available,
    /// The last try failed: operations are refused until a retry commits.
    Unavailable {
        /// When the first failure of this outage happened.
        since: SystemTime,
        /// The last failure.
        error: String,
        /// Operations refused since.
        refused: u64,
    },
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Health::Available => write!(f, "available"),
            Health::Unavailable {
                since,
                error,
                refused,
            } => {
                let secs = since.elapsed().map_or(0.0, |d| d.as_secs_f64());
                write!(
                    f,
                    "UNAVAILABLE for {secs:.1} s ({refused} operations refused): {error}"
                )
            }
        }
    }
}

/// The loop side of a store served by a thread of its own: a channel to
/// the thread. Dropping it (at msg_server's stop) lets the thread finish
/// what is queued, close the backend and exit, and waits up to
/// [`CLOSE_WAIT`] for that.
pub struct WriterThread {
    tx: Option<Sender<Job>>,
    /// Closed by the thread when it is done.
    finished: Receiver<()>,
    describe: String,
    groups: Vec<GroupRecord>,
    health: Arc<Mutex<Health>>,
    completions: Completions,
}

impl WriterThread {
    /// Starts thread `name` serving `backend` (already open: errors at
    /// start belong to the caller); `open` opens another after a failure.
    pub fn spawn(
        name: &str,
        describe: String,
        groups: Vec<GroupRecord>,
        commit: GroupCommit,
        completions: Completions,
        backend: Box<dyn Backend>,
        open: Opener,
    ) -> Result<WriterThread, String> {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        let health = Arc::new(Mutex::new(Health::Available));
        let mut worker = Worker {
            rx,
            commit: GroupCommit {
                batch_max: commit.batch_max.max(1),
                ..commit
            },
            last_start: None,
            completions: completions.clone(),
            backend: Some(backend),
            open,
            health: Arc::clone(&health),
            retry_at: None,
            backoff: Backoff::new(RETRY_MIN, RETRY_MAX),
            batch: Vec::new(),
        };
        let (done, finished) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                worker.run();
                worker.close();
                log::info!("store: writer thread done");
                drop(done);
            })
            .map_err(|e| format!("cannot start the store thread: {e}"))?;
        Ok(WriterThread {
            tx: Some(tx),
            finished,
            describe,
            groups,
            health,
            completions,
        })
    }
}

impl Drop for WriterThread {
    fn drop(&mut self) {
        self.tx = None;
        if let Err(RecvTimeoutError::Timeout) = self.finished.recv_timeout(CLOSE_WAIT) {
            log::warn!("store: the writer thread did not finish within {CLOSE_WAIT:?}");
        }
    }
}

impl MessageStore for WriterThread {
    fn submit(&mut self, op: Op, done: Option<Done>) {
        let Some(tx) = &self.tx else { return };
        if let Err(std::sync::mpsc::SendError((op, done))) = tx.send((op, done)) {
            // Only a bug ends the thread early (panics in the store code
            // are caught): still, nobody waits.
            let why = "the store thread is gone";
            log::error!("store: {why}: operation refused");
            if let Some(done) = done {
                let append = matches!(op, Op::Append(_));
                self.completions
                    .complete([(done, failure(append, why, true))]);
            }
        }
    }

    fn describe(&self) -> String {
        match self.health() {
            Health::Available => self.describe.clone(),
            h => format!("{}: {h}", self.describe),
        }
    }

    fn take_groups(&mut self) -> Vec<GroupRecord> {
        std::mem::take(&mut self.groups)
    }

    fn health(&self) -> Health {
        lock(&self.health).clone()
    }
}

/// The outcome of an operation the store could not run: a refused message
/// (`append`; `unavailable`: not even tried) or a failed other operation.
fn failure(append: bool, why: &str, unavailable: bool) -> Outcome {
    match (append, unavailable) {
        (true, true) => Outcome::Refused(Refusal::Unavailable(why.into())),
        (true, false) => Outcome::Refused(Refusal::Failed(why.into())),
        (false, _) => Outcome::Failed(why.into()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The writer thread.
struct Worker {
    rx: Receiver<Job>,
    commit: GroupCommit,
    /// When the last batch started.
    last_start: Option<Instant>,
    completions: Completions,
    /// None after a failure: opened again at the next retry.
    backend: Option<Box<dyn Backend>>,
    open: Opener,
    health: Arc<Mutex<Health>>,
    /// Unavailable until then (None: available).
    retry_at: Option<Instant>,
    backoff: Backoff,
    batch: Vec<Job>,
}

impl Worker {
    fn run(&mut self) {
        loop {
            // A backend holding rows back is woken when they are due, also
            // when no operation comes (not sooner than the interval).
            let wake_at = self.backend.as_ref().and_then(|b| b.wake_at());
            let wake_at = wake_at.map(|at| self.earliest_start().map_or(at, |e| at.max(e)));
            let first = match wake_at {
                None => self.rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(at) => self
                    .rx
                    .recv_timeout(at.saturating_duration_since(Instant::now())),
            };
            match first {
                Ok(job) => {
                    self.batch.push(job);
                    self.wait_interval();
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            self.last_start = Some(Instant::now());
            while self.batch.len() < self.commit.batch_max {
                match self.rx.try_recv() {
                    Ok(job) => self.batch.push(job),
                    Err(_) => break,
                }
            }
            let results = match self.retry_at {
                Some(at) if Instant::now() < at => self.refuse_batch(),
                _ => self.try_batch(),
            };
            self.completions.complete(results);
        }
    }

    /// The soonest the next batch may start: [`GroupCommit::interval`]
    /// after the last one did.
    fn earliest_start(&self) -> Option<Instant> {
        self.last_start.map(|last| last + self.commit.interval)
    }

    /// Sleeps until [`Worker::earliest_start`] (at once if that is past), so
    /// that what the loop queues meanwhile joins this batch.
    fn wait_interval(&mut self) {
        if let Some(due) = self.earliest_start() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
    }

    /// The queue is closed and empty: lets the backend write what it held
    /// back (only if it is open and well: after a failure it holds nothing).
    fn close(&mut self) {
        if let Some(backend) = self.backend.as_mut() {
            match catch_unwind(AssertUnwindSafe(|| backend.close())) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::error!("store: closing: {e}"),
                Err(_) => log::error!("store: closing panicked"),
            }
        }
    }

    /// Answers the batch without trying: the store is unavailable.
    fn refuse_batch(&mut self) -> Vec<(Done, Outcome)> {
        let why = match &mut *lock(&self.health) {
            Health::Unavailable { error, refused, .. } => {
                *refused += self.batch.len() as u64;
                format!("store unavailable: {error}")
            }
            Health::Available => "store unavailable".into(),
        };
        self.batch
            .drain(..)
            .filter_map(|(op, done)| {
                let append = matches!(op, Op::Append(_));
                done.map(|d| (d, failure(append, &why, true)))
            })
            .collect()
    }

    /// Runs the batch on the backend (opening one first if needed).
    fn try_batch(&mut self) -> Vec<(Done, Outcome)> {
        let (n, started) = (self.batch.len(), Instant::now());
        let (ops, dones): (Vec<Op>, Vec<Option<Done>>) = self.batch.drain(..).unzip();
        let appends: Vec<bool> = ops.iter().map(|o| matches!(o, Op::Append(_))).collect();
        let result = self.backend().and_then(|backend| {
            catch_unwind(AssertUnwindSafe(|| backend.run_batch(ops))).unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                Err(format!("the store code panicked: {what}"))
            })
        });
        log::debug!("store: batch of {n} operations in {:?}", started.elapsed());
        let outcomes = match result {
            Ok(outcomes) if outcomes.len() == n => {
                self.recovered();
                outcomes
            }
            Ok(outcomes) => {
                let e = format!("{} outcomes for {n} operations", outcomes.len());
                self.failed(&e, n);
                appends.iter().map(|&a| failure(a, &e, false)).collect()
            }
            Err(e) => {
                self.failed(&e, n);
                appends.iter().map(|&a| failure(a, &e, false)).collect()
            }
        };
        dones
            .into_iter()
            .zip(outcomes)
            .filter_map(|(done, outcome)| done.map(|d| (d, outcome)))
            .collect()
    }

    fn backend(&mut self) -> Result<&mut Box<dyn Backend>, String> {
        if self.backend.is_none() {
            let opened = catch_unwind(AssertUnwindSafe(|| (self.open)()))
                .unwrap_or_else(|_| Err("opening the store panicked".into()))?;
            self.backend = Some(opened);
        }
        Ok(self.backend.as_mut().expect("opened above"))
    }

    /// A batch committed: the store is (again) available.
    fn recovered(&mut self) {
        if self.retry_at.take().is_none() {
            return;
        }
        self.backoff.reset();
        let was = std::mem::replace(&mut *lock(&self.health), Health::Available);
        if let Health::Unavailable { since, refused, .. } = was {
            let secs = since.elapsed().map_or(0.0, |d| d.as_secs_f64());
            log::warn!(
                "store: available again after {secs:.1} s; {refused} operations were refused meanwhile"
            );
        }
    }

    /// A batch of `n` operations failed with `e`: the backend is dropped
    /// and the store unavailable until the next retry.
    fn failed(&mut self, e: &str, n: usize) {
        self.backend = None;
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        let mut health = lock(&self.health);
        match &mut *health {
            Health::Unavailable { error, refused, .. } => {
                *refused += n as u64;
                if error != e {
                    log::error!("store: still unavailable, now: {e}; next try in {delay:?}");
                    *error = e.to_string();
                } else {
                    log::debug!("store: still unavailable: {e}; next try in {delay:?}");
                }
            }
            Health::Available => {
                log::error!(
                    "store: UNAVAILABLE: {e}; {n} operations refused (no sender acked), \
                     every operation is refused until a retry commits (next try in {delay:?})"
                );
                *health = Health::Unavailable {
                    since: SystemTime::now(),
                    error: e.to_string(),
                    refused: n as u64,
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A backend that reports when each batch started and its size.
    struct Recorder(mpsc::Sender<(Instant, usize)>);

    impl Backend for Recorder {
        fn run_batch(&mut self, ops: Vec<Op>) -> Result<Vec<Outcome>, String> {
            let _ = self.0.send((Instant::now(), ops.len()));
            Ok(ops.iter().map(|_| Outcome::Done).collect())
        }
    }

    /// A writer thread with `interval` over a [`Recorder`]. Its operations
    /// have no continuation, so the loop it would answer never runs.
    fn writer(interval: Duration) -> (WriterThread, mpsc::Receiver<(Instant, usize)>) {
        let mut ev = netlib::EventDispatch::new().unwrap();
        let server = ev.context().add_handler(|_: &mut netlib::Context, _, _| {});
        let completions = Completions::new(ev.poster(), server);
        let (tx, batches) = mpsc::channel();
        let backend = Box::new(Recorder(tx));
        let commit = GroupCommit {
            batch_max: 100,
            interval,
        };
        let open: Opener = Box::new(|| Err("not reopened in this test".into()));
        let w = WriterThread::spawn(
            "test-store",
            "test".into(),
            vec![],
            commit,
            completions,
            backend,
            open,
        );
        (w.unwrap(), batches)
    }

    fn op(pos: u64) -> Op {
        Op::Delivered { user: 1, pos }
    }

    const WAIT: Duration = Duration::from_secs(10);

    /// A writer thread with `interval` that ran its first batch (of one
    /// operation): when that started.
    fn after_one_batch(
        interval: Duration,
    ) -> (WriterThread, mpsc::Receiver<(Instant, usize)>, Instant) {
        let (mut w, batches) = writer(interval);
        w.submit(op(1), None);
        let (first, n) = batches.recv_timeout(WAIT).unwrap();
        assert_eq!(n, 1);
        (w, batches, first)
    }

    #[test]
    fn operations_queued_within_the_interval_join_one_batch() {
        let interval = Duration::from_millis(300);
        let (mut w, batches, first) = after_one_batch(interval);
        // Sooner than the interval after the first batch: these wait for
        // it and commit together.
        for pos in 2..=4 {
            w.submit(op(pos), None);
        }
        let (second, n) = batches.recv_timeout(WAIT).unwrap();
        assert_eq!(n, 3, "the three operations in one batch");
        // `first` is taken inside the batch, a little after it started.
        let apart = second - first;
        assert!(apart >= interval - Duration::from_millis(20), "{apart:?}");
    }

    #[test]
    fn an_operation_after_a_quiet_spell_is_not_held_back() {
        let interval = Duration::from_millis(300);
        let (mut w, batches, first) = after_one_batch(interval);
        while first.elapsed() < interval * 2 {
            std::thread::sleep(interval);
        }
        let submitted = Instant::now();
        w.submit(op(2), None);
        let (second, n) = batches.recv_timeout(WAIT).unwrap();
        assert_eq!(n, 1);
        assert!(
            second - submitted < interval,
            "started {:?} after it was queued",
            second - submitted
        );
    }
}
