//! The cluster's messages: their msgcenter types and bodies. Who sends
//! what (the seed's numbered steps in parentheses):
//!
//! | type | name      | from -> to           | body                                   |
//! |-----:|-----------|----------------------|----------------------------------------|
//! | 100  | EXE_STATE | Exe -> Reg           | [`ExeState`]: registration (steps 1-3) and every heartbeat |
//! | 110  | PUBLISH   | publisher -> Reg     | [`TaskSpec`] (step 1)                    |
//! | 111  | ASSIGNED  | Reg -> publisher     | task id, executor address              |
//! | 112  | ASSIGN    | Reg -> Exe           | [`Assign`] (step 2)                      |
//! | 114  | LIST      | anyone -> Reg        | empty                                  |
//! | 115  | LIST_REPLY| Reg -> asker         | [`ListReply`]                           |
//! | 120  | FETCH     | Exe -> publisher     | task id (steps 3-6: the executor-to-executor connection) |
//! | 121  | INPUT     | publisher -> Exe     | task id, found flag, input             |
//! | 122  | RESULT    | Exe -> publisher     | task id, ok flag, result or reason     |
//! | 130  | PARTITION | Exe -> Exe           | shuffle data for a reduce task (`jobs::topk`) |
//! | 140-143 | FILE_* | Exe <-> Exe          | file transfer (steps 7-10, `files`)     |
//!
//! Registration and heartbeat are one message: an [`ExeState`] carries the
//! executor's whole view (capacity, files, running and recently finished
//! tasks), so a Reg that restarted rebuilds its tables from the next
//! heartbeat of every executor.

use crate::wire::{Reader, WireResult, Writer};
use std::net::SocketAddr;

/// See the module table.
pub const EXE_STATE: u32 = 100;
/// See the module table.
pub const PUBLISH: u32 = 110;
/// See the module table.
pub const ASSIGNED: u32 = 111;
/// See the module table.
pub const ASSIGN: u32 = 112;
/// See the module table.
pub const LIST: u32 = 114;
/// See the module table.
pub const LIST_REPLY: u32 = 115;
/// See the module table.
pub const FETCH: u32 = 120;
/// See the module table.
pub const INPUT: u32 = 121;
/// See the module table.
pub const RESULT: u32 = 122;
/// See the module table.
pub const PARTITION: u32 = 130;

/// A task's id: unique per publisher run (a random high half, a counter).
pub type TaskId = u64;

/// What a task computes (selects the executor's function, `jobs::run_task`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Count N-queens solutions below a prefix.
    NQueens,
    /// Count values of a data file in buckets of a range (median search).
    MedianCount,
    /// Count words of a file and send them, hashed to shards, to reducers.
    TopkMap,
    /// Merge the shuffled counts of one shard, return its top k.
    TopkReduce,
    /// Pull a file from an executor that holds it (replication).
    PullFile,
}

impl Kind {
    /// The wire value.
    pub fn code(self) -> u32 {
        match self {
            Kind::NQueens => 1,
            Kind::MedianCount => 2,
            Kind::TopkMap => 3,
            Kind::TopkReduce => 4,
            Kind::PullFile => 5,
        }
    }
    /// From the wire value.
    pub fn from_code(c: u32) -> Option<Kind> {
        Some(match c {
            1 => Kind::NQueens,
            2 => Kind::MedianCount,
            3 => Kind::TopkMap,
            4 => Kind::TopkReduce,
            5 => Kind::PullFile,
            _ => return None,
        })
    }
    /// A short name for lists.
    pub fn name(self) -> &'static str {
        match self {
            Kind::NQueens => "nqueens",
            Kind::MedianCount => "median-count",
            Kind::TopkMap => "topk-map",
            Kind::TopkReduce => "topk-reduce",
            Kind::PullFile => "pull-file",
        }
    }
}

/// A task as published: what Reg needs to place it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSpec {
    /// Unique id.
    pub id: TaskId,
    /// What it computes.
    pub kind: Kind,
    /// A file the task reads: only an executor holding it is chosen
    /// (empty: any executor).
    pub file: String,
    /// A passive task (a reducer waiting for its shuffle input) does not
    /// take one of the executor's slots.
    pub passive: bool,
}

