//! The worker side: a process running the application's netlib loops on
//! the listening sockets it inherited, reporting to its master and obeying
//! it.
//!
//! A worker runs `threads` loops (a netlib [`LoopGroup`]). Each loop gets
//! the application's handler from the per-loop setup and serves its own
//! duplicate of every inherited listener, registered with
//! `EPOLLEXCLUSIVE` ([`ListenOptions::exclusive_wakeup`]): all loops of all
//! workers wait on the same sockets, and a new connection wakes one of
//! them.
//!
//! The process's main thread is the control thread. It talks to the
//! master over the control channel, one line per message:
//!
//! | direction | line | meaning |
//! |---|---|---|
//! | worker → master | `ready` | every loop serves every listener |
//! | worker → master | `conns <n>` | live connections now (sent when it changes) |
//! | master → worker | `drain <ms>` | stop accepting, finish the connections within `<ms>`, exit |
//! | master → worker | `quit` | stop now: close everything, exit |
//!
//! It counts connections by asking each loop for its socket count minus its
//! open listeners (every socket of a worker's loop other than a listener is
//! a connection of the application), so any netlib server is counted
//! without help. The master's end closing (the master died) is taken as
//! `drain` with the configured timeout: a worker never outlives its master
//! by more than that.
//!
//! A panic anywhere in a worker ends the process (exit status 101) once
//! the panic message is printed: a loop thread that died must not leave a
//! half-serving worker behind, and the master restarts it.
//!
//! EPOLLEXCLUSIVE hands each new connection's wake-up to one waiter. Two
//! ways to lose one are handled: a draining worker takes its listeners
//! out of its poll set *before* it accepts what is queued and closes them
//! (so a wake-up it got is honoured, and later ones go to others), and
//! every loop sweeps its listeners once a second, for the wake-up a
//! killed worker took with it.

use crate::inherit::Inherited;
use netlib::{Context, Handle, HandlerRef, InitError, ListenOptions, LoopGroup, SocketState};
use std::io::{self, Read, Write};
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Who a worker is; given to the application's per-worker setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerInfo {
    /// Its slot, `0..workers`; a restarted worker takes its slot again.
    pub slot: usize,
    /// Its generation: 1 at start, one more with every reload.
    pub generation: u32,
}

/// How a worker runs its loops.
pub(crate) struct LoopSpec {
    pub threads: usize,
    pub netlib: netlib::Config,
    pub listen: ListenOptions,
    pub report_every: Duration,
    pub drain_timeout: Duration,
}

/// How often each loop sweeps its listeners for connections whose
/// wake-up was lost (see [`Context::accept_pending`]).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How long the control thread waits for a loop to report its count.
const LOOP_ANSWER: Duration = Duration::from_secs(5);

/// Makes any panic in this process end it with status 101 once the panic
/// message is printed. Called first thing in a worker.
pub(crate) fn exit_on_panic() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default_hook(info);
        // SAFETY: _exit ends the process at once, running nothing else.
        unsafe { libc::_exit(101) };
    }));
}

/// Runs a worker to its end and returns its exit status: 0 after a drain
/// or a quit, 1 if it could not start or a loop failed.
pub(crate) fn run<S>(inherited: Inherited, spec: &LoopSpec, setup: S) -> i32
where
    S: Fn(&mut Context, usize) -> Result<HandlerRef, InitError> + Send + Sync + 'static,
{
    let Inherited {
        slot,
        generation,
        listeners,
        mut channel,
    } = inherited;
    let threads = spec.threads.max(1);
    let handles: Arc<Mutex<Vec<Vec<Handle>>>> = Arc::new(Mutex::new(vec![Vec::new(); threads]));
    let group = match start_loops(threads, spec, listeners, handles.clone(), setup) {
        Ok(g) => g,
        Err(e) => {
            log::error!("prefork: worker {slot} (generation {generation}) cannot start: {e}");
            return 1;
        }
    };
    if let Err(e) = channel.write_all(b"ready\n") {
        log::error!("prefork: worker {slot}: cannot reach the master: {e}");
        return 1;
    }
    log::info!(
        "prefork: worker {slot} (generation {generation}, pid {}) accepting",
        std::process::id()
    );
    let outcome = control(&mut channel, &group, &handles, spec);
    group.stop();
    let joined = group.join();
    match (outcome, joined) {
        (Ok(()), Ok(())) => 0,
        (Err(e), _) => {
            log::error!("prefork: worker {slot}: {e}");
            1
        }
        (_, Err(e)) => {
            log::error!("prefork: worker {slot}: {e}");
            1
        }
    }
}

