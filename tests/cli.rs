//! The real binary, as a seller uses it: check, replay (with and without --dry-run), cards,
//! orders and backup against a copy of the shipped example config.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::shopd;

fn copy_example(to: &Path) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in ["pipeline.yaml", "products.yaml"] {
        std::fs::copy(root.join(f), to.join(f)).unwrap();
    }
    copy_dir(&root.join("templates"), &to.join("templates"));
    for f in ["example-events.jsonl", "example-cards.txt"] {
        std::fs::copy(root.join("tests/data").join(f), to.join(f)).unwrap();
    }
}

/// `templates/` has subdirectories (`notify/`).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let p = entry.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, dest).unwrap();
        }
    }
}

fn run(dir: &Path, args: &[&str]) -> Output {
    shopd(dir).args(args).output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_sellers_first_session() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    copy_example(d);

    let dry = run(d, &["replay", "example-events.jsonl", "--dry-run"]);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        stdout(&dry).contains("send    order=3001"),
        "{}",
        stdout(&dry)
    );
    assert!(stdout(&dry).contains("notify  manual_ship"));
    assert!(
        !d.join("state/shop.redb").exists(),
        "a dry run writes nothing"
    );

    let import = run(d, &["cards", "import", "office-2021", "example-cards.txt"]);
    assert!(
        stdout(&import).contains("3 added, 1 skipped"),
        "{}",
        stdout(&import)
    );
    let bad_pool = run(d, &["cards", "import", "no-such-pool", "example-cards.txt"]);
    assert!(!bad_pool.status.success());
    assert!(String::from_utf8_lossy(&bad_pool.stderr).contains("not declared"));

    let replay = run(d, &["replay", "example-events.jsonl"]);
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let out = stdout(&replay);
    assert!(
        out.contains("send    order=3002"),
        "the office key is delivered once imported:\n{out}"
    );
    assert!(out.contains("confirm order=3002"));
    assert!(out.contains("duplicate, ignored"));

    let listed_before = stdout(&run(d, &["orders", "list"]));
    let again = run(d, &["replay", "example-events.jsonl"]);
    assert_eq!(
        stdout(&run(d, &["orders", "list"])),
        listed_before,
        "replaying the same events changes no order, not even its updated time"
    );
    // Chinese status labels take two terminal columns each: every row still ends at the same
    // column, because the table pads by display width (the last column is a fixed-width time).
    let row_widths: Vec<usize> = listed_before
        .lines()
        .filter(|l| l.ends_with(|c: char| c.is_ascii_digit()) && !l.contains("order(s)"))
        .map(unicode_width::UnicodeWidthStr::width)
        .collect();
    assert!(row_widths.len() >= 4, "{listed_before}");
    assert!(
        row_widths.iter().all(|w| *w == row_widths[0]),
        "columns do not line up:\n{listed_before}"
    );
    assert!(
        !stdout(&again).contains("send    order="),
        "replaying the same day sends nothing again"
    );

    let cards = stdout(&run(d, &["cards", "list"]));
    assert!(
        cards.lines().any(|l| l.starts_with("office-2021")
            && l.split_whitespace().collect::<Vec<_>>()[1..] == ["2", "0", "1", "0"]),
        "{cards}"
    );
    assert!(!cards.contains("OFFICE-DEMO"), "keys are never listed");

    let show = stdout(&run(d, &["orders", "show", "3002"]));
    assert!(show.contains("发货记录: delivered"), "{show}");
    assert!(
        !show.contains("OFFICE-DEMO-AAAA-1111"),
        "keys are masked: {show}"
    );

    let paid = stdout(&run(d, &["orders", "list", "--status", "paid"]));
    assert!(
        paid.contains("3003") && paid.contains("3005") && !paid.contains("3002"),
        "{paid}"
    );
    let ship = run(
        d,
        &[
            "orders",
            "ship",
            "3003",
            "--company",
            "顺丰快递",
            "--tracking",
            "SF1234567890",
        ],
    );
    assert!(
        ship.status.success(),
        "{}",
        String::from_utf8_lossy(&ship.stderr)
    );
    assert!(stdout(&run(d, &["orders", "show", "3003"])).contains("SF1234567890"));
    let retry = run(d, &["orders", "retry", "3002"]);
    assert!(
        !retry.status.success(),
        "a delivered order cannot be retried"
    );

    let backup = run(d, &["backup", "copy.redb"]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let copy =
        xianyu_shopd::store::Store::open(&d.join("copy-state"), xianyu_shopd::clock::system())
            .unwrap();
    drop(copy);
    std::fs::rename(d.join("copy.redb"), d.join("copy-state/shop.redb")).unwrap();
    let copy =
        xianyu_shopd::store::Store::open(&d.join("copy-state"), xianyu_shopd::clock::system())
            .unwrap();
    assert_eq!(
        copy.list_orders(None).unwrap().len(),
        5,
        "the backup holds every order"
    );
}

#[test]
fn run_refuses_to_start_without_the_account_cookies() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    // The example reads a cookie file (missing is waited for); an unset variable refuses to start.
    let pipeline = std::fs::read_to_string(dir.path().join("pipeline.yaml")).unwrap();
    let pipeline = pipeline.replacen(
        "cookies_file: state/cookies-main.txt",
        "cookies_env: XIANYU_COOKIES",
        1,
    );
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir.path())
        .arg("run")
        .env_remove("XIANYU_COOKIES")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("XIANYU_COOKIES") && stderr.contains("cookies_file"),
        "{stderr}"
    );
}

#[test]
fn run_refuses_to_start_when_the_status_token_file_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let pipeline = std::fs::read_to_string(dir.path().join("pipeline.yaml")).unwrap();
    let pipeline = pipeline.replacen(
        "listen: 127.0.0.1:8080",
        "listen: 127.0.0.1:0\n  token_file: state/no-such-token",
        1,
    );
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir.path())
        .arg("run")
        .env("XIANYU_COOKIES", "unb=1; cookie2=x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status page cannot start"), "{stderr}");
}

#[test]
fn a_mistyped_state_dir_is_refused_unless_init_creates_it() {
    let dir = tempfile::tempdir().unwrap();
    copy_example(dir.path());
    let typo = dir.path().join("stat");
    let list = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
            .arg("--config-dir")
            .arg(dir.path())
            .arg("--state-dir")
            .arg(&typo)
            .args(extra)
            .args(["orders", "list"])
            .output()
            .unwrap()
    };
    let refused = list(&[]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("不存在") && stderr.contains("--init"),
        "{stderr}"
    );
    assert!(!typo.exists(), "nothing is created without --init");

    let created = list(&["--init"]);
    assert!(
        created.status.success(),
        "{}",
        String::from_utf8_lossy(&created.stderr)
    );
    assert!(typo.is_dir());
    assert!(
        list(&[]).status.success(),
        "an existing directory needs no --init"
    );
}
