//! A damaged store is named, not panicked on (issue 9, D10), and a full disk stops processing
//! with one message and resumes once there is space (D17).
//!
//! The binary's full-disk test limits the child's file size (`ulimit -f`: writes fail with EFBIG,
//! as on a full disk), which needs no privileges. The library's pause-and-resume test mounts a
//! small tmpfs (CI runs as root); where mounting is not permitted it prints why and skips.

mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
use support::*;
use xianyu_shopd::clock;
use xianyu_shopd::event::EventStatus::*;
use xianyu_shopd::store::{REOPEN_EVERY, Store, StoreError};

fn bin(config: &Path, args: &[&str]) -> Output {
    shopd(config)
        .args(args)
        .env("TEST_COOKIES", "unb=1; cookie2=x")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A store with orders, keys, ledger rows, jobs and notifications, closed; returns its bytes.
async fn sample_store(dir: &Path) -> Vec<u8> {
    let h = Harness::default_shop();
    h.import_keys(6);
    for i in 0..4 {
        h.ingest(event(&format!("S{i}"), Paid, CARD_ITEM)).await;
    }
    h.ingest(event("P1", Paid, PHYSICAL_ITEM)).await;
    h.settle().await;
    let Harness {
        dir: home,
        store,
        shop,
        ..
    } = h;
    drop(shop);
    drop(store);
    let bytes = std::fs::read(home.path().join("state/shop.redb")).unwrap();
    std::fs::create_dir_all(dir).unwrap();
    bytes
}

fn flipped(pristine: &[u8], offset: usize) -> Vec<u8> {
    let mut b = pristine.to_vec();
    b[offset] ^= 0xFF;
    b
}

/// Every way the seller's commands touch the store, through the library.
fn use_store(state: &Path, scratch: &Path) -> Result<(), StoreError> {
    let store = Store::open(state, clock::system())?;
    store.list_orders(None)?;
    store.card_counts()?;
    store.shop_view()?;
    let copy = scratch.join("backup.redb");
    let _ = std::fs::remove_file(&copy);
    store.backup_to(&copy)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_named_never_panicked_on_nor_written() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = sample_store(dir.path()).await;
    let state = dir.path().join("state");
    let nonzero: Vec<usize> = (0..pristine.len()).filter(|i| pristine[*i] != 0).collect();
    let stride = (nonzero.len() / 160).max(1);
    let (mut damaged, mut fine) = (0, 0);
    for &offset in nonzero.iter().step_by(stride) {
        let bytes = flipped(&pristine, offset);
        std::fs::create_dir_all(&state).unwrap();
        std::fs::write(state.join("shop.redb"), &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| use_store(&state, dir.path()));
        match outcome {
            Err(_) => panic!("a flipped byte at {offset} panicked"),
            Ok(Ok(())) => fine += 1,
            Ok(Err(StoreError::Damaged { detail, .. })) => {
                damaged += 1;
                let after = std::fs::read(state.join("shop.redb")).unwrap();
                assert!(
                    after == bytes,
                    "a store that failed verification was written ({offset}: {detail})"
                );
            }
            Ok(Err(e)) => panic!("flip at {offset}: not named as damage: {e}"),
        }
    }
    assert!(damaged > 0 && fine > 0, "damaged {damaged}, fine {fine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_names_the_damage_and_how_to_restore() {
    let dir = tempfile::tempdir().unwrap();
    let pristine = sample_store(dir.path()).await;
    let cfg = config_dir(dir.path());
    std::fs::write(cfg.join("keys.txt"), "KEY-NEW-0001\n").unwrap();
    let state = cfg.join("state");
    std::fs::create_dir_all(&state).unwrap();
    // A damage the library reports: the first flip that fails verification.
    let nonzero: Vec<usize> = (0..pristine.len()).filter(|i| pristine[*i] != 0).collect();
    let bytes = nonzero
        .iter()
        .step_by((nonzero.len() / 160).max(1))
        .map(|o| flipped(&pristine, *o))
        .find(|b| {
            std::fs::write(state.join("shop.redb"), b).unwrap();
            matches!(
                Store::open(&state, clock::system()),
                Err(StoreError::Damaged { .. })
            )
        })
        .expect("some flip is detected");
    std::fs::write(state.join("shop.redb"), &bytes).unwrap();
    for args in [
        &["orders", "list"][..],
        &["cards", "list"],
        &["cards", "import", "keys", "keys.txt"],
        &["orders", "show", "S1"],
        &["backup", "copy.redb"],
        &["replay", "/dev/null"],
        &["run"],
    ] {
        let out = bin(&cfg, args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(
            err.contains("已损坏") && err.contains("restore a backup") && err.contains("shop.redb"),
            "{args:?}: {err}"
        );
    }
    assert!(
        std::fs::read(state.join("shop.redb")).unwrap() == bytes,
        "nothing written"
    );
    assert!(
        !cfg.join("copy.redb").exists(),
        "no backup of a damaged store"
    );
}

/// The real binary with its file-size limit set to `max_bytes` (`ulimit -f`, SIGXFSZ ignored):
/// every write past that size fails with EFBIG, the same way a full disk fails a write. Needs no
/// root, unlike a small mount.
fn bin_with_file_limit(config: &Path, max_bytes: u64, args: &[&str]) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "trap '' XFSZ; ulimit -f {}; exec \"$0\" \"$@\"",
            max_bytes / 512
        ))
        .arg(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(config)
        .args(args)
        .current_dir(config)
        .env("TEST_COOKIES", "unb=1; cookie2=x")
        .output()
        .unwrap()
}

/// `dir/cfg` holding a shop that delivers at once.
fn config_dir(dir: &std::path::Path) -> std::path::PathBuf {
    let cfg = dir.join("cfg");
    std::fs::create_dir_all(&cfg).unwrap();
    write_config(
        &cfg,
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    cfg
}

#[test]
fn a_full_disk_stops_replay_with_one_message_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_dir(dir.path());
    // Enough events to outgrow the file limit below with compact records (schema 3).
    const EVENTS: usize = 1500;
    let events: String = (0..EVENTS)
        .map(|i| format!("{{\"account\":\"main\",\"order_id\":\"F{i:05}\",\"status\":\"pending_payment\",\"item_id\":\"{STOCK_ITEM}\",\"buyer_id\":\"b{i}\",\"cid\":\"c{i}\"}}\n"))
        .collect();
    std::fs::write(cfg.join("events.jsonl"), events).unwrap();
    let state = cfg.join("state");
    let state_arg = state.to_str().unwrap();
    let args = [
        "--state-dir",
        state_arg,
        "--init",
        "replay",
        "--no-wait",
        "events.jsonl",
    ];

    let first = bin_with_file_limit(&cfg, 512 << 10, &args);
    let err = stderr(&first);
    assert_eq!(first.status.code(), Some(1), "{err}");
    let naming: Vec<&str> = err.lines().filter(|l| l.contains(state_arg)).collect();
    assert!(
        !naming.is_empty() && naming.len() <= 2 && err.lines().count() <= 2,
        "one message (the log line and the error), not one per event:\n{err}"
    );
    assert!(err.contains("无法写入"), "{err}");
    eprintln!("the full-disk message:\n{err}");
    let done = String::from_utf8_lossy(&first.stdout).lines().count();
    assert!(
        done > 0 && done < EVENTS,
        "the disk was meant to fill up midway: {done}"
    );

    // Space again: the same file resumes, nothing is lost and nothing is ingested twice.
    let second = bin(&cfg, &args);
    assert!(second.status.success(), "{}", stderr(&second));
    let list = bin(&cfg, &["--state-dir", state_arg, "orders", "list"]);
    let listed = String::from_utf8_lossy(&list.stdout).into_owned();
    assert!(
        listed.contains(&format!("{EVENTS} order(s)")),
        "every event made it after the space came back: {}",
        listed.lines().last().unwrap_or("")
    );
}

#[test]
fn a_full_disk_pauses_the_store_and_work_resumes_once_there_is_space() {
    let dir = tempfile::tempdir().unwrap();
    let Some(disk) = Tmpfs::mount(&dir.path().join("disk"), "1m") else {
        return;
    };
    let state = disk.0.join("state");
    let store = Store::open(&state, clock::system()).unwrap();
    let batch = |n: usize| -> String {
        (0..200)
            .map(|i| format!("KEY-{n:04}-{i:04}-{}\n", "X".repeat(40)))
            .collect()
    };
    let mut imported = 0;
    let failure = loop {
        match store.import_cards("keys", &batch(imported), false, "test") {
            Ok(_) => imported += 1,
            Err(e) => break e,
        }
        assert!(imported < 10_000, "the tmpfs never filled up");
    };
    assert!(failure.is_unavailable(), "{failure}");
    assert!(failure.to_string().contains(state.to_str().unwrap()));
    // Paused: every access fails at once, without touching the disk.
    let started = Instant::now();
    for _ in 0..1000 {
        assert!(store.card_counts().unwrap_err().is_unavailable());
    }
    assert!(started.elapsed() < REOPEN_EVERY);

    disk.resize("32m");
    let deadline = Instant::now() + REOPEN_EVERY * 5;
    let counts = loop {
        match store.card_counts() {
            Ok(c) => break c,
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => panic!("the store did not come back: {e}"),
        }
    };
    assert_eq!(
        counts["keys"].by_state.values().sum::<u64>(),
        200 * imported as u64,
        "every committed batch is intact, the failed one left nothing"
    );
    store
        .import_cards("keys", &batch(imported), false, "test")
        .expect("writes resume");
}
