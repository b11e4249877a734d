//! Injected faults against the real `msgcenter-orders` processes, a shop
//! and a customer, each in a network namespace of its own joined by a veth
//! pair (10.77.0.1 customer, 10.77.0.2 shop), made and removed by the test:
//!
//! - a partition (nft drop both ways) in the middle of a NeedAck stream;
//! - the shop killed with SIGKILL mid-stream and started again;
//! - a shop that stops reading (SIGSTOP) while large orders pile up.
//!
//! Every test counts: each order has exactly one outcome at the customer;
//! no order is handled twice (over all shop processes); every acknowledged
//! order was handled exactly once. Needs root (`ip netns`, nft); without it
//! a test prints SKIP and passes. The three short tests (a few seconds
//! each) run with `cargo test`; the long one, repeated partitions and kills
//! under a stream of 3000 orders, is `#[ignore]`d and run by
//! `scripts/msgcenter_faults.sh` with the others.

use std::collections::HashMap;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use testkit::{collect_lines, run, spawn_piped, NetnsPair};

const CUSTOMER_IP: &str = "10.77.0.1";
const SHOP_IP: &str = "10.77.0.2";
const SHOP: &str = "10.77.0.2:7100";
const BIN: &str = env!("CARGO_BIN_EXE_msgcenter-orders");

/// Center settings for both processes: quick retries and dead-peer checks.
const SETTINGS: &[&str] = &[
    "retry_interval_ms=200",
    "max_retries=1000",
    "deadline_ms=30000",
    "dedup_window_ms=60000",
    "heartbeat_ms=200",
    "dead_after_ms=1000",
    "connect_timeout_ms=500",
    "handshake_timeout_ms=1000",
    "reconnect_max_ms=500",
];

/// The namespaces: customer in `a`, shop in `b`.
struct Netns(NetnsPair);

impl Netns {
    fn create(tag: &str) -> Option<Netns> {
        NetnsPair::create(&format!("mc-{tag}"), CUSTOMER_IP, SHOP_IP).map(Netns)
    }

    fn customer(&self) -> &str {
        &self.0.a
    }

    fn shop(&self) -> &str {
        &self.0.b
    }

    /// Drops everything between the two, both ways, at the shop.
    fn partition(&self) {
        self.0.nft(
            self.shop(),
            &format!(
                "table inet mcpart {{\n\
                 chain in {{ type filter hook input priority 0; ip saddr {CUSTOMER_IP} drop; }}\n\
                 chain out {{ type filter hook output priority 0; ip daddr {CUSTOMER_IP} drop; }}\n\
                 }}\n"
            ),
        );
    }

    fn heal(&self) {
        self.0.nft(self.shop(), "delete table inet mcpart\n");
    }
}

