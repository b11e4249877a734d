//! Reg's ExecutorMgr: the live executors, their leases, slots and files,
//! and the choice of an executor for a task (least loaded, ties rotating).
//! Pure bookkeeping - no I/O; `reg` drives it.

use crate::proto::{ExeRow, FileInfo, TaskId, TaskSpec};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// One registered executor.
#[derive(Debug, Clone)]
pub struct Executor {
    /// Its message-center address.
    pub addr: SocketAddr,
    /// Slots.
    pub capacity: u32,
    /// Random per process start.
    pub incarnation: u64,
    /// Its files.
    pub files: Vec<FileInfo>,
    /// When its lease runs out.
    pub expires: Instant,
    /// Tasks assigned to it.
    pub tasks: HashSet<TaskId>,
    /// Of those, the ones taking a slot.
    pub slots_used: u32,
}

impl Executor {
    fn new(
        addr: SocketAddr,
        capacity: u32,
        incarnation: u64,
        files: Vec<FileInfo>,
        expires: Instant,
    ) -> Executor {
        Executor {
            addr,
            capacity,
            incarnation,
            files,
            expires,
            tasks: HashSet::new(),
            slots_used: 0,
        }
    }

    fn holds(&self, file: &str) -> bool {
        self.files.iter().any(|f| f.name == file)
    }
}

/// The live executors. See the module docs.
#[derive(Default)]
pub struct ExecutorMgr {
    exes: BTreeMap<SocketAddr, Executor>,
    rotate: usize,
}

/// What [`ExecutorMgr::upsert`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Upsert {
    /// A new executor.
    New,
    /// A known one, lease renewed.
    Renewed,
    /// A known address with a new incarnation: it restarted, and these
    /// tasks it had are lost.
    Restarted(Vec<TaskId>),
}

impl ExecutorMgr {
    /// Registers or renews `addr` for `lease`.
    pub fn upsert(
        &mut self,
        addr: SocketAddr,
        capacity: u32,
        incarnation: u64,
        files: Vec<FileInfo>,
        lease: Duration,
        now: Instant,
    ) -> Upsert {
        let expires = now + lease;
        match self.exes.get_mut(&addr) {
            Some(e) if e.incarnation == incarnation => {
                e.capacity = capacity;
                e.files = files;
                e.expires = expires;
                Upsert::Renewed
            }
            Some(e) => {
                let lost: Vec<TaskId> = e.tasks.drain().collect();
                *e = Executor::new(addr, capacity, incarnation, files, expires);
                Upsert::Restarted(lost)
            }
            None => {
                self.exes.insert(
                    addr,
                    Executor::new(addr, capacity, incarnation, files, expires),
                );
                Upsert::New
            }
        }
    }

    /// Removes the executors whose lease ran out; returns them.
    pub fn expire(&mut self, now: Instant) -> Vec<Executor> {
        let dead: Vec<SocketAddr> = self
            .exes
            .values()
            .filter(|e| e.expires <= now)
            .map(|e| e.addr)
            .collect();
        dead.iter().filter_map(|a| self.exes.remove(a)).collect()
    }

    /// The executor at `addr`.
    pub fn get(&self, addr: &SocketAddr) -> Option<&Executor> {
        self.exes.get(addr)
    }

    /// Records `task` as running on `addr` (false if `addr` is unknown).
    pub fn add_task(&mut self, addr: SocketAddr, spec: &TaskSpec) -> bool {
        match self.exes.get_mut(&addr) {
            Some(e) => {
                if e.tasks.insert(spec.id) && !spec.passive {
                    e.slots_used += 1;
                }
                true
            }
            None => false,
        }
    }

    /// Forgets `task` on `addr`.
    pub fn remove_task(&mut self, addr: SocketAddr, spec: &TaskSpec) {
        if let Some(e) = self.exes.get_mut(&addr) {
            if e.tasks.remove(&spec.id) && !spec.passive {
                e.slots_used = e.slots_used.saturating_sub(1);
            }
        }
    }

    /// Executors holding `file`.
    pub fn holders(&self, file: &str) -> Vec<SocketAddr> {
        self.exes
            .values()
            .filter(|e| e.holds(file))
            .map(|e| e.addr)
            .collect()
    }