impl TaskSpec {
    /// Appends the spec.
    pub fn write(&self, w: &mut Writer) {
        w.u64(self.id)
            .u32(self.kind.code())
            .str(&self.file)
            .u8(self.passive as u8);
    }
    /// Reads a spec.
    pub fn read(r: &mut Reader<'_>) -> WireResult<TaskSpec> {
        let id = r.u64()?;
        let code = r.u32()?;
        let kind = Kind::from_code(code)
            .ok_or_else(|| crate::wire::WireError(format!("unknown task kind {code}")))?;
        Ok(TaskSpec {
            id,
            kind,
            file: r.str()?.to_string(),
            passive: r.u8()? != 0,
        })
    }
}

/// A task an executor runs: the spec and who published it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assign {
    /// The task.
    pub spec: TaskSpec,
    /// Where inputs come from and results go.
    pub publisher: SocketAddr,
    /// Executors holding the task's file (for a task that pulls it).
    pub holders: Vec<SocketAddr>,
}

impl Assign {
    /// Appends it.
    pub fn write(&self, w: &mut Writer) {
        self.spec.write(w);
        w.addr(self.publisher).u32(self.holders.len() as u32);
        for h in &self.holders {
            w.addr(*h);
        }
    }
    /// Reads one.
    pub fn read(r: &mut Reader<'_>) -> WireResult<Assign> {
        let spec = TaskSpec::read(r)?;
        let publisher = r.addr()?;
        let n = r.count(4)?;
        let holders = (0..n).map(|_| r.addr()).collect::<WireResult<_>>()?;
        Ok(Assign {
            spec,
            publisher,
            holders,
        })
    }
    /// The body of an ASSIGN message.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }
    /// Decodes an ASSIGN body.
    pub fn decode(body: &[u8]) -> WireResult<Assign> {
        let mut r = Reader::new(body);
        let a = Assign::read(&mut r)?;
        r.end()?;
        Ok(a)
    }
}

/// A file an executor holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// Its name in the executor's data directory.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

impl FileInfo {
    fn write_all(w: &mut Writer, files: &[FileInfo]) {
        w.u32(files.len() as u32);
        for f in files {
            w.str(&f.name).u64(f.size);
        }
    }
    fn read_all(r: &mut Reader<'_>) -> WireResult<Vec<FileInfo>> {
        let n = r.count(12)?;
        (0..n)
            .map(|_| {
                Ok(FileInfo {
                    name: r.str()?.to_string(),
                    size: r.u64()?,
                })
            })
            .collect()
    }
}

/// An executor's registration and heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeState {
    /// Tasks it runs at once (slots).
    pub capacity: u32,
    /// Random per process start: a new value means it restarted.
    pub incarnation: u64,
    /// The files in its data directory.
    pub files: Vec<FileInfo>,
    /// The tasks it is running.
    pub running: Vec<Assign>,
    /// Tasks it finished recently: their result was delivered to the
    /// publisher (or the publisher said it no longer needs them).
    pub finished: Vec<TaskId>,
    /// Tasks it gave up recently without delivering a result (publisher
    /// unreachable): Reg forgets them; a publisher still waiting
    /// publishes them again.
    pub abandoned: Vec<TaskId>,
}

impl ExeState {
    /// The body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.capacity).u64(self.incarnation);
        FileInfo::write_all(&mut w, &self.files);
        w.u32(self.running.len() as u32);
        for a in &self.running {
            a.write(&mut w);
        }
        w.u32(self.finished.len() as u32);
        for id in &self.finished {
            w.u64(*id);
        }
        w.u32(self.abandoned.len() as u32);
        for id in &self.abandoned {
            w.u64(*id);
        }
        w.finish()
    }
    /// Decodes a body.
    pub fn decode(body: &[u8]) -> WireResult<ExeState> {
        let mut r = Reader::new(body);
        let capacity = r.u32()?;
        let incarnation = r.u64()?;
        let files = FileInfo::read_all(&mut r)?;
        let n = r.count(17)?;
        let running = (0..n)
            .map(|_| Assign::read(&mut r))
            .collect::<WireResult<_>>()?;
        let n = r.count(8)?;
        let finished = (0..n).map(|_| r.u64()).collect::<WireResult<_>>()?;
        let n = r.count(8)?;
        let abandoned = (0..n).map(|_| r.u64()).collect::<WireResult<_>>()?;
        r.end()?;
        Ok(ExeState {
            capacity,
            incarnation,
            files,
            running,
            finished,
            abandoned,
        })
    }
}

/// One executor in a [`ListReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExeRow {
    /// Its address.
    pub addr: SocketAddr,
    /// Slots.
    pub capacity: u32,
    /// Tasks assigned to it (passive ones included).
    pub running: u32,
    /// Milliseconds left on its lease.
    pub lease_left_ms: u64,
    /// Its files.
    pub files: Vec<FileInfo>,
}

