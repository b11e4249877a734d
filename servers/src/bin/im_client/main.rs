//! im_client: a command-line TeamTalk client.
//!
//! ```text
//! im_client --login 127.0.0.1:8008 --user alice --password alice123 send bob "hello bob"
//! im_client --login 127.0.0.1:8008 --user alice --password alice123 send --group team "hi all"
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 recv --count 1 --timeout 10
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 history --group team --count 5
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 groups
//! im_client --login 127.0.0.1:8008 --user bob --password bob123 group create lunch alice carol
//! im_client --login 127.0.0.1:8008 --user bob --password bob123          # interactive
//! im_client --http 127.0.0.1:8080 --user bob --password bob123 recv     # ask over HTTP
//! im_client adduser 4 dave s4lt dave123        # prints a users-file line
//! ```
//!
//! It asks the login_server for a msg_server, logs in (the password travels
//! as its MD5 hex, as TeamTalk clients send it), fetches the list of users
//! and of the user's groups (so people and groups are named, and a message
//! to someone who does not exist, or to a group one is not in, is refused
//! before it is sent), acks what it receives - each delivery with the
//! session it came in - and sends heartbeats.
//!
//! - `session`: logging in, the user and group [`directory`], reconnect
//!   backoff, why a session ended;
//! - `directory`: names and ids of users and groups, and how messages are
//!   shown (`[local date time] sender: text`, `[local date time] [group]
//!   sender: text` in a group);
//! - `script`: the one-shot forms `send`, `recv`, `history`, `groups`,
//!   `group`;
//! - `manage`: temporary groups (create, add, remove, leave), for both the
//!   script form and chat mode;
//! - `chat`: interactive mode, reading commands from stdin with a `name> `
//!   prompt. It stops, saying why, when the password is refused or when the
//!   same user logs in elsewhere (no kick ping-pong); after a lost
//!   connection it reconnects through the login_server with a backoff (1 s,
//!   doubling up to 30 s).
//!
//! Exit codes: 0 done, 1 error (refused login, kicked, timeout, unknown
//! user or group), 2 usage.

mod chat;
mod directory;
mod manage;
mod script;
mod session;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, Subcommand};
use session::Failure;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// A command-line TeamTalk client: finds a msg_server through a
/// login_server, logs in, sends and receives messages, one to one and in
/// groups.
#[derive(Parser)]
#[command(name = "im_client", after_help = chat::CHAT_HELP_LONG)]
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
    /// Send one message to a user or a group and wait for the server's ack
    Send {
        /// TO is a group (one of yours: name or id), not a user
        #[arg(short, long)]
        group: bool,
        /// Receiver: user name or id (with --group: group name or id)
        to: String,
        /// The message (several words are joined with spaces)
        #[arg(required = true, num_args = 1..)]
        text: Vec<String>,
    },
    /// Print incoming messages, one to one and in groups, until --count arrived
    Recv {
        /// Messages to wait for
        #[arg(long, default_value_t = 1)]
        count: usize,
        /// Give up after this many seconds (exit 1)
        #[arg(long, default_value = "10", value_parser = seconds)]
        timeout: Duration,
    },
    /// Print the newest messages between you and a user, or of a group (0x0309)
    History {
        /// WITH is a group (one of yours: name or id), not a user
        #[arg(short, long)]
        group: bool,
        /// The other user (with --group: the group): name or id
        with: String,
        /// How many
        #[arg(long, default_value_t = 20)]
        count: u32,
    },
    /// List your groups with their members (0x0401, 0x0403)
    Groups,
    /// Temporary groups: create one, add or remove members, leave
    Group {
        #[command(subcommand)]
        op: manage::GroupOp,
    },
    /// Interactive (the default): commands from stdin, see below
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

fn main() {
    let o = Opts::parse();
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    // The others check `--user` (exit 2) before they touch the network.
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
        Some(Cmd::Send { group, to, text }) => script::send(&o, *group, to, &text.join(" ")),
        Some(Cmd::Recv { count, timeout }) => script::recv(&o, *count, *timeout),
        Some(Cmd::History { group, with, count }) => script::history(&o, *group, with, *count),
        Some(Cmd::Groups) => script::groups(&o),
        Some(Cmd::Group { op }) => script::group(&o, op),
        Some(Cmd::Chat) | None => chat::chat(&o),
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
