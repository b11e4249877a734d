//! im_client: a command-line TeamTalk client.
//!
//! ```text
//! im_client --login 127.0.0.1:8008 --user alice --password alice123 send 2 "hello bob"
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 recv --count 1 --timeout 10
//! im_client --login 127.0.0.1:8008 --user bob --password bob123          # interactive
//! im_client --http 127.0.0.1:8080 --user bob --password bob123 recv     # ask over HTTP
//! im_client adduser 4 dave s4lt dave123        # prints a users-file line
//! ```
//!
//! It asks the login_server for a msg_server, logs in, acks what it
//! receives and sends heartbeats. Interactive mode reads `send <user id>
//! <text>` lines from stdin and prints incoming messages with sender and
//! time; a lost connection sends it back through the login_server.

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use servers::client::{query_msg_server, query_msg_server_http, ImClient};
use std::io::{self, BufRead};
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(5);

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
        /// Receiver's user id
        to: u32,
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
    /// Interactive: `send <user id> <text>` lines from stdin, messages to stdout
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

/// Finds a msg_server and logs in.
fn session(o: &Opts) -> io::Result<ImClient> {
    let addr = match (o.msg_server, o.http) {
        (Some(a), _) => a,
        (None, Some(http)) => query_msg_server_http(http, TIMEOUT)?,
        (None, None) => query_msg_server(o.login, TIMEOUT)?,
    };
    let mut c = ImClient::connect(addr, TIMEOUT)?;
    let res = c.login(user(o), &o.password, o.mobile, TIMEOUT)?;
    if res.result_code != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "login refused (result {}): {}",
                res.result_code,
                res.result_string.unwrap_or_default()
            ),
        ));
    }
    Ok(c)
}

fn print_message(m: &pdu::proto::ImMsgData) {
    println!(
        "from {} at {}: {}",
        m.from_user_id,
        m.create_time,
        String::from_utf8_lossy(&m.msg_data)
    );
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
            send(&o, *to, &text.join(" "))
        }
        Some(Cmd::Recv { count, timeout }) => {
            user(&o);
            recv(&o, *count, *timeout)
        }
        Some(Cmd::Chat) | None => {
            user(&o);
            chat(&o)
        }
    };
    if let Err(e) = result {
        eprintln!("im_client: {e}");
        std::process::exit(1);
    }
}

fn send(o: &Opts, to: u32, text: &str) -> io::Result<()> {
    let mut c = session(o)?;
    c.send_text(to, text)?;
    let id = c.wait_ack(Instant::now() + TIMEOUT)?;
    println!("sent message {id} to {to}");
    Ok(())
}

fn recv(o: &Opts, count: usize, timeout: Duration) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    let mut got = 0;
    let mut client: Option<ImClient> = None;
    while got < count {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("received {got} of {count}"),
            ));
        }
        let c = match client.as_mut() {
            Some(c) => c,
            None => match session(o) {
                Ok(c) => client.insert(c),
                Err(e) => {
                    eprintln!("im_client: {e}; retrying");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        let step = (Instant::now() + HEARTBEAT).min(deadline);
        match c.next_message(step) {
            Ok(Some(m)) => {
                print_message(&m);
                got += 1;
            }
            Ok(None) => c.heartbeat_if_idle(HEARTBEAT)?,
            Err(e) => {
                eprintln!("im_client: connection lost ({e}); reconnecting");
                client = None;
            }
        }
    }
    Ok(())
}

fn chat(o: &Opts) -> io::Result<()> {
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    eprintln!("commands: send <user id> <text> | quit");
    let mut client: Option<ImClient> = None;
    loop {
        let c = match client.as_mut() {
            Some(c) => c,
            None => match session(o) {
                Ok(c) => {
                    eprintln!("logged in as {} (id {})", user(o), c.user_id);
                    client.insert(c)
                }
                Err(e) => {
                    eprintln!("im_client: {e}; retrying in 1 s");
                    std::thread::sleep(Duration::from_secs(1));
                    continue;
                }
            },
        };
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let mut parts = line.splitn(3, ' ');
                    match (parts.next(), parts.next(), parts.next()) {
                        (Some("send"), Some(to), Some(text)) => match to.parse::<u32>() {
                            Ok(to) => {
                                if let Err(e) = c.send_text(to, text) {
                                    eprintln!("send failed: {e}");
                                }
                            }
                            Err(_) => eprintln!("user must be a numeric id"),
                        },
                        (Some("quit"), _, _) => return Ok(()),
                        _ => eprintln!("commands: send <user id> <text> | quit"),
                    }
                }
                Err(mpsc::TryRecvError::Disconnected) => return Ok(()),
                Err(mpsc::TryRecvError::Empty) => break,
            }
        }
        let outcome = c
            .next_message(Instant::now() + Duration::from_millis(200))
            .and_then(|m| {
                if let Some(m) = m {
                    print_message(&m);
                }
                c.heartbeat_if_idle(HEARTBEAT)
            });
        if let Err(e) = outcome {
            eprintln!("im_client: connection lost ({e}); reconnecting");
            client = None;
        }
    }
}