/// A process in a namespace whose stdout lines are collected; SIGKILLed
/// on drop.
struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    fn start(ns: &str, args: &[&str]) -> Proc {
        let mut cmd = NetnsPair::command(ns, BIN);
        for s in SETTINGS {
            cmd.args(["--set", s]); // before `args`, whose own --set win
        }
        cmd.args(args);
        let mut child = spawn_piped(cmd);
        let lines = collect_lines(&mut child);
        let p = Proc { child, lines };
        p.wait_line("LISTEN", Duration::from_secs(10));
        p
    }

    fn count(&self, prefix: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.starts_with(prefix))
            .count()
    }

    fn wait_line(&self, prefix: &str, within: Duration) {
        self.wait_count(prefix, 1, within);
    }

    fn wait_count(&self, prefix: &str, n: usize, within: Duration) {
        let start = Instant::now();
        while self.count(prefix) < n {
            assert!(
                start.elapsed() < within,
                "no {n} {prefix} lines within {within:?}: {:?}",
                self.lines
                    .lock()
                    .unwrap()
                    .iter()
                    .rev()
                    .take(5)
                    .collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn signal(&self, sig: &str) {
        run("kill", &[sig, &self.child.id().to_string()]).unwrap();
    }

    /// Waits for exit (bounded) and returns the lines.
    fn finish(mut self, within: Duration) -> Vec<String> {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                start.elapsed() < within,
                "customer did not finish in {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(100)); // the reader drains
        let lines = self.lines.lock().unwrap().clone();
        lines
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the customer saw, checked against what the shops handled.
#[derive(Debug, Default)]
struct Tally {
    acked: usize,
    failed: HashMap<String, usize>,
    receipts: usize,
}

fn check(orders: usize, customer: &[String], shops: &[&Proc]) -> Tally {
    let mut outcome_of: HashMap<u64, String> = HashMap::new();
    let mut seqs = vec![0usize; orders];
    let mut tally = Tally::default();
    let mut receipts: HashMap<String, usize> = HashMap::new();
    for line in customer {
        let f: Vec<&str> = line.splitn(4, ' ').collect();
        match f[0] {
            "OUTCOME" => {
                let seq: usize = f[1].parse().unwrap();
                let id: u64 = f[2].parse().unwrap();
                seqs[seq] += 1;
                assert!(outcome_of.insert(id, f[3].to_string()).is_none(), "{line}");
                if f[3].starts_with("Acked") {
                    tally.acked += 1;
                } else {
                    *tally.failed.entry(f[3].to_string()).or_default() += 1;
                }
            }
            "RECEIPT" => *receipts.entry(line.clone()).or_default() += 1,
            _ => {}
        }
    }
    assert!(
        seqs.iter().all(|&n| n == 1),
        "every order exactly one outcome: {seqs:?}"
    );
    assert!(
        receipts.values().all(|&n| n == 1),
        "a receipt handled twice"
    );
    tally.receipts = receipts.len();
    let mut handled: HashMap<u64, usize> = HashMap::new();
    for shop in shops {
        for line in shop.lines.lock().unwrap().iter() {
            if let Some(rest) = line.strip_prefix("HANDLED ") {
                let id: u64 = rest.split(' ').nth(1).unwrap().parse().unwrap();
                *handled.entry(id).or_default() += 1;
            }
        }
    }
    for (id, n) in &handled {
        assert_eq!(*n, 1, "order {id} handled {n} times");
        assert!(outcome_of.contains_key(id), "handled {id} was never posted");
    }
    for (id, o) in &outcome_of {
        if o.starts_with("Acked") {
            assert_eq!(handled.get(id), Some(&1), "acked order {id} not handled");
        }
    }
    eprintln!(
        "{orders} orders: {} acked, failed {:?}, {} handled, {} receipts",
        tally.acked,
        tally.failed,
        handled.len(),
        tally.receipts
    );
    tally
}

fn shop(ns: &Netns) -> Proc {
    Proc::start(ns.shop(), &["shop", "--listen", SHOP])
}

fn customer(ns: &Netns, orders: usize, interval_ms: u64, extra: &[&str]) -> Proc {
    let orders = orders.to_string();
    let interval = interval_ms.to_string();
    let mut args = vec![
        "customer",
        "--listen",
        "10.77.0.1:7200",
        "--shop",
        SHOP,
        "--orders",
        &orders,
        "--interval-ms",
        &interval,
        "--wait-s",
        "90",
    ];
    args.extend_from_slice(extra);
    Proc::start(ns.customer(), &args)
}

#[test]
fn partition_during_a_need_ack_stream_loses_and_duplicates_nothing() {
    let Some(ns) = Netns::create("part") else {
        return;
    };
    let shop = shop(&ns);
    let cust = customer(&ns, 300, 10, &[]);
    shop.wait_count("HANDLED", 50, Duration::from_secs(20));
    ns.partition();
    std::thread::sleep(Duration::from_secs(3));
    let during = shop.count("HANDLED");
    ns.heal();
    let lines = cust.finish(Duration::from_secs(120));
    let tally = check(300, &lines, &[&shop]);
    assert!(
        during < 300,
        "the partition held orders back ({during} handled)"
    );
    assert_eq!(tally.acked, 300, "all acked after the heal: {tally:?}");
    assert_eq!(tally.receipts, 300);
}

#[test]
fn receiver_killed_and_restarted_handles_nothing_twice() {
    let Some(ns) = Netns::create("kill") else {
        return;
    };
    let first = shop(&ns);
    let cust = customer(&ns, 400, 5, &[]);
    first.wait_count("HANDLED", 100, Duration::from_secs(20));
    first.signal("-KILL");
    std::thread::sleep(Duration::from_secs(1));
    let second = shop(&ns);
    let lines = cust.finish(Duration::from_secs(120));
    let tally = check(400, &lines, &[&first, &second]);
    // Orders sent to the killed process and not acknowledged fail as
    // PeerRestarted (maybe handled there); everything else is acked.
    for reason in tally.failed.keys() {
        assert!(reason.contains("PeerRestarted"), "{tally:?}");
    }
    assert!(second.count("HANDLED") > 0, "the restarted shop took over");
    // A shop killed after acking an order but before sending its receipt
    // loses that receipt with its process: receipts <= acked.
    assert!(tally.receipts <= tally.acked, "{tally:?}");
}

#[test]
fn a_shop_that_stops_reading_meets_backlog_and_deadlines_not_memory_growth() {
    let Some(ns) = Netns::create("stop") else {
        return;
    };
    let shop = shop(&ns);
    shop.signal("-STOP");
    // 300 orders of 64 KiB with a 1 MiB backlog and a 4 s deadline.
    let cust = customer(
        &ns,
        300,
        2,
        &[
            "--body-bytes",
            "65536",
            "--set",
            "backlog_high=1048576",
            "--set",
            "backlog_low=262144",
            "--set",
            "deadline_ms=4000",
        ],
    );
    std::thread::sleep(Duration::from_secs(3));
    shop.signal("-CONT");
    let lines = cust.finish(Duration::from_secs(120));
    let tally = check(300, &lines, &[&shop]);
    assert!(
        tally.failed.keys().any(|r| r.contains("Backlog")),
        "posts past the high-water mark fail fast: {tally:?}"
    );
}

#[test]
#[ignore = "long fault test (root, ~40 s): scripts/msgcenter_faults.sh"]
fn repeated_partitions_and_kills_under_a_long_stream() {
    let Some(ns) = Netns::create("long") else {
        return;
    };
    let mut shops = vec![shop(&ns)];
    let cust = customer(&ns, 3000, 3, &[]);
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(800));
        ns.partition();
        std::thread::sleep(Duration::from_millis(1500));
        ns.heal();
        std::thread::sleep(Duration::from_millis(800));
        let current = shops.last().unwrap();
        let before = current.count("HANDLED");
        current.signal("-KILL");
        eprintln!("round {round}: killed a shop after it handled {before}");
        std::thread::sleep(Duration::from_millis(500));
        shops.push(shop(&ns));
    }
    let lines = cust.finish(Duration::from_secs(180));
    let refs: Vec<&Proc> = shops.iter().collect();
    let tally = check(3000, &lines, &refs);
    for reason in tally.failed.keys() {
        assert!(reason.contains("PeerRestarted"), "{tally:?}");
    }
    assert!(tally.receipts <= tally.acked, "{tally:?}");
}
