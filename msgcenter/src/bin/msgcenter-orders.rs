//! Two nodes exchanging orders and receipts over msgcenter.
//!
//! ```text
//! msgcenter-orders shop --listen 127.0.0.1:7100
//! msgcenter-orders customer --shop 127.0.0.1:7100 --orders 10
//! ```
//!
//! The shop handles ORDER messages (type 1, NeedAck): it prints
//! `HANDLED <sender node> <id> <body>` and answers with a RECEIPT (type 2,
//! NeedAck) to the customer's listen address. The customer posts `--orders`
//! orders, prints `OUTCOME <seq> <id> <outcome>` for each as its outcome
//! arrives and `RECEIPT <body>` for each receipt, then `SUMMARY ...`, and
//! exits once every order has an outcome and every acknowledged order its
//! receipt (or `--wait-s` passed, or no receipt came for 5 s). Both print `LISTEN <role> <addr>` and
//! `NODE <id>` first. `--body-bytes` pads orders (dots after the name) to
//! exercise backlogs; `--set key=value` sets any center setting
//! (`msgcenter::config::KEYS`). The fault tests drive these two processes.

use clap::{Parser, Subcommand};
use msgcenter::{Center, Config, Handlers, Message, Outcome};
use std::collections::HashSet;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

const ORDER: u32 = 1;
const RECEIPT: u32 = 2;

#[derive(Parser)]
#[command(about = "msgcenter example: a shop and a customer exchanging orders and receipts")]
struct Cli {
    #[command(subcommand)]
    role: Role,
    /// Listen address of this node.
    #[arg(long, global = true, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// A center setting as key=value (repeatable), e.g. retry_interval_ms=200.
    #[arg(long = "set", global = true)]
    settings: Vec<String>,
}

#[derive(Subcommand)]
enum Role {
    /// Handle orders and send receipts, until killed.
    Shop,
    /// Send orders to a shop and wait for receipts.
    Customer {
        /// The shop's address.
        #[arg(long)]
        shop: SocketAddr,
        /// How many orders to send.
        #[arg(long, default_value_t = 10)]
        orders: u32,
        /// Pause between orders, in milliseconds.
        #[arg(long, default_value_t = 0)]
        interval_ms: u64,
        /// Give up waiting for outcomes and receipts after this long.
        #[arg(long, default_value_t = 60)]
        wait_s: u64,
        /// Pad each order to this many bytes (with dots after its name).
        #[arg(long, default_value_t = 0)]
        body_bytes: usize,
    },
}

fn say(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn main() {
    env_logger::init();
    let cli = Cli::parse();
    let mut config = Config {
        listen: cli.listen,
        ..Config::default()
    };
    for pair in &cli.settings {
        if let Err(e) = config.set_pair(pair) {
            eprintln!("msgcenter-orders: {e}");
            std::process::exit(2);
        }
    }
    match cli.role {
        Role::Shop => shop(config),
        Role::Customer {
            shop,
            orders,
            interval_ms,
            wait_s,
            body_bytes,
        } => customer(config, shop, orders, interval_ms, wait_s, body_bytes),
    }
}

fn start(config: Config, handlers: Handlers, role: &str) -> msgcenter::Running {
    let center = Center::spawn(config, handlers).unwrap_or_else(|e| {
        eprintln!("msgcenter-orders: {e}");
        std::process::exit(1);
    });
    say(format_args!(
        "LISTEN {role} {}",
        center.handle().local_addr()
    ));
    say(format_args!("NODE {}", center.handle().node_id()));
    center
}

fn shop(config: Config) {
    let handlers = Handlers::new().on(ORDER, |cx, order| {
        // The order's name, without the padding of --body-bytes.
        let name = order.body.split(|&b| b == b'.').next().unwrap_or_default();
        let body = String::from_utf8_lossy(name);
        say(format_args!("HANDLED {} {} {body}", order.from, order.id));
        cx.post(Message::new(order.from, RECEIPT, format!("receipt for {body}")).need_ack());
    });
    let _center = start(config, handlers, "shop");
    loop {
        std::thread::park();
    }
}

fn customer(
    config: Config,
    shop: SocketAddr,
    orders: u32,
    interval_ms: u64,
    wait_s: u64,
    body_bytes: usize,
) {
    let (receipt_tx, receipts) = mpsc::channel();
    let handlers = Handlers::new().on(RECEIPT, move |_, r| {
        let _ = receipt_tx.send(String::from_utf8_lossy(r.body).into_owned());
    });
    let center = start(config, handlers, "customer");
    let (done_tx, done) = mpsc::channel();
    for seq in 0..orders {
        let tx = done_tx.clone();
        let mut body = format!("order-{seq}").into_bytes();
        if body.len() < body_bytes {
            body.resize(body_bytes, b'.');
        }
        let msg = Message::new(shop, ORDER, body)
            .need_ack()
            .on_done(move |id, outcome| {
                say(format_args!("OUTCOME {seq} {id} {outcome:?}"));
                let _ = tx.send(outcome);
            });
        center.handle().post(msg);
        if interval_ms > 0 {
            std::thread::sleep(Duration::from_millis(interval_ms));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(wait_s);
    let (mut acked, mut failed) = (0u32, 0u32);
    while acked + failed < orders {
        match done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Outcome::Acked { .. }) => acked += 1,
            Ok(_) => failed += 1,
            Err(_) => break,
        }
    }
    // A shop killed between acking an order and sending its receipt never
    // sends it: stop waiting once receipts stop coming for a while.
    let quiet = Duration::from_secs(5);
    let mut seen = HashSet::new();
    while (seen.len() as u32) < acked {
        let left = deadline.saturating_duration_since(Instant::now());
        match receipts.recv_timeout(left.min(quiet)) {
            Ok(r) => {
                say(format_args!("RECEIPT {r}"));
                seen.insert(r);
            }
            Err(_) => break,
        }
    }
    say(format_args!(
        "SUMMARY orders={orders} acked={acked} failed={failed} receipts={}",
        seen.len()
    ));
    center.shutdown();
}