fn start_loops<S>(
    threads: usize,
    spec: &LoopSpec,
    listeners: Vec<TcpListener>,
    handles: Arc<Mutex<Vec<Vec<Handle>>>>,
    setup: S,
) -> Result<LoopGroup, netlib::GroupError>
where
    S: Fn(&mut Context, usize) -> Result<HandlerRef, InitError> + Send + Sync + 'static,
{
    let opts = ListenOptions {
        exclusive_wakeup: true,
        ..spec.listen.clone()
    };
    // The inherited descriptors are dropped once every loop has its own
    // duplicate: when the loops close theirs, this worker holds none.
    let listeners = Arc::new(Mutex::new(listeners));
    let originals = listeners.clone();
    let group = LoopGroup::start(threads, spec.netlib.clone(), move |ctx, i| {
        let server = setup(ctx, i)?;
        let copies = listeners
            .lock()
            .map_err(|_| "listener table poisoned")?
            .iter()
            .map(TcpListener::try_clone)
            .collect::<io::Result<Vec<_>>>()?;
        let mut mine = Vec::with_capacity(copies.len());
        for l in copies {
            mine.push(ctx.adopt_listener_with(l, &opts, server)?);
        }
        let sweep = mine.clone();
        ctx.add_repeating_timer(SWEEP_EVERY, move |ctx, _| {
            for &h in &sweep {
                // Closed by a drain: nothing to sweep any more.
                let _ = ctx.accept_pending(h);
            }
        });
        handles.lock().map_err(|_| "listener table poisoned")?[i] = mine;
        Ok(())
    });
    if let Ok(mut l) = originals.lock() {
        l.clear();
    }
    group
}

/// What the master asked for.
enum Command {
    Drain(Duration),
    Quit,
}

/// The control thread's loop: reports counts, obeys commands, returns when
/// the worker should stop its loops.
fn control(
    channel: &mut UnixStream,
    group: &LoopGroup,
    handles: &Arc<Mutex<Vec<Vec<Handle>>>>,
    spec: &LoopSpec,
) -> io::Result<()> {
    let mut input = Vec::new();
    let mut reported = None;
    let mut drain_until: Option<Instant> = None;
    loop {
        let tick = if drain_until.is_some() {
            Duration::from_millis(20)
        } else {
            spec.report_every
        };
        let command = match wait_readable(channel, tick)? {
            false => None,
            true => read_command(channel, &mut input, spec.drain_timeout)?,
        };
        match command {
            Some(Command::Quit) => return Ok(()),
            Some(Command::Drain(timeout)) if drain_until.is_none() => {
                stop_accepting(group, handles);
                drain_until = Some(Instant::now() + timeout);
            }
            _ => {}
        }
        let Some(live) = count_connections(group, handles)? else {
            // A loop busy for seconds: no count this time (the drain
            // deadline still holds).
            if drain_until.is_some_and(|until| Instant::now() >= until) {
                return Ok(());
            }
            continue;
        };
        if reported != Some(live) {
            // The master may be gone; the count only matters to it.
            let _ = channel.write_all(format!("conns {live}\n").as_bytes());
            reported = Some(live);
        }
        if let Some(until) = drain_until {
            if live == 0 {
                return Ok(());
            }
            if Instant::now() >= until {
                log::warn!("prefork: drain deadline passed; closing {live} connections");
                return Ok(());
            }
        }
    }
}

