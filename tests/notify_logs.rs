//! Captured logs never contain a configured secret value: every log line of a run that
//! succeeds, meets vendor errors that echo details (WeCom's caller IP, Aliyun's
//! string-to-sign), misses a secret and fails to connect is checked, down to TRACE and for
//! every crate (reqwest, hyper, rustls included), as are the errors kept in the store.
//!
//! Alone in its own test binary so the process-wide subscriber sees every thread.

#[path = "support/notify_fakes.rs"]
mod notify_fakes;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify_fakes::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_contain_a_secret() {
    let buf = Arc::new(Mutex::new(Vec::<u8>::new()));
    let writer = buf.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("trace"))
        .with_ansi(false)
        .with_writer(move || LogSink(writer.clone()))
        .init();

    let wecom = Fake::start(Wecom::new("wecom-key-7f3a9c")).await;
    let ding = Fake::start(Dingtalk::new(
        "ding-token-55aa",
        Some("SECding-secret-1234"),
        None,
    ))
    .await;
    let sms = Fake::start(Aliyun::new("LTAI-ak-id-8877", "aliyun-secret-6655")).await;
    let secrets = [
        (
            "wecom-url",
            wecom.url("/cgi-bin/webhook/send?key=wecom-key-7f3a9c"),
        ),
        (
            "wecom-bad",
            wecom.url("/cgi-bin/webhook/send?key=wrong-key-31337"),
        ),
        (
            "ding-url",
            ding.url("/robot/send?access_token=ding-token-55aa"),
        ),
        ("ding-secret", "SECding-secret-1234".to_string()),
        ("ak", "LTAI-ak-id-8877".to_string()),
        ("sk", "aliyun-secret-6655".to_string()),
        ("sk-bad", "wrong-aliyun-secret-42".to_string()),
        (
            "dead",
            "http://127.0.0.1:9/hook?token=dead-token-2718".to_string(),
        ),
    ];
    let channels = format!(
        "{WECOM}  wecom-bad:\n    type: wecom\n    url_file: state/wecom-bad\n  ding:\n    type: dingtalk\n    url_file: state/ding-url\n    secret_file: state/ding-secret\n  sms:\n    type: aliyun_sms\n    endpoint: {ep}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk\n    sign_name: 闲鱼小店\n    template_code: SMS_1\n    phone_numbers: [13800138000]\n  sms-bad:\n    type: aliyun_sms\n    endpoint: {ep}\n    access_key_id_file: state/ak\n    access_key_secret_file: state/sk-bad\n    sign_name: 闲鱼小店\n    template_code: SMS_1\n    phone_numbers: [13800138000]\n  dead:\n    type: webhook\n    url_file: state/dead\n  unset:\n    type: telegram\n    token_env: NOTIFY_TEST_UNSET_TOKEN\n    chat_id: 1\n",
        ep = sms.url("")
    );
    let secret_refs: Vec<(&str, &str)> = secrets.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = rig(
        &channels,
        "{ channels: [wecom, wecom-bad, ding, sms, sms-bad, dead, unset], fallback: [log] }",
        &secret_refs,
    );
    r.raise(&xianyu_shopd::alert::Alert::sample(
        xianyu_shopd::alert::EventKind::ManualShip,
    ));
    r.drain().await;
    r.advance(Duration::from_secs(600));
    r.drain().await;

    let logs = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Notification sent.") && logs.contains("Notification failed."),
        "logs captured:\n{logs}"
    );
    let mut stored = String::new();
    for row in r.rows() {
        stored.push_str(&format!("{:?}\n", row.last_error));
    }
    for secret in [
        "wecom-key-7f3a9c",
        "wrong-key-31337",
        "ding-token-55aa",
        "SECding-secret-1234",
        "LTAI-ak-id-8877",
        "aliyun-secret-6655",
        "wrong-aliyun-secret-42",
        "dead-token-2718",
        "203.0.113.9",
    ] {
        assert!(!logs.contains(secret), "log leaks {secret}:\n{logs}");
        assert!(
            !stored.contains(secret),
            "stored error leaks {secret}:\n{stored}"
        );
    }
}

#[derive(Clone)]
struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