/// One task in a [`ListReply`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// The task.
    pub spec: TaskSpec,
    /// Its publisher.
    pub publisher: SocketAddr,
    /// The executor running it, if assigned.
    pub exe: Option<SocketAddr>,
    /// How many times it was assigned.
    pub attempts: u32,
}

/// Reg's view: executors and unfinished tasks.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListReply {
    /// Live executors.
    pub exes: Vec<ExeRow>,
    /// Unfinished tasks.
    pub tasks: Vec<TaskRow>,
    /// Running tasks Reg learned from executors' heartbeats rather than
    /// by assigning them (after a restart, or after giving one up).
    pub rebuilt: u64,
}

impl ListReply {
    /// The body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u32(self.exes.len() as u32);
        for e in &self.exes {
            w.addr(e.addr)
                .u32(e.capacity)
                .u32(e.running)
                .u64(e.lease_left_ms);
            FileInfo::write_all(&mut w, &e.files);
        }
        w.u32(self.tasks.len() as u32);
        for t in &self.tasks {
            t.spec.write(&mut w);
            w.addr(t.publisher);
            match t.exe {
                Some(a) => w.u8(1).addr(a),
                None => w.u8(0),
            };
            w.u32(t.attempts);
        }
        w.u64(self.rebuilt);
        w.finish()
    }
    /// Decodes a body.
    pub fn decode(body: &[u8]) -> WireResult<ListReply> {
        let mut r = Reader::new(body);
        let n = r.count(24)?;
        let mut exes = Vec::with_capacity(n);
        for _ in 0..n {
            let addr = r.addr()?;
            let capacity = r.u32()?;
            let running = r.u32()?;
            let lease_left_ms = r.u64()?;
            let files = FileInfo::read_all(&mut r)?;
            exes.push(ExeRow {
                addr,
                capacity,
                running,
                lease_left_ms,
                files,
            });
        }
        let n = r.count(22)?;
        let mut tasks = Vec::with_capacity(n);
        for _ in 0..n {
            let spec = TaskSpec::read(&mut r)?;
            let publisher = r.addr()?;
            let exe = if r.u8()? != 0 { Some(r.addr()?) } else { None };
            let attempts = r.u32()?;
            tasks.push(TaskRow {
                spec,
                publisher,
                exe,
                attempts,
            });
        }
        let rebuilt = r.u64()?;
        r.end()?;
        Ok(ListReply {
            exes,
            tasks,
            rebuilt,
        })
    }
}

/// A task id followed by a flag and bytes: INPUT and RESULT bodies.
pub fn encode_tagged(id: TaskId, flag: bool, data: &[u8]) -> Vec<u8> {
    Writer::new().u64(id).u8(flag as u8).bytes(data).finish()
}

/// Decodes [`encode_tagged`].
pub fn decode_tagged(body: &[u8]) -> WireResult<(TaskId, bool, &[u8])> {
    let mut r = Reader::new(body);
    let id = r.u64()?;
    let flag = r.u8()? != 0;
    let data = r.bytes()?;
    r.end()?;
    Ok((id, flag, data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_and_list_round_trip() {
        let spec = TaskSpec {
            id: 7,
            kind: Kind::TopkReduce,
            file: "words-0.txt".into(),
            passive: true,
        };
        let a = Assign {
            spec: spec.clone(),
            publisher: "10.0.0.1:1".parse().unwrap(),
            holders: vec!["10.0.0.2:2".parse().unwrap()],
        };
        let st = ExeState {
            capacity: 2,
            incarnation: 9,
            files: vec![FileInfo {
                name: "f".into(),
                size: 3,
            }],
            running: vec![a.clone()],
            finished: vec![1, 2],
            abandoned: vec![3],
        };
        assert_eq!(ExeState::decode(&st.encode()).unwrap(), st);
        assert_eq!(Assign::decode(&a.encode()).unwrap(), a);
        let l = ListReply {
            exes: vec![ExeRow {
                addr: a.publisher,
                capacity: 2,
                running: 1,
                lease_left_ms: 5,
                files: st.files.clone(),
            }],
            tasks: vec![TaskRow {
                spec,
                publisher: a.publisher,
                exe: None,
                attempts: 1,
            }],
            rebuilt: 3,
        };
        assert_eq!(ListReply::decode(&l.encode()).unwrap(), l);
        let body = st.encode();
        for cut in 0..body.len() {
            assert!(ExeState::decode(&body[..cut]).is_err());
        }
    }
}
