//! im_client: a command-line TeamTalk client.
//!
//! ```text
//! im_client --login 127.0.0.1:8008 --user alice --password alice123 send bob "hello bob"
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 recv --count 1 --timeout 10
//! im_client --login 127.0.0.1:8008 --user bob --password bob123          # interactive
//! im_client --http 127.0.0.1:8080 --user bob --password bob123 recv     # ask over HTTP
//! im_client adduser 4 dave s4lt dave123        # prints a users-file line
//! ```
//!
//! It asks the login_server for a msg_server, logs in (the password travels
//! as its MD5 hex, as TeamTalk clients send it), fetches the list of users
//! (so people are named, and a message to someone who does not exist is
//! refused before it is sent), acks what it receives and sends heartbeats.
//!
//! Interactive mode reads commands from stdin (`send <user> <text>`,
//! `history <user> [n]`, `users`, `quit`; a user is a name or an id), shows incoming messages as
//! `[local date time] sender: text` and users of its department going on or
//! off line, with a `name> ` prompt. It stops, saying why, when the password
//! is refused or when the same user logs in elsewhere (no kick ping-pong);
//! after a lost connection it reconnects through the login_server with a
//! backoff (1 s, doubling up to 30 s).
//!
//! Exit codes: 0 done, 1 error (refused login, kicked, timeout, unknown
//! user), 2 usage.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use pdu::proto::{ImMsgData, UserInfo, UserStatType};
use servers::client::{query_msg_server, query_msg_server_http, Event, ImClient};
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(5);
const RETRY_FIRST: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// A command-line TeamTalk client: finds a msg_server through a
/// login_server, logs in, sends and receives messages.
#[derive(Parser)]
#[command(name = "im_client")]
struct Opts {
    /// login_server's client port, asked for a msg_server
    #[arg(long, global = true, value_name = "HOST:PORT", default_value = "127.0.0.1:8008", value_parser = addr)]
    login: SocketAddr,
    /// Ask login_server's HTTP port instead (GET /msg_server)
    #[arg(long, global = true, value_name = "HOST:PORT", value_parser = addr)]
    http: Option<SocketAddr>,
    /// Skip the login_server: log in at this msg_server
    #[arg(long, global = true, value_name = "HOST:PORT", value_parser = addr)]
    msg_server: Option<SocketAddr>,
    /// Account name (users file)
    #[arg(long, global = true)]
    user: Option<String>,
    /// Account password as typed (sent as its MD5 hex, as TeamTalk clients do)
    #[arg(long, global = true, default_value = "")]
    password: String,
    /// Log in as a mobile client
    #[arg(long, global = true)]
    mobile: bool,
    /// What to do [default: chat]
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Send one message and wait for the server's ack
    Send {
        /// Receiver: user name or id
        to: String,
        /// The message (several words are joined with spaces)
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Print incoming messages until --count arrived
    Recv {
        /// Messages to wait for
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Give up after this many seconds (exit 1)
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
    /// Print the newest messages between you and a user (0x0309)
    History {
        /// The other user: name or id
        with: String,
        /// How many
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
    /// Interactive: `send <user> <text>`, `history <user> [n]`, `users`, `quit` from stdin
    Chat,
    /// Print a users-file line for an account: `id name salt
    /// sha256(salt + md5hex(password))` (append a department id if wanted)
    Adduser {
        /// User id
        id: u32,
        /// Login name
        name: String,
        /// Any word without spaces, different per user
        salt: String,
        /// The password as the person types it (never stored)
        password: String,
    },
}

fn addr(value: &str) -> Result<SocketAddr, String> {
    value
        .to_socket_addrs()
        .map_err(|e| format!("`{value}` is not HOST:PORT ({e})"))?
        .next()
        .ok_or_else(|| format!("`{value}` has no address"))
}

fn seconds(value: &str) -> Result<Duration, String> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(Duration::from_secs_f64(s)),
        _ => Err(format!("`{value}` is not a number of seconds")),
    }
}

/// The account name, or a usage error (exit 2) when `--user` is missing.
fn user(o: &Opts) -> &str {
    match o.user.as_deref() {
        Some(u) if !u.is_empty() => u,
        _ => Opts::command()
            .error(
                ErrorKind::MissingRequiredArgument,
                "--user NAME is required (and --password PW)",
            )
            .exit(),
    }
}

/// Why a session ended or could not start.
enum Failure {
    /// Worth retrying later: the network or a server is away.
    Lost(io::Error),
    /// Retrying cannot help: the password was refused, the user logged in
    /// elsewhere, a user does not exist. Ends the program.
    Fatal(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Lost(e)
    }
}

/// Names and ids of every account, fetched at login.
#[derive(Default)]
struct Directory {
    names: HashMap<u32, String>,
    ids: HashMap<String, u32>,
}

impl Directory {
    fn new(users: Vec<UserInfo>) -> Directory {
        let mut d = Directory::default();
        for u in users {
            d.ids.insert(u.user_nick_name.clone(), u.user_id);
            d.names.insert(u.user_id, u.user_nick_name);
        }
        d
    }