/// Waits up to `timeout` for input on the channel.
fn wait_readable(channel: &UnixStream, timeout: Duration) -> io::Result<bool> {
    let mut fd = libc::pollfd {
        fd: channel.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: one valid pollfd, count 1.
    let n = unsafe { libc::poll(&mut fd, 1, ms) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.kind() == io::ErrorKind::Interrupted {
            Ok(false)
        } else {
            Err(e)
        };
    }
    Ok(n > 0)
}

/// Reads what the master sent and returns the last command in it; the
/// channel closing (the master died) is a drain.
fn read_command(
    channel: &mut UnixStream,
    input: &mut Vec<u8>,
    drain_timeout: Duration,
) -> io::Result<Option<Command>> {
    let mut buf = [0u8; 512];
    let n = match channel.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(None),
        Err(_) => 0,
    };
    if n == 0 {
        log::warn!("prefork: the master is gone; draining");
        return Ok(Some(Command::Drain(drain_timeout)));
    }
    input.extend_from_slice(&buf[..n]);
    let mut command = None;
    while let Some(end) = input.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = input.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let mut words = line.split_whitespace();
        command = match (words.next(), words.next().map(str::parse::<u64>)) {
            (Some("drain"), Some(Ok(ms))) => Some(Command::Drain(Duration::from_millis(ms))),
            (Some("quit"), _) => Some(Command::Quit),
            _ => {
                log::warn!("prefork: unknown command from the master: {}", line.trim());
                command
            }
        };
    }
    if input.len() > 4096 {
        input.clear(); // a master never sends this; do not grow
    }
    Ok(command)
}

/// Closes every loop's listeners: the shared sockets stay open in the
/// master and the other workers, so nothing queued on them is lost, and
/// each loop accepts what its last wake-up announced before it closes
/// ([`Context::close_listener_gracefully`]).
fn stop_accepting(group: &LoopGroup, handles: &Arc<Mutex<Vec<Vec<Handle>>>>) {
    for (i, poster) in group.posters().iter().enumerate() {
        let handles = handles.clone();
        let _ = poster.post(move |ctx| {
            let mine = handles.lock().map(|mut h| std::mem::take(&mut h[i]));
            for h in mine.unwrap_or_default() {
                if let Err(e) = ctx.close_listener_gracefully(h) {
                    log::warn!("prefork: closing listener {h}: {e}");
                    let _ = ctx.close(h);
                }
            }
        });
    }
    log::info!("prefork: worker {} stopped accepting", std::process::id());
}

/// Live connections over all loops: each loop's sockets minus its
/// listeners. `None` if a loop did not answer within [`LOOP_ANSWER`];
/// `Err` if a loop has ended.
fn count_connections(
    group: &LoopGroup,
    handles: &Arc<Mutex<Vec<Vec<Handle>>>>,
) -> io::Result<Option<usize>> {
    let (tx, rx) = mpsc::channel();
    for (i, poster) in group.posters().iter().enumerate() {
        let (tx, handles) = (tx.clone(), handles.clone());
        poster
            .post(move |ctx| {
                let listening = handles.lock().map_or(0, |h| {
                    h[i].iter()
                        .filter(|&&l| ctx.state(l) == Some(SocketState::Listening))
                        .count()
                });
                let _ = tx.send(ctx.socket_count().saturating_sub(listening));
            })
            .map_err(|e| io::Error::other(format!("event loop {i} ended: {e}")))?;
    }
    drop(tx);
    let mut total = 0;
    for _ in 0..group.len() {
        match rx.recv_timeout(LOOP_ANSWER) {
            Ok(n) => total += n,
            Err(_) => {
                log::warn!("prefork: an event loop did not answer within {LOOP_ANSWER:?}");
                return Ok(None);
            }
        }
    }
    Ok(Some(total))
}
