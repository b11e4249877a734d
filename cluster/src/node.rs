//! What Reg, Exe and publisher nodes share: a message center whose loop
//! handlers lock the node's state briefly, collect the messages to send,
//! and post them after the lock is released (a post can call its callback
//! at once, and callbacks lock the state too); a ticker thread for
//! timers; random ids; a bounded set of recent ids.

use crate::config::NodeConfig;
use msgcenter::{Center, CenterHandle, Handlers, Message, Running};
use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{mpsc, Arc, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

/// A node's state behind a lock, with its center's handle.
pub struct Shared<S> {
    state: Mutex<S>,
    handle: OnceLock<CenterHandle>,
    /// The node's settings.
    pub cfg: NodeConfig,
}

impl<S> Shared<S> {
    /// State `s` with settings `cfg` (the handle is set by [`Node::start`]).
    pub fn new(s: S, cfg: NodeConfig) -> Arc<Shared<S>> {
        Arc::new(Shared {
            state: Mutex::new(s),
            handle: OnceLock::new(),
            cfg,
        })
    }

    /// Locks the state (a poisoned lock is taken over: the state is plain
    /// bookkeeping and a panicking handler has already logged).
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the state, then posts the messages it collected.
    pub fn run<R>(&self, f: impl FnOnce(&mut S, &mut Vec<Message>) -> R) -> R {
        let mut out = Vec::new();
        let r = f(&mut self.lock(), &mut out);
        self.post_all(out);
        r
    }

    /// Posts messages (dropped with a `Shutdown` outcome before the center
    /// is up, which cannot happen once `Node::start` returned).
    pub fn post_all(&self, out: Vec<Message>) {
        if let Some(h) = self.handle.get() {
            for m in out {
                h.post(m);
            }
        }
    }

    /// The center's handle.
    pub fn handle(&self) -> &CenterHandle {
        self.handle.get().expect("center started")
    }
}

/// A running node: its center and its ticker thread. Dropping it stops
/// both.
pub struct Node {
    center: Option<Running>,
    /// Dropped to stop the ticker at once (it waits on the other end).
    stop: Option<mpsc::Sender<()>>,
    ticker: Option<JoinHandle<()>>,
}

impl Node {
    /// Starts a center with `handlers` for `shared`, and a ticker calling
    /// `tick` every `every` on a thread of its own.
    pub fn start<S: Send + 'static>(
        shared: &Arc<Shared<S>>,
        handlers: Handlers,
        every: Duration,
        tick: impl Fn(&Arc<Shared<S>>) + Send + 'static,
    ) -> Result<Node, String> {
        shared.cfg.validate()?;
        let center =
            Center::spawn(shared.cfg.center.clone(), handlers).map_err(|e| e.to_string())?;
        let _ = shared.handle.set(center.handle().clone());
        let (stop, stopped) = mpsc::channel::<()>();
        let s = shared.clone();
        let ticker = std::thread::Builder::new()
            .name("cluster-ticker".into())
            .spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    tick(&s);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(Node {
            center: Some(center),
            stop: Some(stop),
            ticker: Some(ticker),
        })
    }

    /// The address the center listens on.
    pub fn addr(&self) -> SocketAddr {
        self.center.as_ref().expect("running").handle().local_addr()
    }

    /// The address peers know the node by.
    pub fn advertised(&self) -> SocketAddr {
        self.center
            .as_ref()
            .expect("running")
            .handle()
            .advertised_addr()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop.take();
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
        if let Some(c) = self.center.take() {
            c.shutdown();
        }
    }
}

/// The last `cap` ids seen, for "already done" checks.
pub struct Recent {
    order: VecDeque<u64>,
    set: HashSet<u64>,
    cap: usize,
}

impl Recent {
    /// Remembers at most `cap` ids.
    pub fn new(cap: usize) -> Recent {
        Recent {
            order: VecDeque::new(),
            set: HashSet::new(),
            cap,
        }
    }
    /// Adds `id` (forgetting the oldest past the cap).
    pub fn insert(&mut self, id: u64) {
        if self.set.insert(id) {
            self.order.push_back(id);
            if self.order.len() > self.cap {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
    /// Whether `id` is remembered.
    pub fn contains(&self, id: u64) -> bool {
        self.set.contains(&id)
    }
    /// The remembered ids, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &u64> {
        self.order.iter()
    }
}
