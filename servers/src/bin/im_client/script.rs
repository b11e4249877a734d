//! The one-shot forms for scripts: `send`, `recv`, `history`, `groups`,
//! `group`. Each logs in, does its job, prints to stdout and exits (0 done, 1 on an
//! error, said on stderr).

use crate::manage::{self, GroupOp};
use crate::session::{
    answered, kicked_text, session, Backoff, Failure, Session, HEARTBEAT, QUERY_WAIT, TIMEOUT,
};
use crate::Opts;
use servers::client::{Event, Peer};
use std::io;
use std::time::{Duration, Instant};

/// `send [--group] TO TEXT`: one message, and the server's ack.
pub fn send(o: &Opts, group: bool, to: &str, text: &str) -> Result<(), Failure> {
    let mut s = session(o)?;
    let to = s.resolve(to, group)?;
    s.client.send_to(to, text)?;
    let id = s.client.wait_ack(Instant::now() + TIMEOUT)?;
    println!("sent message {id} to {}", s.directory.peer_name(to));
    Ok(())
}

/// The lines of the session with `with` (a user, or - when `group` - one of
/// our groups), its newest `count` messages oldest first.
pub fn history_lines(
    s: &mut Session,
    with: &str,
    group: bool,
    count: u32,
) -> Result<Vec<String>, Failure> {
    let peer = s.resolve(with, group)?;
    let list = answered(s.client.history(peer, count, QUERY_WAIT))?;
    if list.is_empty() {
        let with = match peer {
            Peer::User(_) => "with ",
            Peer::Group(_) => "in ",
        };
        return Ok(vec![format!(
            "no messages {with}{}",
            s.directory.peer_name(peer)
        )]);
    }
    Ok(list
        .iter()
        .map(|m| {
            s.directory.show(
                peer,
                m.create_time,
                m.from_session_id,
                m.msg_type,
                &m.msg_data,
            )
        })
        .collect())
}

/// `history [--group] WITH --count N`.
pub fn history(o: &Opts, group: bool, with: &str, count: u32) -> Result<(), Failure> {
    let mut s = session(o)?;
    for line in history_lines(&mut s, with, group, count)? {
        println!("{line}");
    }
    Ok(())
}

/// `group create|add|remove|leave ...`: a temporary group's membership.
pub fn group(o: &Opts, op: &GroupOp) -> Result<(), Failure> {
    let mut s = session(o)?;
    println!("{}", manage::run(&mut s, op)?);
    Ok(())
}

/// `groups`: the user's groups with their members.
pub fn groups(o: &Opts) -> Result<(), Failure> {
    let s = session(o)?;
    for line in s.directory.group_lines() {
        println!("{line}");
    }
    Ok(())
}

/// `recv --count N --timeout S`: prints messages, one to one and in groups,
/// until `count` arrived; reconnects (with backoff) if the connection is
/// lost, exits 1 when `timeout` passes first.
pub fn recv(o: &Opts, count: usize, timeout: Duration) -> Result<(), Failure> {
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    let mut current: Option<Session> = None;
    let mut backoff = Backoff::new();
    while got < count {
        if Instant::now() >= deadline {
            return Err(Failure::Lost(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("received {got} of {count}"),
            )));
        }
        let s = match current.as_mut() {
            Some(s) => s,
            None => match session(o) {
                Ok(s) => {
                    backoff = Backoff::new();
                    current.insert(s)
                }
                Err(Failure::Lost(e)) => {
                    let wait = backoff.take();
                    eprintln!("im_client: {e}; retrying in {} s", wait.as_secs());
                    std::thread::sleep(
                        wait.min(deadline.saturating_duration_since(Instant::now())),
                    );
                    continue;
                }
                Err(fatal) => return Err(fatal),
            },
        };
        let step = (Instant::now() + HEARTBEAT).min(deadline);
        let shown = match s.client.next_event(step) {
            Ok(Some(Event::Message(m))) => s.show_message(&m).map(|line| {
                println!("{line}");
                got += 1;
            }),
            Ok(Some(Event::Kicked(_))) => return Err(Failure::Fatal(kicked_text(o))),
            Ok(Some(Event::GroupChange(n))) => s.show_group_change(&n).map(|_| ()),
            Ok(Some(Event::Status(_))) => Ok(()),
            Ok(None) => s.client.heartbeat_if_idle(HEARTBEAT).map_err(Failure::Lost),
            Err(e) => Err(Failure::Lost(e)),
        };
        match shown {
            Ok(()) => {}
            Err(Failure::Lost(e)) => {
                eprintln!("im_client: connection lost ({e}); reconnecting");
                current = None;
            }
            Err(fatal) => return Err(fatal),
        }
    }
    Ok(())
}
