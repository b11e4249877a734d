//! Interactive mode: typed commands from stdin (read on a thread of their
//! own, so `quit` works while waiting to reconnect), and what the server
//! pushes - messages, users of the department going on or off line, group
//! membership changes - each shown on a line of its own followed by the
//! `name> ` prompt.

use crate::manage;
use crate::script::history_lines;
use crate::session::{kicked_text, session, Backoff, Failure, Session, HEARTBEAT};
use crate::{user, Opts};
use pdu::proto::UserStatType;
use servers::client::Event;
use std::io::{self, BufRead, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Printed when chat mode starts and for a line it does not understand.
const CHAT_HELP: &str = "commands: send [-g] <to> <text> | history [-g] <with> [n] | users | \
                         groups | group create|add|remove|leave ... | quit   \
                         (a user or, with -g, a group: name or id)";

/// `--help`'s part on chat mode.
pub const CHAT_HELP_LONG: &str = "\
Chat mode (no command, or `chat`) reads commands from stdin:
  send <user> <text>             send to a user (name or id)
  send -g <group> <text>         send to one of your groups (name or id)
  history <user> [n]             the last n (20) messages with a user
  history -g <group> [n]         the last n (20) messages of a group
  users                          every account
  groups                         your groups and their members
  group create <name> <user>...  a temporary group of you and the users
  group add <group> <user>...    add members (any member of a temporary group)
  group remove <group> <user>... remove members (the group's creator)
  group leave <group>            leave a temporary group
  quit                           leave
Incoming messages show as `[local date time] sender: text`, group messages
as `[local date time] [group] sender: text`.";

fn prompt(o: &Opts) {
    print!("{}> ", user(o));
    let _ = io::stdout().flush();
}

/// One line of output in chat mode, then the prompt again.
fn say(o: &Opts, line: &str) {
    println!("\r{line}");
    prompt(o);
}

/// `-g`/`--group` at the start of `rest`: (true, what follows).
fn group_flag(rest: &str) -> (bool, &str) {
    let rest = rest.trim_start();
    for flag in ["-g ", "--group "] {
        if let Some(after) = rest.strip_prefix(flag) {
            return (true, after.trim_start());
        }
    }
    (false, rest)
}

/// Says `done`'s line (none: just the prompt) or, for a failure that
/// retrying cannot mend (an unknown user, a refusal), why; a lost connection
/// is returned.
fn report(o: &Opts, done: Result<String, Failure>) -> Result<(), Failure> {
    match done {
        Ok(line) if line.is_empty() => prompt(o),
        Ok(line) => say(o, &line),
        Err(Failure::Fatal(why)) => say(o, &why),
        Err(lost) => return Err(lost),
    }
    Ok(())
}

/// Carries out a typed line; `Ok(false)` when the person quits. A lost
/// connection is an error; what the person got wrong is said and ignored.
fn command(o: &Opts, line: &str, s: Option<&mut Session>) -> Result<bool, Failure> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match (word, s) {
        ("", _) => prompt(o),
        ("quit" | "exit", _) => return Ok(false),
        ("send" | "users" | "history" | "groups" | "group", None) => {
            say(o, "not connected: try again after reconnecting")
        }
        ("send", Some(s)) => {
            let (group, rest) = group_flag(rest);
            let (who, text) = rest.split_once(' ').unwrap_or((rest, ""));
            if text.trim().is_empty() {
                say(o, "usage: send [-g] <to> <text>");
            } else {
                let sent = s.resolve(who, group).and_then(|to| {
                    s.client.send_to(to, text)?;
                    Ok(String::new())
                });
                report(o, sent)?;
            }
        }
        ("history", Some(s)) => {
            let (group, rest) = group_flag(rest);
            let (who, n) = rest.trim().split_once(' ').unwrap_or((rest.trim(), "20"));
            match n.trim().parse::<u32>() {
                Ok(n) if !who.is_empty() => {
                    report(o, history_lines(s, who, group, n).map(|l| l.join("\n")))?
                }
                _ => say(o, "usage: history [-g] <with> [count]"),
            }
        }
        ("users", Some(s)) => say(o, &s.directory.users_line()),
        ("groups", Some(s)) => {
            s.refresh_groups()?;
            say(o, &s.directory.group_lines().join("\n"));
        }
        ("group", Some(s)) => match manage::parse_line(rest) {
            Ok(op) => report(o, manage::run(s, &op))?,
            Err(usage) => say(o, &usage),
        },
        _ => say(o, CHAT_HELP),
    }
    Ok(true)
}

/// Chat mode until the person quits (or stdin ends), the password is
/// refused or the user logs in elsewhere.
pub fn chat(o: &Opts) -> Result<(), Failure> {
    user(o);
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    eprintln!("{CHAT_HELP}");
    let mut current: Option<Session> = None;
    let mut backoff = Backoff::new();
    loop {
        let s = match current.as_mut() {
            Some(s) => s,
            None => match session(o) {
                Ok(s) => {
                    backoff = Backoff::new();
                    say(
                        o,
                        &format!("logged in as {} (id {})", user(o), s.client.user_id),
                    );
                    current.insert(s)
                }
                Err(Failure::Lost(e)) => {
                    let wait = backoff.take();
                    say(
                        o,
                        &format!(
                            "cannot reach the server ({e}); retrying in {} s",
                            wait.as_secs()
                        ),
                    );
                    // Typed lines are still read (quit works) while waiting.
                    let until = Instant::now() + wait;
                    while let Some(left) = until.checked_duration_since(Instant::now()) {
                        match rx.recv_timeout(left) {
                            Ok(line) => {
                                if !command(o, &line, None)? {
                                    return Ok(());
                                }
                            }
                            Err(mpsc::RecvTimeoutError::Timeout) => break,
                            Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                        }
                    }
                    continue;
                }
                Err(fatal) => return Err(fatal),
            },
        };
        if let Err(failure) = chat_step(o, &rx, s) {
            match failure {
                Failure::Lost(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                Failure::Lost(e) => {
                    say(o, &format!("connection lost ({e}); reconnecting"));
                    current = None;
                }
                fatal => return Err(fatal),
            }
        }
    }
}

/// Typed lines, then what the server pushed within 200 ms. `Interrupted`
/// means the person quit.
fn chat_step(o: &Opts, rx: &mpsc::Receiver<String>, s: &mut Session) -> Result<(), Failure> {
    let quit = || Failure::Lost(io::Error::new(io::ErrorKind::Interrupted, "quit"));
    loop {
        match rx.try_recv() {
            Ok(line) => {
                if !command(o, &line, Some(s))? {
                    return Err(quit());
                }
            }
            Err(mpsc::TryRecvError::Disconnected) => return Err(quit()),
            Err(mpsc::TryRecvError::Empty) => break,
        }
    }
    match s
        .client
        .next_event(Instant::now() + Duration::from_millis(200))?
    {
        Some(Event::Message(m)) => say(o, &s.show_message(&m)?),
        Some(Event::Status(st)) => {
            let what = if st.status == UserStatType::UserStatusOnline as i32 {
                "is online"
            } else {
                "went offline"
            };
            say(o, &format!("* {} {what}", s.directory.name(st.user_id)));
        }
        Some(Event::GroupChange(n)) => say(o, &s.show_group_change(&n)?),
        Some(Event::Kicked(_)) => return Err(Failure::Fatal(kicked_text(o))),
        None => {}
    }
    s.client.heartbeat_if_idle(HEARTBEAT)?;
    Ok(())
}