    fn name(&self, id: u32) -> String {
        self.names
            .get(&id)
            .cloned()
            .unwrap_or_else(|| format!("user {id}"))
    }

    /// A user given by name or id, if the server knows it.
    fn resolve(&self, who: &str) -> Result<u32, String> {
        if let Some(id) = self.ids.get(who) {
            return Ok(*id);
        }
        match who.parse::<u32>() {
            Ok(id) if self.names.contains_key(&id) => Ok(id),
            _ => Err(format!("no such user: {who}")),
        }
    }
}

/// A logged-in connection and the user directory.
struct Session {
    client: ImClient,
    directory: Directory,
}

/// Finds a msg_server, logs in and fetches the user list.
fn session(o: &Opts) -> Result<Session, Failure> {
    let addr = match (o.msg_server, o.http) {
        (Some(a), _) => a,
        (None, Some(http)) => query_msg_server_http(http, TIMEOUT)?,
        (None, None) => query_msg_server(o.login, TIMEOUT)?,
    };
    let mut client = ImClient::connect(addr, TIMEOUT)?;
    let res = client.login(user(o), &o.password, o.mobile, TIMEOUT)?;
    if res.result_code != 0 {
        return Err(Failure::Fatal(format!(
            "login refused: {} (result {})",
            res.result_string
                .as_deref()
                .unwrap_or("wrong user name or password"),
            res.result_code
        )));
    }
    let directory = Directory::new(client.all_users(TIMEOUT)?);
    Ok(Session { client, directory })
}

/// `unix` seconds as local `YYYY-MM-DD HH:MM:SS`.
fn local_time(unix: u32) -> String {
    let t = libc::time_t::from(unix);
    // SAFETY: localtime_r writes only into `tm`, a local we own; both
    // pointers are valid for the call.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let ok = unsafe { !libc::localtime_r(&t, &mut tm).is_null() };
    if !ok {
        return format!("@{unix}");
    }
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

/// `[local time] sender: text`, how every message is shown.
fn show(d: &Directory, time: u32, from: u32, data: &[u8]) -> String {
    format!(
        "[{}] {}: {}",
        local_time(time),
        d.name(from),
        String::from_utf8_lossy(data)
    )
}

fn show_message(d: &Directory, m: &ImMsgData) -> String {
    show(d, m.create_time, m.from_user_id, &m.msg_data)
}

fn kicked_text(o: &Opts) -> String {
    format!(
        "signed out: {} logged in elsewhere (not reconnecting)",
        user(o)
    )
}

fn main() {
    let o = Opts::parse();
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let result = match &o.command {
        Some(Cmd::Adduser {
            id,
            name,
            salt,
            password,
        }) => {
            println!("{}", servers::users::user_line(*id, name, salt, password));
            return;
        }
        Some(Cmd::Send { to, text }) => {
            user(&o);
            send(&o, to, &text.join(" "))
        }
        Some(Cmd::Recv { count, timeout }) => {
            user(&o);
            recv(&o, *count, *timeout)
        }
        Some(Cmd::History { with, count }) => {
            user(&o);
            history(&o, with, *count)
        }
        Some(Cmd::Chat) | None => {
            user(&o);
            chat(&o)
        }
    };
    if let Err(e) = result {
        let text = match e {
            Failure::Lost(e) => e.to_string(),
            Failure::Fatal(text) => text,
        };
        eprintln!("im_client: {text}");
        std::process::exit(1);
    }
}

fn send(o: &Opts, to: &str, text: &str) -> Result<(), Failure> {
    let mut s = session(o)?;
    let to = s.directory.resolve(to).map_err(Failure::Fatal)?;
    s.client.send_text(to, text)?;
    let id = s.client.wait_ack(Instant::now() + TIMEOUT)?;
    println!("sent message {id} to {}", s.directory.name(to));
    Ok(())
}

/// How long to wait for a history answer (a server without history ignores
/// the request).
const HISTORY_WAIT: Duration = Duration::from_secs(3);

/// The lines of `with`'s session history, oldest first.
fn history_lines(s: &mut Session, with: &str, count: u32) -> Result<Vec<String>, Failure> {
    let peer = s.directory.resolve(with).map_err(Failure::Fatal)?;
    let list = match s.client.history(peer, count, HISTORY_WAIT) {
        Ok(list) => list,
        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
            return Err(Failure::Fatal(
                "history not available: the server did not answer".into(),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    if list.is_empty() {
        return Ok(vec![format!("no messages with {}", s.directory.name(peer))]);
    }
    Ok(list
        .iter()
        .map(|m| show(&s.directory, m.create_time, m.from_session_id, &m.msg_data))
        .collect())
}

fn history(o: &Opts, with: &str, count: u32) -> Result<(), Failure> {
    let mut s = session(o)?;
    for line in history_lines(&mut s, with, count)? {
        println!("{line}");
    }
    Ok(())
}

/// Reconnect delays: 1 s, doubling up to 30 s; back to 1 s after a login.
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: RETRY_FIRST }
    }

    fn take(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(RETRY_MAX);
        d
    }
}

fn recv(o: &Opts, count: usize, timeout: Duration) -> Result<(), Failure> {
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
        match s.client.next_event(step) {
            Ok(Some(Event::Message(m))) => {
                println!("{}", show_message(&s.directory, &m));
                got += 1;
            }
            Ok(Some(Event::Kicked(_))) => return Err(Failure::Fatal(kicked_text(o))),
            Ok(Some(Event::Status(_))) => {}
            Ok(None) => s.client.heartbeat_if_idle(HEARTBEAT)?,
            Err(e) => {
                eprintln!("im_client: connection lost ({e}); reconnecting");
                current = None;
            }
        }
    }
    Ok(())
}

const CHAT_HELP: &str =
    "commands: send <user> <text> | history <user> [n] | users | quit   (user: name or id)";

fn prompt(o: &Opts) {
    print!("{}> ", user(o));
    let _ = io::stdout().flush();
}

/// One line of output in chat mode, then the prompt again.
fn say(o: &Opts, line: &str) {
    println!("\r{line}");
    prompt(o);
}

/// What a typed line asks for.
fn command(o: &Opts, line: &str, s: Option<&mut Session>) -> Result<bool, Failure> {
    let line = line.trim();
    let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
    match (word, s) {
        ("", _) => prompt(o),
        ("quit" | "exit", _) => return Ok(false),
        ("send" | "users" | "history", None) => {
            say(o, "not connected: try again after reconnecting")
        }
        ("send", Some(s)) => {
            let (who, text) = rest.trim_start().split_once(' ').unwrap_or((rest, ""));
            match s.directory.resolve(who) {
                _ if text.trim().is_empty() => say(o, "usage: send <user> <text>"),
                Ok(to) => {
                    s.client.send_text(to, text)?;
                    prompt(o);
                }
                Err(e) => say(o, &e),
            }
        }
        ("history", Some(s)) => {
            let (who, n) = rest.trim().split_once(' ').unwrap_or((rest.trim(), "20"));
            match n.trim().parse::<u32>() {
                Ok(n) if !who.is_empty() => match history_lines(s, who, n) {
                    Ok(lines) => say(o, &lines.join("\n")),
                    Err(Failure::Fatal(e)) => say(o, &e),
                    Err(lost) => return Err(lost),
                },
                _ => say(o, "usage: history <user> [count]"),
            }
        }
        ("users", Some(s)) => {
            let mut all: Vec<_> = s.directory.names.iter().collect();
            all.sort();
            let list: Vec<String> = all.iter().map(|(id, n)| format!("{n} ({id})")).collect();
            say(o, &format!("users: {}", list.join(", ")));
        }
        _ => say(o, CHAT_HELP),
    }
    Ok(true)
}

fn chat(o: &Opts) -> Result<(), Failure> {
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
        Some(Event::Message(m)) => say(o, &show_message(&s.directory, &m)),
        Some(Event::Status(st)) => {
            let what = if st.status == UserStatType::UserStatusOnline as i32 {
                "is online"
            } else {
                "went offline"
            };
            say(o, &format!("* {} {what}", s.directory.name(st.user_id)));
        }
        Some(Event::Kicked(_)) => return Err(Failure::Fatal(kicked_text(o))),
        None => {}
    }
    s.client.heartbeat_if_idle(HEARTBEAT)?;
    Ok(())
}
