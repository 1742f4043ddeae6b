//! Issue 10 D5: keys leaked past the masking. The stored and shown delivery text used to be the
//! buyer's message with each literal key replaced, so `{{ k | lower }}`, a URL-encoded `code=`
//! link or `{{ k[:6] }}{{ k[6:] }}` put the whole key on the status page, in `orders show`, in
//! `replay` output and in the stored record.
//!
//! A property test: random transforms of the keys (case, replace, slices, urlencode,
//! concatenation) in the delivery template; one real order through the pipeline; then every
//! page and API answer of the status server, `orders show`, `orders list`, `replay --dry-run`,
//! the stored record and every log line (captured at TRACE) must not hold a key, nor any
//! 8-character run of one, in any letter case, also after percent-decoding.

mod support;

use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};
use support::{CARD_ITEM, Harness, pipeline_yaml, products_yaml};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use xianyu_shopd::event::EventStatus;
use xianyu_shopd::status::logs::LogBuffer;
use xianyu_shopd::status::{self, StatusContext};
use xianyu_shopd::store::DeliveryState;

/// The test's own leak detector (deliberately not the crate's): a whole key or any 8-character
/// run of one, case-insensitively, in the text as is or percent-decoded.
fn leaked(what: &str, text: &str, keys: &[String]) -> Option<String> {
    let plain = text.to_lowercase();
    let decoded = percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .to_lowercase();
    for key in keys {
        let key: Vec<char> = key.to_lowercase().chars().collect();
        for w in key.windows(8.min(key.len())) {
            let piece: String = w.iter().collect();
            if plain.contains(&piece) || decoded.contains(&piece) {
                return Some(format!("{what} shows `{piece}` of a key:\n{text}"));
            }
        }
    }
    None
}

/// Everything the daemon logs at TRACE, in every test of this binary.
fn captured_logs() -> (&'static Mutex<Vec<u8>>, &'static LogBuffer) {
    static SINK: OnceLock<(&'static Mutex<Vec<u8>>, &'static LogBuffer)> = OnceLock::new();
    *SINK.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        use tracing_subscriber::util::SubscriberInitExt;
        let bytes: &'static Mutex<Vec<u8>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        let buffer: &'static LogBuffer = Box::leak(Box::new(LogBuffer::new(500)));
        let writer = move || Sink(bytes);
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::TRACE)
            .with(buffer.layer())
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .init();
        (bytes, buffer)
    })
}

struct Sink(&'static Mutex<Vec<u8>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One use of the loop variable `k`: a slice, then filters, maybe joined to text.
fn piece() -> impl Strategy<Value = String> {
    let slice = prop_oneof![
        Just(String::new()),
        (0usize..12).prop_map(|n| format!("[:{n}]")),
        (0usize..12).prop_map(|n| format!("[{n}:]")),
        (0usize..6, 6usize..20).prop_map(|(a, b)| format!("[{a}:{b}]")),
        (1usize..8).prop_map(|n| format!("[-{n}:]")),
    ];
    let filter = prop_oneof![
        Just("|lower"),
        Just("|upper"),
        Just("|urlencode"),
        Just("|replace('-', '')"),
        Just("|replace('a', 'A')"),
        Just("|trim"),
        Just("|string"),
    ];
    let joined = prop_oneof![
        Just(("", "")),
        Just(("'code=' ~ ", "")),
        Just(("", " ~ '&x=1'")),
        Just(("(k ~ ", ")")),
    ];
    (slice, prop::collection::vec(filter, 0..3), joined).prop_map(|(s, fs, (pre, post))| {
        // `(k ~ X)` concatenates the key with the slice of itself.
        let expr = if pre == "(k ~ " {
            format!("(k ~ k{s})")
        } else {
            format!("{pre}k{s}{post}")
        };
        format!("{{{{ ({expr}){} }}}}", fs.concat())
    })
}

/// A delivery template: the first use shows the whole key (so the buyer's message always holds
/// it, which the test checks), then up to three random pieces glued by random separators.
fn template() -> impl Strategy<Value = String> {
    let whole = prop_oneof![
        Just("{{ k }}"),
        Just("{{ k|lower }}"),
        Just("{{ k|upper }}"),
        Just("https://example.com/r?code={{ k|urlencode }}"),
        Just("{{ k[:6] }}{{ k[6:] }}"),
    ];
    let sep = prop_oneof![Just(""), Just(" "), Just("\n"), Just("，")];
    (whole, prop::collection::vec((sep, piece()), 0..4)).prop_map(|(whole, rest)| {
        let rest: String = rest.into_iter().map(|(s, p)| format!("{s}{p}")).collect();
        format!("感谢购买{{{{ order.item_title }}}}\n{{% for k in cards %}}卡密：{whole}{rest}\n{{% endfor %}}")
    })
}

fn keys() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[A-Za-z0-9]{4}(-[A-Za-z0-9]{4}){1,4}|[0-9a-z]{8,32}", 2..=6).prop_map(
        |mut keys| {
            keys.sort();
            keys.dedup();
            keys
        },
    )
}

