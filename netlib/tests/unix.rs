//! Unix-domain stream sockets: bind (permissions, stale files, live
//! sockets, non-sockets), accept, echo, end-of-stream, addresses.

mod util;

use netlib::{CloseReason, Context, Error, Event, EventDispatch, Handle, ListenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use util::*;

/// A directory of its own under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("netlib-unix-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.0.join(file)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn echo_over_a_unix_socket_then_peer_close() {
    let dir = TempDir::new("echo");
    let path = dir.path("echo.sock");
    let mut d = EventDispatch::new().unwrap();
    let listener = netlib::bind_unix(&path, None, &ListenOptions::default()).unwrap();
    let rec: Shared = Rc::default();
    let rec2 = rec.clone();
    let l = d
        .context()
        .adopt_unix_listener(
            listener,
            &ListenOptions::default(),
            move |ctx: &mut Context, h: Handle, ev: Event| {
                if let Event::Close(r) = ev {
                    rec2.borrow_mut().closed.insert(h, r);
                }
                rec2.borrow_mut().events.push((h, ev));
                echo(ctx, h, ev);
            },
        )
        .unwrap();
    assert!(d.context().local_addr(l).is_err(), "no IP address");

    let client_path = path.clone();
    let client = std::thread::spawn(move || {
        let mut s = UnixStream::connect(&client_path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        for i in 0..50u32 {
            let msg = format!("message {i}\n");
            s.write_all(msg.as_bytes()).unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, msg.as_bytes());
        }
        // Closing our end: the server sees end-of-stream.
    });
    run_until(&mut d, "the client's close", || {
        !rec.borrow().closed.is_empty()
    });
    client.join().unwrap();
    let r = rec.borrow();
    let accepted = r.accepted();
    assert_eq!(accepted.len(), 1);
    assert_eq!(r.closed[&accepted[0]], CloseReason::PeerClosed);
    match d.context().peer_addr(l) {
        Err(Error::InvalidHandle) | Err(Error::Io(_)) => {}
        other => panic!("a listener has no peer: {other:?}"),
    }
}

#[test]
fn accepted_unix_connection_has_no_ip_addresses() {
    let dir = TempDir::new("addr");
    let path = dir.path("a.sock");
    let mut d = EventDispatch::new().unwrap();
    let listener = netlib::bind_unix(&path, None, &ListenOptions::default()).unwrap();
    let rec: Shared = Rc::default();
    d.context()
        .adopt_unix_listener(listener, &ListenOptions::default(), recorder(rec.clone()))
        .unwrap();
    let _client = UnixStream::connect(&path).unwrap();
    run_until(&mut d, "accept", || !rec.borrow().accepted().is_empty());
    let h = rec.borrow().accepted()[0];
    for result in [d.context().peer_addr(h), d.context().local_addr(h)] {
        match result {
            Err(Error::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::Unsupported),
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }
    // Socket options that make sense for any stream still work.
    d.context().set_send_buffer_size(h, 64 * 1024).unwrap();
    assert!(d.context().send_buffer_size(h).unwrap() > 0);
}

#[test]
fn mode_bits_are_set_before_anyone_can_connect() {
    let dir = TempDir::new("mode");
    for (name, bits) in [("a", 0o700), ("b", 0o766), ("c", 0o600)] {
        let path = dir.path(name);
        let l = netlib::bind_unix(&path, Some(bits), &ListenOptions::default()).unwrap();
        assert!(std::fs::metadata(&path).unwrap().file_type().is_socket());
        assert_eq!(mode(&path), bits, "{name}");
        drop(l);
    }
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let dir = TempDir::new("stale");
    let path = dir.path("s.sock");
    // A listener that went away without removing its file.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    assert_eq!(
        UnixStream::connect(&path).unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    let l = netlib::bind_unix(&path, None, &ListenOptions::default()).unwrap();
    l.set_nonblocking(false).unwrap();
    let mut c = UnixStream::connect(&path).unwrap();
    let (mut s, _) = l.accept().unwrap();
    c.write_all(b"x").unwrap();
    let mut one = [0u8; 1];
    s.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"x");
}

#[test]
fn a_live_socket_or_a_regular_file_is_left_alone() {
    let dir = TempDir::new("live");
    let live = dir.path("live.sock");
    let _owner = UnixListener::bind(&live).unwrap();
    let e = netlib::bind_unix(&live, None, &ListenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AddrInUse, "{e}");
    assert!(UnixStream::connect(&live).is_ok(), "the owner still serves");

    let file = dir.path("data.txt");
    std::fs::write(&file, b"keep me").unwrap();
    let e = netlib::bind_unix(&file, None, &ListenOptions::default()).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists, "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn two_loops_share_one_unix_listener() {
    let dir = TempDir::new("share");
    let path = dir.path("s.sock");
    let listener = netlib::bind_unix(&path, None, &ListenOptions::default()).unwrap();
    let clones = [listener.try_clone().unwrap(), listener];
    let mut threads = Vec::new();
    let mut posters = Vec::new();
    for l in clones {
        let (tx, rx) = std::sync::mpsc::channel();
        threads.push(std::thread::spawn(move || {
            let mut d = EventDispatch::new().unwrap();
            d.context()
                .adopt_unix_listener(l, &ListenOptions::default(), echo)
                .unwrap();
            tx.send(d.poster()).unwrap();
            d.run().unwrap();
        }));
        posters.push(rx.recv_timeout(TIMEOUT).unwrap());
    }
    for i in 0..20 {
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        let msg = format!("hello {i}");
        s.write_all(msg.as_bytes()).unwrap();
        let mut back = vec![0u8; msg.len()];
        s.read_exact(&mut back).unwrap();
        assert_eq!(back, msg.as_bytes());
    }
    for p in posters {
        p.stop();
    }
    for t in threads {
        t.join().unwrap();
    }
}
