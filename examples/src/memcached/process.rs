//! What the `netlib-memcached` binary does to its process, as memcached
//! does: detach (`-d`), switch user (`-u`), record its pid (`-P`), and stop
//! cleanly on SIGINT/SIGTERM.
//!
//! These are process-wide and some must run before any thread exists
//! (`fork`, `getpwnam`), so `main` calls them in this order: [`daemonize`],
//! then [`become_user`], then `netlib::signal::StopSignals::catch`, then the
//! server starts, then [`PidFile::write`] and `StopSignals::on_arrival`.
//! Nothing here touches an event loop.

use std::ffi::CString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// memcached's `-d` (its `daemon.c`): forks, the parent exits 0, the child
/// starts a new session, moves to `/` and, unless `keep_stdio` (memcached
/// keeps them with `-v`), points stdin, stdout and stderr at `/dev/null`.
/// Relative paths the caller still needs must be made absolute first
/// ([`absolute`]). Call before any thread starts.
pub fn daemonize(keep_stdio: bool) -> io::Result<()> {
    // SAFETY: fork in a process with one thread; the child only continues
    // with ordinary Rust code, the parent exits at once without unwinding.
    match unsafe { libc::fork() } {
        -1 => return Err(io::Error::last_os_error()),
        0 => {}
        _ => unsafe { libc::_exit(0) },
    }
    // SAFETY: setsid has no preconditions; failures are checked.
    if unsafe { libc::setsid() } == -1 {
        return Err(io::Error::last_os_error());
    }
    std::env::set_current_dir("/")?;
    if !keep_stdio {
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        use std::os::fd::AsRawFd;
        for fd in [libc::STDIN_FILENO, libc::STDOUT_FILENO, libc::STDERR_FILENO] {
            // SAFETY: dup2 onto the standard descriptors of this process.
            if unsafe { libc::dup2(null.as_raw_fd(), fd) } == -1 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// `path` made absolute against the current directory, so it still names
/// the same file after [`daemonize`] moves to `/`.
pub fn absolute(path: &Path) -> io::Result<PathBuf> {
    if path.is_absolute() {
        Ok(path.to_path_buf())
    } else {
        Ok(std::env::current_dir()?.join(path))
    }
}

/// memcached's `-u`: started as root, take on `user`'s identity (groups,
/// then group, then user) before listening, so the sockets and their files
/// belong to it. Not root: nothing to drop, and memcached ignores `-u` too.
/// Call before any thread starts (`getpwnam` is not thread-safe).
pub fn become_user(user: &str) -> io::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    let name = CString::new(user).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    // SAFETY: `name` is a valid C string; the result is read at once,
    // before any other call could overwrite getpwnam's static buffer.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("can't find the user {user} to switch to"),
        ));
    }
    // SAFETY: non-null pointer from getpwnam, read before any other call.
    let (uid, gid) = unsafe { ((*entry).pw_uid, (*entry).pw_gid) };
    // SAFETY: plain system calls on integers; failures are checked.
    let failed = unsafe {
        libc::setgroups(0, std::ptr::null()) != 0
            || libc::setgid(gid) != 0
            || libc::setuid(uid) != 0
    };
    if failed {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("failed to assume identity of user {user}: {e}"),
        ));
    }
    Ok(())
}

/// memcached's `-P`: the process id in a file, written once listening and
/// removed when this is dropped (clean shutdown). Written to `<path>.tmp`
/// and renamed, so a reader never sees it half-written.
#[derive(Debug)]
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Writes this process's id to `path`. A file naming a live process is
    /// replaced with a warning, as memcached does.
    pub fn write(path: &Path) -> io::Result<PidFile> {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.trim().parse::<i32>().ok())
        {
            // SAFETY: kill with signal 0 only checks that the process exists.
            if pid > 0 && unsafe { libc::kill(pid, 0) } == 0 {
                log::warn!(
                    "the pid file {} names a running process, {pid}",
                    path.display()
                );
            }
        }
        write_atomically(path, &format!("{}\n", std::process::id()))?;
        Ok(PidFile {
            path: path.to_path_buf(),
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_file(&self.path) {
            log::warn!("cannot remove the pid file {}: {e}", self.path.display());
        }
    }
}

/// Writes `text` to `<path>.tmp`, syncs it and renames it to `path`.
pub fn write_atomically(path: &Path, text: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}