fn cli(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir)
        .args(args)
        .current_dir(dir)
        .env("TEST_COOKIES", "unused=1")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

async fn one_order(template: &str, keys: &[String]) {
    let (log_bytes, log_buffer) = captured_logs();
    let h = Harness::with_templates(
        &pipeline_yaml("{ min: 0s, max: 0s }", "{ mode: send_then_confirm }"),
        &products_yaml("send_then_confirm"),
        &[("card.txt.j2", template)],
    );
    let d = h.dir.path();
    // Half the keys for the live order, half left for `replay` (same order of import).
    let units = keys.len() / 2;
    h.store
        .import_cards("keys", &keys.join("\n"), false, "test")
        .unwrap();
    let mut ev = support::event("D5-1", EventStatus::Paid, CARD_ITEM);
    ev.quantity = units as u32;
    h.ingest(ev).await;
    h.settle().await;
    let delivery = h.store.delivery("D5-1").unwrap().unwrap();
    assert_eq!(delivery.state, DeliveryState::Delivered, "{template}");
    let sent = &h.market.sent()[0].text;
    assert!(
        leaked("the buyer's message", sent, keys).is_some(),
        "the buyer must get the keys (else this case proves nothing): {sent}"
    );

    let mut seen = vec![
        (
            "stored order".to_string(),
            format!("{:?}", h.store.order_detail("D5-1").unwrap()),
        ),
        ("delivery".to_string(), format!("{delivery:?}")),
    ];
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx =
        StatusContext::new(h.store.clone(), h.shop.config.clone()).with_logs(log_buffer.clone());
    let stop = CancellationToken::new();
    let server = tokio::spawn(status::serve(listener, ctx, stop.clone()));
    for path in [
        "/",
        "/orders",
        "/orders/D5-1",
        "/logs",
        "/api/status",
        "/api/orders",
        "/api/orders/D5-1",
        "/api/logs",
        "/metrics",
    ] {
        let url = format!("http://{addr}{path}");
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        seen.push((path.to_string(), body));
    }
    stop.cancel();
    let _ = server.await;

    let events = format!(
        "{{\"account\":\"main\",\"order_id\":\"D5-2\",\"status\":\"paid\",\"item_id\":\"{CARD_ITEM}\",\"cid\":\"c2\",\"buyer_id\":\"b2\",\"quantity\":{}}}\n",
        keys.len() - units
    );
    std::fs::write(d.join("events.jsonl"), events).unwrap();
    let replay = cli(d, &["replay", "--dry-run", "events.jsonl"]);
    assert!(replay.contains("send    order=D5-2"), "{replay}");
    seen.push(("replay --dry-run".into(), replay));
    seen.push(("orders show".into(), cli(d, &["orders", "show", "D5-1"])));
    seen.push(("orders list".into(), cli(d, &["orders", "list"])));
    seen.push((
        "logs".into(),
        String::from_utf8_lossy(&std::mem::take(&mut *log_bytes.lock().unwrap())).into_owned(),
    ));
    for (what, text) in &seen {
        if let Some(leak) = leaked(what, text, keys) {
            panic!("template {template:?}: {leak}");
        }
    }
}

#[test]
fn no_transform_of_a_key_in_a_template_reaches_a_page_the_cli_a_record_or_a_log() {
    captured_logs();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 24,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    runner
        .run(&(template(), keys()), |(template, keys)| {
            rt.block_on(one_order(&template, &keys));
            Ok(())
        })
        .unwrap();
}

/// The cases the issue names, one by one, so a failure reads plainly.
#[test]
fn the_reported_templates_are_masked_everywhere() {
    let keys: Vec<String> = ["AbCd-1234-WxYz-5678", "Qr7s-T8uv-9WxY-zAb0"]
        .map(String::from)
        .to_vec();
    let rt = tokio::runtime::Runtime::new().unwrap();
    for t in [
        "{% for k in cards %}{{ k | lower }}{% endfor %}",
        "{% for k in cards %}https://example.com/redeem?code={{ k | urlencode }}{% endfor %}",
        "{% for k in cards %}{{ k[:6] }} {{ k[6:] }}{% endfor %}",
    ] {
        rt.block_on(one_order(t, &keys));
    }
}

#[test]
fn masking_shows_at_most_a_quarter_of_a_key() {
    use xianyu_shopd::store::mask_secret;
    // An 8-digit PIN used to show half of itself (`12****78`).
    assert_eq!(mask_secret("12345678"), "1******8");
    assert_eq!(mask_secret("1234567"), "*******");
    assert_eq!(mask_secret("ABCD-1234-WXYZ"), "A************Z");
    for key in [
        "12345678",
        "KEY-0001-SECRET",
        &"x".repeat(64),
        "密钥密钥密钥密钥",
    ] {
        let shown = mask_secret(key).chars().filter(|c| *c != '*').count();
        assert!(shown * 4 <= key.chars().count(), "{key}: {shown} shown");
        assert_eq!(mask_secret(key).chars().count(), key.chars().count());
    }
}
