//! A fixed pool of threads for work that must not run on a loop: the
//! center's worker handlers, and users' computations (cluster's
//! executors run their tasks on one). No bound of its own: callers that
//! take work from peers count their queued jobs and bound them (the
//! center pauses reading at `max_worker_jobs`). A job that panics does not
//! end its thread: the panic is caught and logged with the thread's name,
//! and the thread takes the next job. Callers that owe someone an outcome
//! for a job (the center's worker handlers) catch the panic inside the job
//! themselves, to report it; this is the backstop for every other job.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A job for the pool.
pub type Job = Box<dyn FnOnce() + Send>;

/// Threads taking jobs from one queue. Dropping it finishes the queued
/// jobs and joins the threads.
///
/// ```
/// use std::sync::mpsc;
/// let pool = msgcenter::pool::Pool::new(2, "doc").unwrap();
/// let (tx, rx) = mpsc::channel();
/// assert!(pool.run(move || tx.send(6 * 7).unwrap()));
/// assert_eq!(rx.recv().unwrap(), 42);
/// ```
pub struct Pool {
    tx: Mutex<Option<mpsc::Sender<Job>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Pool {
    /// `n` threads (at least 1) named `name-i`.
    pub fn new(n: usize, name: &str) -> std::io::Result<Pool> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rx = rx.clone();
            let thread = format!("{name}-{i}");
            threads.push(
                std::thread::Builder::new()
                    .name(thread.clone())
                    .spawn(move || loop {
                        let job = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                        let Ok(job) = job else { return };
                        if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                            log::error!("{thread}: a job panicked; the thread carries on");
                        }
                    })?,
            );
        }
        Ok(Pool {
            tx: Mutex::new(Some(tx)),
            threads: Mutex::new(threads),
        })
    }

    /// Queues `job`; false once the pool is stopping.
    pub fn run(&self, job: impl FnOnce() + Send + 'static) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner());
        tx.as_ref().is_some_and(|tx| tx.send(Box::new(job)).is_ok())
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        for t in self
            .threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            let _ = t.join();
        }
    }
}

/// A random 64-bit value (node ids, incarnations, job ids) without a
/// dependency: std's randomly keyed hasher over the time and the pid.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::Pool;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_panicking_job_does_not_kill_its_thread() {
        let pool = Pool::new(1, "panics").unwrap();
        assert!(pool.run(|| panic!("job failed on purpose")));
        // The only thread is still there to run the next jobs.
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            assert!(pool.run(move || {
                let name = std::thread::current().name().map(String::from);
                tx.send((i, name)).unwrap();
            }));
        }
        for i in 0..3 {
            let got = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(got, (i, Some("panics-0".to_string())));
        }
        drop(pool); // joins: the thread ended normally
    }
}
