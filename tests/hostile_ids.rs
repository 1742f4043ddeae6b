//! Issue 10 D18: control characters in ids. An `order_id` with a newline used to forge a
//! `send order=` line in `replay` output and in `orders list`; NUL and RTL overrides reached
//! the terminal; an empty `order_id` was accepted. The real binary, as a seller runs it.

mod support;

use std::path::Path;
use std::process::Output;

use support::{CARD_ITEM, pipeline_yaml, products_yaml, shopd, write_config};
use xianyu_shopd::clock;
use xianyu_shopd::event::{EventStatus, OrderEvent};
use xianyu_shopd::store::{NextRun, Store};

fn run(dir: &Path, args: &[&str]) -> Output {
    shopd(dir)
        .args(args)
        .env("TEST_COOKIES", "unused=1")
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Nothing a terminal would obey: no control character but the line breaks, no bidi override.
fn assert_printable(what: &str, out: &str) {
    for c in out.chars() {
        assert!(
            c == '\n' || !xianyu_shopd::event::is_unprintable(c),
            "{what} printed U+{:04X}:\n{out}",
            u32::from(c)
        );
    }
}

fn config(d: &Path) {
    write_config(
        d,
        &pipeline_yaml("{ min: 0s, max: 0s }", "{ mode: send_then_confirm }"),
        &products_yaml("send_then_confirm"),
    );
    std::fs::write(d.join("keys.txt"), "KEY-0001-SECRET\nKEY-0002-SECRET\n").unwrap();
    assert!(
        run(d, &["cards", "import", "keys", "keys.txt"])
            .status
            .success()
    );
}

fn line(order_id: &str) -> String {
    serde_json::json!({
        "account": "main", "order_id": order_id, "status": "paid",
        "item_id": CARD_ITEM, "cid": "c1", "buyer_id": "b1", "buyer_nick": "小\u{202E}明",
    })
    .to_string()
}

#[test]
fn replay_refuses_ids_with_control_characters_and_empty_ids_one_by_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let forged = "F1 paid: (new) → 等待卖家发货\nsend    order=F2";
    let events = [
        line(forged),
        line("N1\0"),
        line("\u{202E}1R"),
        line(""),
        line("GOOD-1"),
    ]
    .join("\n");
    std::fs::write(d.join("events.jsonl"), events).unwrap();
    for args in [
        &["replay", "--dry-run", "events.jsonl"][..],
        &["replay", "events.jsonl"],
    ] {
        let out = run(d, args);
        let (stdout, stderr) = text(&out);
        assert!(!out.status.success(), "bad lines make the exit code fail");
        assert_printable("replay", &stdout);
        assert_printable("replay", &stderr);
        assert!(
            !stdout.lines().any(|l| l.starts_with("send    order=F2")),
            "a forged line:\n{stdout}"
        );
        for (n, code) in [(1, "U+000A"), (2, "U+0000"), (3, "U+202E")] {
            assert!(
                stderr.contains(&format!("line {n}: event refused: `order_id` contains"))
                    && stderr.contains(code),
                "{stderr}"
            );
        }
        assert!(
            stderr.contains("line 4: event refused: `order_id` is empty"),
            "{stderr}"
        );
        // The good event on the same file is served.
        assert!(stdout.contains("send    order=GOOD-1"), "{stdout}");
    }
    let (list, _) = text(&run(d, &["orders", "list"]));
    assert!(
        list.contains("1 order(s)"),
        "only the good order is stored:\n{list}"
    );
    let (show, _) = text(&run(d, &["orders", "show", "GOOD-1"]));
    assert!(
        show.contains("小\u{FFFD}明"),
        "the nickname is kept, cleaned:\n{show}"
    );
}

/// A store written before ids were checked can hold such an id; every CLI output escapes it.
#[test]
fn every_cli_output_escapes_what_an_older_store_holds() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    config(d);
    let forged = "OLD-1\nOLD-2      main     900000000001   等待卖家发货";
    {
        let store = Store::open(&d.join("state"), clock::system()).unwrap();
        let mut ev = OrderEvent::new("main", forged, EventStatus::PendingPayment);
        ev.item_id = Some("\u{202E}1000".into());
        ev.buyer_nick = Some("nick\u{1b}[2J".into());
        let start = NextRun {
            stage: 1,
            stage_name: "classify".into(),
            config_version: "old".into(),
        };
        store.ingest(&ev, &start).unwrap();
    }
    let list = run(d, &["orders", "list"]);
    let (stdout, _) = text(&list);
    assert_printable("orders list", &stdout);
    assert!(
        stdout.contains("OLD-1\\u{000a}OLD-2") && stdout.contains("\\u{202e}1000"),
        "{stdout}"
    );
    assert_eq!(
        stdout.lines().count(),
        3,
        "header, one row, count:\n{stdout}"
    );
    let show = run(d, &["orders", "show", forged]);
    let (stdout, stderr) = text(&show);
    assert!(show.status.success(), "{stderr}");
    assert_printable("orders show", &stdout);
    assert!(stdout.contains("nick\\u{001b}[2J"), "{stdout}");
    let missing = run(d, &["orders", "show", "X\u{202E}Y"]);
    let (_, stderr) = text(&missing);
    assert_printable("orders show (missing)", &stderr);
    let cards = run(d, &["cards", "list"]);
    assert_printable("cards list", &text(&cards).0);
}
