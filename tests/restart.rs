//! Durability across a hard kill: the real binary is SIGKILLed while 200 paid orders wait in
//! their delivery delay; after a restart every order is delivered exactly once.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::*;
use xianyu_shopd::clock;
use xianyu_shopd::store::{CardState, DeliveryState, Store};

const ORDERS: usize = 200;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
}

fn count_scheduled(state: &Path) -> usize {
    let Ok(store) = Store::open(state, clock::system()) else {
        return 0;
    };
    (0..ORDERS)
        .filter(|i| matches!(store.delivery(&format!("K{i:03}")), Ok(Some(d)) if d.state == DeliveryState::Scheduled))
        .count()
}

fn sends_in(stdout: &str) -> Vec<String> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("send    order="))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn killed_while_orders_wait_in_delay_then_all_delivered_once() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    write_config(
        cfg,
        &pipeline_yaml("{ min: 25s, max: 30s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    let keys: String = (0..ORDERS + 20)
        .map(|i| format!("KEY-{i:04}-SECRET\n"))
        .collect();
    std::fs::write(cfg.join("keys.txt"), keys).unwrap();
    let events: String = (0..ORDERS)
        .map(|i| format!("{{\"account\":\"main\",\"order_id\":\"K{i:03}\",\"status\":\"paid\",\"item_id\":\"{CARD_ITEM}\",\"cid\":\"c{i}\",\"buyer_id\":\"b{i}\"}}\n"))
        .collect();
    std::fs::write(cfg.join("events.jsonl"), events).unwrap();
    std::fs::write(cfg.join("none.jsonl"), "# nothing new\n").unwrap();

    let import = bin()
        .args([
            "--config-dir",
            cfg.to_str().unwrap(),
            "cards",
            "import",
            "keys",
            "keys.txt",
        ])
        .current_dir(cfg)
        .output()
        .unwrap();
    assert!(
        import.status.success(),
        "{}",
        String::from_utf8_lossy(&import.stderr)
    );

    // First run: ingest everything, let the delay stage schedule all 200, then SIGKILL.
    let mut child = bin()
        .args([
            "--config-dir",
            cfg.to_str().unwrap(),
            "replay",
            "events.jsonl",
        ])
        .current_dir(cfg)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = cfg.join("state");
    let started = Instant::now();
    while count_scheduled(&state) < ORDERS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "orders never all reached the delay stage"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    child.kill().unwrap(); // SIGKILL: no graceful shutdown
    child.wait().unwrap();
    let mut first = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        first.push_str(&line.unwrap());
        first.push('\n');
    }
    assert!(
        sends_in(&first).is_empty(),
        "nothing was due before the kill"
    );

    // Restart: the durable jobs fire after their delay and everything is delivered.
    let second = bin()
        .args([
            "--config-dir",
            cfg.to_str().unwrap(),
            "replay",
            "none.jsonl",
        ])
        .current_dir(cfg)
        .output()
        .unwrap();
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let stdout = String::from_utf8_lossy(&second.stdout).into_owned();
    let mut per_order: HashMap<String, usize> = HashMap::new();
    for id in sends_in(&first).into_iter().chain(sends_in(&stdout)) {
        *per_order.entry(id).or_default() += 1;
    }
    assert_eq!(per_order.len(), ORDERS, "every order delivered");
    assert!(per_order.values().all(|n| *n == 1), "each exactly once");

    let store = Store::open(&state, clock::system()).unwrap();
    for i in 0..ORDERS {
        assert_eq!(
            store.delivery(&format!("K{i:03}")).unwrap().unwrap().state,
            DeliveryState::Delivered
        );
    }
    let counts = store.card_counts().unwrap();
    assert_eq!(counts["keys"].get(CardState::Delivered), ORDERS as u64);
    assert_eq!(counts["keys"].get(CardState::Reserved), 0);
}

#[test]
fn a_second_daemon_on_the_same_state_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _held = xianyu_shopd::store::DaemonLock::acquire(dir.path()).unwrap();
    let err = xianyu_shopd::store::DaemonLock::acquire(dir.path()).unwrap_err();
    assert!(err.to_string().contains("already running"), "{err}");
}

/// Issue 9 D9: deleting `state/daemon.lock` (the "stale lock" reflex) must not let a second
/// writer in while the first still runs; the CLI commands keep working next to it.
#[test]
fn deleting_the_lock_file_does_not_let_a_second_daemon_in() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path();
    write_config(
        cfg,
        &pipeline_yaml("{ min: 1h, max: 1h }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    std::fs::write(cfg.join("keys.txt"), "KEY-0001-SECRET\n").unwrap();
    let event = format!(
        "{{\"account\":\"main\",\"order_id\":\"L1\",\"status\":\"paid\",\"item_id\":\"{CARD_ITEM}\",\"cid\":\"c1\",\"buyer_id\":\"b1\"}}\n"
    );
    std::fs::write(cfg.join("events.jsonl"), event).unwrap();
    let run = |args: &[&str]| {
        bin()
            .arg("--config-dir")
            .arg(cfg)
            .args(args)
            .current_dir(cfg)
            .output()
            .unwrap()
    };
    assert!(
        run(&["cards", "import", "keys", "keys.txt"])
            .status
            .success()
    );
    // The first writer waits an hour for its delayed delivery, holding the state directory.
    let mut first = bin()
        .arg("--config-dir")
        .arg(cfg)
        .args(["replay", "events.jsonl"])
        .current_dir(cfg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let state = cfg.join("state");
    let started = Instant::now();
    while !matches!(Store::open(&state, clock::system()).map(|s| s.delivery("L1")), Ok(Ok(Some(d))) if d.state == DeliveryState::Scheduled)
    {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "L1 never scheduled"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_file(state.join("daemon.lock")).unwrap();

    let second = run(&["replay", "--no-wait", "/dev/null"]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(!second.status.success(), "a second writer got in: {stderr}");
    assert!(
        stderr.contains("already running") && stderr.contains("守护进程"),
        "{stderr}"
    );
    // The seller's commands still work next to the running daemon.
    let list = run(&["cards", "list"]);
    assert!(
        list.status.success(),
        "{}",
        String::from_utf8_lossy(&list.stderr)
    );
    let show = run(&["orders", "show", "L1"]);
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    assert!(run(&["backup", "copy.redb"]).status.success());

    first.kill().unwrap();
    first.wait().unwrap();
    // The lock died with the process.
    let third = run(&["replay", "--no-wait", "/dev/null"]);
    assert!(
        third.status.success(),
        "{}",
        String::from_utf8_lossy(&third.stderr)
    );
}