    /// Chooses the executor for `spec`: among those with a free slot (any,
    /// for a passive task) that hold its file (if it names one; that lack
    /// it, for a PullFile task), the least
    /// loaded (tasks per slot); ties are broken by rotating through them,
    /// so equal executors take turns.
    pub fn pick(&mut self, spec: &TaskSpec) -> Option<SocketAddr> {
        // A PullFile task copies its file to an executor that lacks it.
        let pull = spec.kind == crate::proto::Kind::PullFile;
        let fits = |e: &&Executor| {
            (spec.passive || e.slots_used < e.capacity)
                && (spec.file.is_empty() || e.holds(&spec.file) != pull)
        };
        // load a/b compared by cross-multiplication: tasks / capacity.
        let load = |e: &Executor| (e.tasks.len() as u64, e.capacity.max(1) as u64);
        let mut best: Vec<&Executor> = Vec::new();
        for e in self.exes.values().filter(fits) {
            match best.first() {
                None => best.push(e),
                Some(b) => {
                    let ((ta, ca), (tb, cb)) = (load(e), load(b));
                    match (ta * cb).cmp(&(tb * ca)) {
                        std::cmp::Ordering::Less => best = vec![e],
                        std::cmp::Ordering::Equal => best.push(e),
                        std::cmp::Ordering::Greater => {}
                    }
                }
            }
        }
        if best.is_empty() {
            return None;
        }
        let chosen = best[self.rotate % best.len()].addr;
        self.rotate = self.rotate.wrapping_add(1);
        Some(chosen)
    }

    /// Rows for a list reply.
    pub fn rows(&self, now: Instant) -> Vec<ExeRow> {
        self.exes
            .values()
            .map(|e| ExeRow {
                addr: e.addr,
                capacity: e.capacity,
                running: e.tasks.len() as u32,
                lease_left_ms: e.expires.saturating_duration_since(now).as_millis() as u64,
                files: e.files.clone(),
            })
            .collect()
    }

    /// How many executors are live.
    pub fn len(&self) -> usize {
        self.exes.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.exes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Kind;

    fn spec(id: TaskId, file: &str, passive: bool) -> TaskSpec {
        TaskSpec {
            id,
            kind: Kind::NQueens,
            file: file.into(),
            passive,
        }
    }

    #[test]
    fn least_loaded_ties_rotate_leases_expire() {
        let now = Instant::now();
        let lease = Duration::from_secs(1);
        let mut m = ExecutorMgr::default();
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:1".parse().unwrap();
        let f = vec![FileInfo {
            name: "d".into(),
            size: 1,
        }];
        assert_eq!(m.upsert(a, 2, 1, vec![], lease, now), Upsert::New);
        assert_eq!(m.upsert(b, 2, 1, f, lease, now), Upsert::New);
        // Ties rotate: two equal executors take turns.
        let first = m.pick(&spec(1, "", false)).unwrap();
        let second = m.pick(&spec(2, "", false)).unwrap();
        assert_ne!(first, second);
        // Least loaded wins over rotation.
        assert!(m.add_task(a, &spec(1, "", false)));
        assert_eq!(m.pick(&spec(3, "", false)), Some(b));
        assert_eq!(m.pick(&spec(3, "", false)), Some(b));
        // Affinity: only b holds "d"; when b is full, nobody.
        assert_eq!(m.pick(&spec(4, "d", false)), Some(b));
        m.add_task(b, &spec(4, "d", false));
        m.add_task(b, &spec(5, "d", false));
        assert_eq!(m.pick(&spec(6, "d", false)), None);
        // ... except for a passive task, which needs no slot.
        assert_eq!(m.pick(&spec(7, "d", true)), Some(b));
        // A restart loses the tasks; expiry removes.
        assert_eq!(
            m.upsert(a, 2, 2, vec![], lease, now),
            Upsert::Restarted(vec![1])
        );
        m.upsert(b, 2, 1, vec![], lease, now + lease);
        let dead = m.expire(now + lease);
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].addr, a);
        assert_eq!(m.len(), 1);
    }
}
