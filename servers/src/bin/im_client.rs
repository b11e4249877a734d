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

use servers::client::{query_msg_server, query_msg_server_http, ImClient};
use std::io::{self, BufRead};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);
const HEARTBEAT: Duration = Duration::from_secs(5);

struct Opts {
    login: SocketAddr,
    http: Option<SocketAddr>,
    msg_server: Option<SocketAddr>,
    user: String,
    password: String,
    mobile: bool,
    rest: Vec<String>,
}

fn usage() -> ! {
    eprintln!(
        "usage: im_client [--login HOST:PORT | --http HOST:PORT | --msg-server HOST:PORT] --user NAME --password PW [--mobile] \
         [send <user id> <text> | recv [--count N] [--timeout S] | chat]\n       im_client adduser <id> <name> <salt> <password>"
    );
    std::process::exit(2)
}

fn parse(args: Vec<String>) -> Opts {
    let mut o = Opts {
        login: "127.0.0.1:8008".parse().unwrap_or_else(|_| usage()),
        http: None,
        msg_server: None,
        user: String::new(),
        password: String::new(),
        mobile: false,
        rest: Vec::new(),
    };
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--login" => o.login = val().parse().unwrap_or_else(|_| usage()),
            "--http" => o.http = Some(val().parse().unwrap_or_else(|_| usage())),
            "--msg-server" => o.msg_server = Some(val().parse().unwrap_or_else(|_| usage())),
            "--user" => o.user = val(),
            "--password" => o.password = val(),
            "--mobile" => o.mobile = true,
            _ => {
                o.rest.push(a);
                o.rest.extend(it.by_ref());
            }
        }
    }
    o
}

/// Finds a msg_server and logs in.
fn session(o: &Opts) -> io::Result<ImClient> {
    let addr = match (o.msg_server, o.http) {
        (Some(a), _) => a,
        (None, Some(http)) => query_msg_server_http(http, TIMEOUT)?,
        (None, None) => query_msg_server(o.login, TIMEOUT)?,
    };
    let mut c = ImClient::connect(addr, TIMEOUT)?;
    let res = c.login(&o.user, &o.password, o.mobile, TIMEOUT)?;
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
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .try_init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("adduser") {
        let [_, id, name, salt, password] = &args[..] else {
            usage()
        };
        let id: u32 = id.parse().unwrap_or_else(|_| usage());
        println!("{}", servers::users::user_line(id, name, salt, password));
        return;
    }
    let o = parse(args);
    if o.user.is_empty() {
        usage();
    }
    let result = match o.rest.first().map(String::as_str) {
        Some("send") => send(&o),
        Some("recv") => recv(&o),
        Some("chat") | None => chat(&o),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("im_client: {e}");
        std::process::exit(1);
    }
}

fn send(o: &Opts) -> io::Result<()> {
    let (Some(to), Some(text)) = (o.rest.get(1), o.rest.get(2)) else {
        usage()
    };
    let to: u32 = to.parse().unwrap_or_else(|_| usage());
    let mut c = session(o)?;
    c.send_text(to, text)?;
    let id = c.wait_ack(Instant::now() + TIMEOUT)?;
    println!("sent message {id} to {to}");
    Ok(())
}

fn recv(o: &Opts) -> io::Result<()> {
    let mut count = 1usize;
    let mut timeout = TIMEOUT;
    let mut it = o.rest.iter().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().unwrap_or_else(|| usage());
        match a.as_str() {
            "--count" => count = v.parse().unwrap_or_else(|_| usage()),
            "--timeout" => timeout = Duration::from_secs_f64(v.parse().unwrap_or_else(|_| usage())),
            _ => usage(),
        }
    }
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
                    eprintln!("logged in as {} (id {})", o.user, c.user_id);
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
