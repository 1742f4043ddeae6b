//! `xianyu-shopd notify-test CHANNEL [--event E]`, the real binary against the WeCom fake:
//! it renders the event's template with sample data, sends it, prints the classified
//! outcome, and exits 0 only when the channel accepted the message.

#[path = "support/notify_fakes.rs"]
mod notify_fakes;

use std::path::Path;
use std::process::Output;

use notify_fakes::*;

fn notify_test(dir: &Path, args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir)
        .arg("notify-test")
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_prints_the_outcome_and_sets_the_exit_code() {
    let fake = Fake::start(Wecom::new("GOOD")).await;
    let channels = "  wecom:\n    type: wecom\n    url_file: state/good\n  wecom-revoked:\n    type: wecom\n    url_file: state/bad\n";
    let good = fake.url("/cgi-bin/webhook/send?key=GOOD");
    let bad = fake.url("/cgi-bin/webhook/send?key=REVOKED");
    let (dir, _cfg) = config_dir(
        channels,
        "{ channels: [wecom] }",
        &[("good", &good), ("bad", &bad)],
    );
    let d = dir.path().to_path_buf();

    let out = tokio::task::spawn_blocking(move || {
        (
            notify_test(&d, &["wecom"]),
            notify_test(&d, &["wecom", "--event", "login_expired"]),
            notify_test(&d, &["wecom-revoked"]),
            notify_test(&d, &["wecon"]),
            notify_test(&d, &["log", "--event", "low_stock"]),
            notify_test(&d, &["wecom", "--event", "nope"]),
        )
    })
    .await
    .unwrap();
    let (ok, login, revoked, typo, log, bad_event) = out;

    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("notify-test wecom (wecom) manual_ship: accepted"),
        "{}",
        text(&ok)
    );
    assert!(
        text(&ok).contains("订单号：3000000000000000001"),
        "the rendered sample is shown"
    );
    assert!(login.status.success());
    let received = fake.accepted();
    assert_eq!(received.len(), 2);
    assert!(
        received[1].json()["text"]["content"]
            .as_str()
            .unwrap()
            .contains("【测试】【登录失效】")
    );

    assert_eq!(revoked.status.code(), Some(1));
    assert!(
        text(&revoked).contains("permanent: errcode 93000: invalid webhook url"),
        "{}",
        text(&revoked)
    );
    assert!(
        !text(&revoked).contains("REVOKED"),
        "the key is not printed"
    );

    assert!(!typo.status.success());
    assert!(
        text(&typo).contains("did you mean `wecom`?"),
        "{}",
        text(&typo)
    );
    assert!(log.status.success(), "{}", text(&log));
    assert!(!bad_event.status.success());
    assert!(text(&bad_event).contains("unknown event `nope`"));
}
