//! E-mail against a real SMTP server process: Debian's python3-aiosmtpd (installed by .ci/run),
//! started by the test with its Maildir handler. The received mail is parsed by Python's own
//! `email` package, independently of lettre: subject, body and UTF-8 must survive.
//!
//! Skips (saying so in the test summary) only when no Python with aiosmtpd is installed, and
//! fails instead when `CI` is set.

#[path = "support/notify_fakes.rs"]
mod notify_fakes;
mod skip;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify_fakes::*;
use tokio::sync::Notify;
use xianyu_shopd::alert::{Alert, EventKind};
use xianyu_shopd::channels::{Notification, SendResult, build_channel};
use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::config;
use xianyu_shopd::notify::Router;
use xianyu_shopd::notify::dispatcher::Dispatcher;
use xianyu_shopd::store::{OutboxState, Store};

/// A running `python3 -m aiosmtpd`, killed on drop.
struct Smtp {
    child: Child,
    port: u16,
    maildir: tempfile::TempDir,
    python: String,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python_with_aiosmtpd() -> Option<String> {
    let candidates = [
        std::env::var("AIOSMTPD_PYTHON").ok(),
        Some("python3".into()),
        Some("/usr/bin/python3".into()),
    ];
    candidates.into_iter().flatten().find(|py| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn start_smtp() -> Option<Smtp> {
    let Some(python) = python_with_aiosmtpd() else {
        skip::skip_or_fail(
            "tests/notify_email.rs",
            "no python3 with aiosmtpd (apt-get install python3-aiosmtpd; .ci/run installs it)",
        );
        return None;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let maildir = tempfile::tempdir().unwrap();
    let child = Command::new(&python)
        .args([
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Mailbox",
        ])
        .arg(maildir.path().join("box"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start aiosmtpd");
    let smtp = Smtp {
        child,
        port,
        maildir,
        python,
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not start listening"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(smtp)
}

impl Smtp {
    fn messages(&self) -> Vec<PathBuf> {
        let dir = self.maildir.path().join("box").join("new");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    }

    /// Subject, body and charset as Python's email parser decodes them.
    fn parse(&self, path: &Path) -> serde_json::Value {
        let script = "import email, email.policy, json, sys\nm = email.message_from_bytes(open(sys.argv[1], 'rb').read(), policy=email.policy.default)\nprint(json.dumps({'subject': str(m['subject']), 'from': str(m['from']), 'to': str(m['to']), 'body': m.get_content(), 'type': m.get_content_type(), 'charset': m.get_content_charset()}))";
        let out = Command::new(&self.python)
            .args(["-c", script])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn channel_yaml(&self, name: &str) -> String {
        format!(
            "  {name}:\n    type: email\n    host: 127.0.0.1\n    port: {}\n    tls: none\n    from: 闲鱼小店 <shop@example.com>\n    to: [owner@example.com]\n    timeout: 10s\n",
            self.port
        )
    }
}

#[tokio::test]
async fn manual_ship_mail_arrives_with_subject_body_and_utf8() {
    let Some(smtp) = start_smtp() else { return };
    let (_d, cfg) = config_dir(&smtp.channel_yaml("mail"), "{ channels: [mail] }", &[]);
    let http = reqwest::Client::new();
    let ch = build_channel(&cfg.channels["mail"], &http).unwrap();
    let n = Notification::sample(EventKind::ManualShip, cfg.notify(), 1, now_ms());
    assert_eq!(ch.send(&n).await, SendResult::Accepted);

    let files = smtp.messages();
    assert_eq!(files.len(), 1);
    let mail = smtp.parse(&files[0]);
    assert_eq!(mail["subject"], "【测试】【待人工发货】");
    assert_eq!(mail["to"], "owner@example.com");
    assert!(mail["from"].as_str().unwrap().contains("shop@example.com"));
    assert_eq!(mail["type"], "text/plain");
    assert_eq!(mail["charset"], "utf-8");
    let body = mail["body"].as_str().unwrap();
    for needle in [
        "账号：主店 (main)",
        "订单号：3000000000000000001",
        "规格：专业版",
        "金额：¥19.80",
        "买家：买家昵称",
        "发货截止(参考)：2026-01-03 12:00:00",
        "处理建议：",
    ] {
        assert!(body.contains(needle), "{needle} missing:\n{body}");
    }
}

/// The seed's fallback rule end to end: WeCom (key revoked) and SMS (daily quota) both fail,
/// so the alert goes out by e-mail, once.
#[tokio::test]
async fn wecom_and_sms_fail_so_email_goes() {
    let Some(smtp) = start_smtp() else { return };
    let wecom = Fake::start(Wecom::new("RIGHT")).await;
    let mut quota = Aliyun::new("AK", "SK");
    quota.daily_limit = 0;
    let sms = Fake::start(quota).await;
    let channels = format!(
        "  wecom:\n    type: wecom\n    url_file: state/wecom\n  sms:\n    type: aliyun_sms\n    endpoint: {}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk\n    sign_name: 闲鱼小店\n    template_code: SMS_1\n    phone_numbers: [13800138000]\n{}",
        sms.url(""),
        smtp.channel_yaml("email")
    );
    let (_d, cfg) = config_dir(
        &channels,
        "{ channels: [wecom, sms], fallback: [email] }",
        &[
            ("wecom", &wecom.url("/cgi-bin/webhook/send?key=REVOKED")),
            ("ak", "AK"),
            ("sk", "SK"),
        ],
    );
    let store = Store::in_memory(Arc::new(ManualClock::new(now_ms()))).unwrap();
    let mut alert = Alert::sample(EventKind::ManualShip);
    alert.order_id = Some("E-42".into());
    alert.facts[0].1 = "E-42".into();
    store
        .enqueue_notifications(&Router::new(cfg.notify()).drafts(&alert))
        .unwrap();
    let dispatcher = Dispatcher::new(
        store.clone(),
        config::handle(cfg.clone()),
        Arc::new(Notify::new()),
    );
    dispatcher.drain_due().await.unwrap();

    let rows = store.notifications(10).unwrap();
    let email = rows
        .iter()
        .find(|r| r.channel == "email")
        .expect("a fallback row");
    assert_eq!(email.state, OutboxState::Sent);
    assert_eq!(rows.len(), 3);
    let files = smtp.messages();
    assert_eq!(files.len(), 1);
    let mail = smtp.parse(&files[0]);
    assert_eq!(mail["subject"], "【待人工发货】");
    assert!(mail["body"].as_str().unwrap().contains("订单号：E-42"));
}

/// A refused connection is retryable (the server may come back), never permanent.
#[tokio::test]
async fn an_unreachable_server_is_retryable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let yaml = format!(
        "  mail:\n    type: email\n    host: 127.0.0.1\n    port: {port}\n    tls: none\n    from: shop@example.com\n    to: [owner@example.com]\n    timeout: 3s\n"
    );
    let (_d, cfg) = config_dir(&yaml, "{ channels: [mail] }", &[]);
    let ch = build_channel(&cfg.channels["mail"], &reqwest::Client::new()).unwrap();
    let n = Notification::sample(EventKind::ManualShip, cfg.notify(), 1, now_ms());
    assert!(matches!(ch.send(&n).await, SendResult::Retryable { .. }));
}
