//! Issue 10 D3: backups that fail silently, and an empty store file taken for a new shop.
//!
//! A `backup` that ran out of space left a file that opened as a valid, *empty* store (and a
//! second backup then refused "already exists"); a 0-byte `shop.redb` was accepted as a new
//! store by every command, `run` included. The real binary, as a seller runs it.

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use support::tmpfs::Tmpfs;
use support::{pipeline_yaml, products_yaml, shopd, write_config};
use xianyu_shopd::clock;
use xianyu_shopd::store::{CardState, Store};

const KEYS: usize = 3_000;

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = shopd(dir);
    cmd.args(args).env("TEST_COOKIES", "unused=1");
    cmd
}

fn run(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A shop with [`KEYS`] keys imported (a store of a few hundred KB).
fn shop() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_config(
        d,
        &pipeline_yaml("{ min: 0s, max: 0s }", "{ mode: send_then_confirm }"),
        &products_yaml("send_then_confirm"),
    );
    let keys: String = (0..KEYS).map(|i| format!("KEY-{i:05}-SECRET\n")).collect();
    std::fs::write(d.join("keys.txt"), keys).unwrap();
    let import = run(d, &["cards", "import", "keys", "keys.txt"]);
    assert!(import.status.success(), "{}", text(&import));
    dir
}

/// Files in `dir` whose name contains `part`.
fn files_named(dir: &Path, part: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.contains(part))
        .collect()
}

#[test]
fn a_backup_that_runs_out_of_space_leaves_nothing_and_the_next_one_is_verified() {
    let dir = shop();
    let d = dir.path();
    let store_len = std::fs::metadata(d.join("state/shop.redb")).unwrap().len();
    assert!(store_len > 256 * 1024, "store of {store_len} bytes");
    // The nightly backup goes to a disk with 128 KiB free: "No space left on device".
    let Some(disk) = Tmpfs::mount(&d.join("backups"), "128k") else {
        return;
    };
    let full = run(d, &["backup", "backups/nightly.redb"]);
    assert!(!full.status.success(), "{}", text(&full));
    assert!(
        text(&full).contains("备份失败，没有留下任何文件"),
        "{}",
        text(&full)
    );
    assert!(text(&full).contains("No space left"), "{}", text(&full));
    // Before the fix `nightly.redb` stayed behind, opened as an empty store, and the next
    // backup to the same name refused "already exists".
    assert_eq!(files_named(&disk.0, ""), Vec::<String>::new());
    drop(disk);

    let ok = run(d, &["backup", "nightly.redb"]);
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(text(&ok).contains("已逐表核对"), "{}", text(&ok));
    assert_eq!(files_named(d, "nightly"), vec!["nightly.redb".to_string()]);
    let again = run(d, &["backup", "nightly.redb"]);
    assert!(!again.status.success());
    assert!(text(&again).contains("已经存在"), "{}", text(&again));

    // Restore as the README says: the copy is a shop with every key.
    let restored = d.join("restored/state");
    std::fs::create_dir_all(&restored).unwrap();
    std::fs::copy(d.join("nightly.redb"), restored.join("shop.redb")).unwrap();
    let store = Store::open(&restored, clock::system()).unwrap();
    let counts = store.card_counts().unwrap();
    assert_eq!(counts["keys"].get(CardState::Available), KEYS as u64);
}

/// Waits for `cmd` (which must end by itself) for at most a minute.
fn finish(mut cmd: Command) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("the command did not stop: it took the empty store");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn an_empty_or_short_store_file_is_refused_by_every_command_with_the_way_back() {
    let dir = shop();
    let d = dir.path();
    std::fs::write(d.join("events.jsonl"), "").unwrap();
    for (content, says) in [
        (Vec::new(), "只有 0 字节"),
        (vec![7u8; 100], "只有 100 字节"),
    ] {
        std::fs::write(d.join("state/shop.redb"), &content).unwrap();
        for args in [
            &["run"][..],
            &["orders", "list"],
            &["orders", "show", "1"],
            &["cards", "list"],
            &["cards", "import", "keys", "keys.txt"],
            &["backup", "copy.redb"],
            &["replay", "events.jsonl"],
            &["replay", "--dry-run", "events.jsonl"],
        ] {
            let out = finish(command(d, args));
            let all = text(&out);
            assert!(!out.status.success(), "{args:?} accepted it:\n{all}");
            assert!(all.contains(says), "{args:?}:\n{all}");
            assert!(
                all.contains("请从备份恢复") && all.contains("xianyu-shopd backup"),
                "{args:?} says how to restore:\n{all}"
            );
            assert_eq!(
                std::fs::read(d.join("state/shop.redb")).unwrap(),
                content,
                "{args:?} left the file as it was"
            );
        }
        assert!(!d.join("copy.redb").exists());
    }
}
