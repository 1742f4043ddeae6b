//! Goofish client figures, measured in one run on loopback:
//!
//! 1. **Decode throughput** — payloads/s on one thread, for `BENCH_DECODE_SECS` (default 3)
//!    seconds each, of the golden captures A1 (the "order created" trade card,
//!    `tests/data/captures/a1-order-created.b64`) and A5 (a buyer's text,
//!    `a5-buyer-text.b64`): the daemon's path
//!    [`PushDecoder::decode`](xianyu_shopd::goofish::decode::PushDecoder::decode) (base64,
//!    MessagePack, the content JSON, classification into a `DecodedEvent`) and
//!    [`decode_payload`](xianyu_shopd::goofish::decode::decode_payload) (the same plus the
//!    payload as a JSON tree, as `decode --raw` shows it). Then the Python baseline
//!    `benches/python_msgpack.py --json` runs for as long (with `$PYTHON`, default `python3`,
//!    which needs PyPI `msgpack`; skipped with the script's message otherwise), and the ratio
//!    Rust daemon path / Python is printed.
//! 2. **Payment push → delivery chat frame latency** — the whole in-process daemon
//!    (`app::Daemon`, built like `tests/goofish.rs`) against the loopback
//!    [`FakeGoofish`], zero delivery delay, `BENCH_ORDERS` (default 1000) orders paid one at a
//!    time: the clock starts just before `fake.pay(order)` and stops when the fake has
//!    received the daemon's `sendByReceiverScope` for it (its per-account `sends` counter
//!    moves; polled every ~100 µs from a blocking thread). Before each payment the bench waits
//!    until the daemon has stored the order's "created" card, so only the payment is timed.
//!    Every order is checked afterwards to have exactly one delivered chat message.
//! 3. **Daemon RSS** — the real `xianyu-shopd` binary as a child process
//!    (`--config-dir DIR run`) against a fake in this process, with 1 and then 20 accounts
//!    whose cookies files sit in `DIR/state/`; once every account is registered, synced and
//!    live, wait 3 s and read `VmRSS` (and `VmHWM`) from `/proc/<pid>/status`.
//!
//! Run with:
//!
//! ```text
//! cargo build --release && cargo bench --bench goofish_figures
//! ```
//!
//! with `PYTHON=/path/to/python` when the default `python3` lacks PyPI `msgpack` (for
//! example a venv: `python3 -m venv /tmp/venv && /tmp/venv/bin/pip install msgpack`).
//!
//! Decode figures are medians of 5 rounds, as payloads per second of wall time and per
//! CPU-second of the decoding thread (`/proc/thread-self/schedstat`; the Python script uses
//! `time.thread_time()`): on a shared machine the wall figure depends on the load, the CPU
//! figure and the ratios much less.
//!
//! One run (release, 2-core machine shared with other builds, load average about 15;
//! `PYTHON=/tmp/venv/bin/python BENCH_ORDERS=200 cargo bench --bench goofish_figures`):
//!
//! | payload | daemon path, per CPU-second | `decode_payload` | Python `unpackb` + `json.loads` | Python `unpackb` |
//! |---|---|---|---|---|
//! | A1 order card | 221,407/s (4.52 µs) | 84,918/s | 42,610/s | 64,659/s |
//! | A5 buyer text | 455,596/s (2.19 µs) | 144,255/s | 134,779/s | 185,980/s |
//!
//! so the daemon path is 5.2× (A1) and 3.4× (A5) Python's C extension with the content parsed,
//! 3.4× and 2.4× its `unpackb` alone. The decoder it replaced (rmpv into a JSON tree,
//! classified by lookups in the tree) was measured side by side once, in wall time under the
//! same kind of load: A1 13,050/s against 51,983/s for the daemon path before base64 and
//! UTF-8 checks went SIMD (4.0×), A5 33,918/s against 142,902/s (4.2×); the SIMD steps then
//! took A1 from 7.4 to 4.5 µs of CPU.

use std::collections::HashMap;
use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::FakeGoofish;
use xianyu_shopd::goofish::decode::{PushDecoder, decode_payload};

mod common;
use common::*;

/// Appendix A1: order created / 等待买家付款 (real capture), the golden file the decoder's
/// tests and the fake use too.
const A1_FILE: &str = include_str!("../tests/data/captures/a1-order-created.b64");

/// Waiting for connections and for one order step; generous because the machine may be busy.
const WAIT: Duration = Duration::from_secs(30);

fn main() -> anyhow::Result<()> {
    // As the binary does: one process-wide rustls provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    println!("== goofish_figures ==");
    let secs = env_or("BENCH_DECODE_SECS", 3);
    decode_figures(Duration::from_secs(secs));

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;

    let orders = env_or("BENCH_ORDERS", 1000) as usize;
    match rt.block_on(delivery_latency(orders)) {
        Ok(mut lat) => {
            lat.sort();
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let n = lat.len();
            let mean = lat.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
            println!(
                "latency pay → delivery chat frame, {n} orders, zero delay: median {:.2} ms, p99 {:.2} ms (min {:.2}, mean {:.2}, max {:.2})",
                ms(lat[n / 2]),
                ms(lat[(n * 99).div_ceil(100) - 1]),
                ms(lat[0]),
                mean,
                ms(lat[n - 1])
            );
        }
        Err(e) => println!("latency FAILED: {e:#}"),
    }

    let burst = env_or("BENCH_BURST", 1000) as usize;
    match rt.block_on(burst_delivery(burst)) {
        Ok((spread, last)) => println!(
            "burst   {burst} payments pushed within {:.0} ms: last delivery chat frame {:.0} ms after the first payment",
            spread.as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3
        ),
        Err(e) => println!("burst FAILED: {e:#}"),
    }

    match daemon_binary() {
        Some(bin) => {
            for accounts in [1, 20] {
                match rt.block_on(daemon_rss(&bin, accounts)) {
                    Ok((rss, hwm)) => println!(
                        "rss     xianyu-shopd run, {accounts:>2} connected account(s): VmRSS {:.1} MiB (VmHWM {:.1} MiB)",
                        rss as f64 / 1024.0,
                        hwm as f64 / 1024.0
                    ),
                    Err(e) => println!("rss     {accounts} account(s) FAILED: {e:#}"),
                }
            }
        }
        None => println!(
            "rss     SKIPPED: the release binary target/release/xianyu-shopd is missing; run `cargo build --release` first"
        ),
    }
    Ok(())
}

// -- 1. decode -------------------------------------------------------------------------

/// Appendix A5: a buyer's text "111", the commonest push (see `tests/data/captures/README.md`).
const A5_FILE: &str = include_str!("../tests/data/captures/a5-buyer-text.b64");

/// The capture without the file's trailing newline.
fn a1() -> &'static str {
    A1_FILE.trim()
}

fn a5() -> &'static str {
    A5_FILE.trim()
}

/// The daemon's path and the inspecting path on A1 and A5, then the Python baseline and the
/// ratios (Rust daemon path / Python).
fn decode_figures(duration: Duration) {
    let payloads = [("A1", "A1 order card", a1()), ("A5", "A5 buyer text", a5())];
    let mut daemon_rates = Vec::new();
    for (key, name, capture) in payloads {
        let mut decoder = PushDecoder::new();
        let event = decoder
            .decode(capture, Some(SELLER))
            .expect("capture decodes");
        let expected = &decode_payload(capture, Some(SELLER)).expect("capture decodes")[0];
        assert_eq!(event, expected.event, "{name}: both paths agree");
        let daemon = throughput(duration, || {
            let event = decoder.decode(black_box(capture), black_box(Some(SELLER)));
            black_box(event.unwrap());
        });
        print_rate(
            name,
            capture,
            "PushDecoder::decode (daemon: event only)",
            &daemon,
        );
        daemon_rates.push((key, name, daemon));
        let inspecting = throughput(duration, || {
            black_box(decode_payload(black_box(capture), black_box(Some(SELLER))).unwrap());
        });
        print_rate(name, capture, "decode_payload (event + raw)", &inspecting);
    }
    let python = match python_baseline(duration) {
        Ok(python) => python,
        Err(e) => return println!("python  SKIPPED: {e:#}"),
    };
    for (key, name, rust) in daemon_rates {
        let figures = python.rates.get(key);
        let full = figures.and_then(|r| r.get(PY_FULL));
        let unpack = figures.and_then(|r| r.get(PY_UNPACK));
        let (Some(full), Some(unpack)) = (full, unpack) else {
            println!("python  {name}: missing from the script's answer");
            continue;
        };
        println!(
            "python  {name}, msgpack {} (C extension), Python {}: {PY_FULL} {:.0} payloads/s ({:.0} per CPU-second), {PY_UNPACK} {:.0} payloads/s ({:.0} per CPU-second)",
            python.msgpack, python.python, full.wall, full.cpu, unpack.wall, unpack.cpu
        );
        let ratio = |rust: Option<f64>, python: f64| {
            rust.map_or("?".into(), |r| format!("{:.1}×", r / python))
        };
        println!(
            "ratio   {name}: Rust daemon path / Python with json.loads = {} per CPU-second ({} wall), / Python unpackb only = {} per CPU-second ({} wall)",
            ratio(rust.cpu, full.cpu),
            ratio(Some(rust.wall), full.wall),
            ratio(rust.cpu, unpack.cpu),
            ratio(Some(rust.wall), unpack.wall),
        );
    }
}

const PY_FULL: &str = "b64decode + unpackb + json.loads(content)";
const PY_UNPACK: &str = "b64decode + unpackb";

/// What `benches/python_msgpack.py --json` prints: per payload and path, median rates.
#[derive(serde::Deserialize)]
struct PythonFigures {
    msgpack: String,
    python: String,
    rates: HashMap<String, HashMap<String, PythonRate>>,
}

#[derive(serde::Deserialize)]
struct PythonRate {
    /// Payloads per second of wall time.
    wall: f64,
    /// Payloads per second of the thread's CPU time.
    cpu: f64,
}

/// Runs `benches/python_msgpack.py` with `$PYTHON` (default `python3`) for the same duration.
fn python_baseline(duration: Duration) -> anyhow::Result<PythonFigures> {
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_msgpack.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg("--json")
        .env("BENCH_DECODE_SECS", duration.as_secs_f64().to_string())
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !out.status.success() {
        bail!(
            "{} (set PYTHON to an interpreter that has PyPI msgpack)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    serde_json::from_slice(&out.stdout).context("reading the script's JSON line")
}

/// Rounds each decode figure is the median of.
const ROUNDS: u32 = 5;

/// A decode figure: the medians over [`ROUNDS`] rounds.
struct Rate {
    /// Payloads per second of wall time.
    wall: f64,
    /// Payloads per second of the thread's CPU time, where Linux tells it: on a shared
    /// machine, what the decoder really costs.
    cpu: Option<f64>,
}

fn print_rate(name: &str, capture: &str, what: &str, rate: &Rate) {
    let cpu = rate.cpu.map_or(String::new(), |cpu| {
        format!(
            ", {cpu:.0} per CPU-second ({:.2} µs CPU/payload)",
            1e6 / cpu
        )
    });
    println!(
        "decode  {name} ({} B base64), {what}, median of {ROUNDS} rounds: {:.0} payloads/s ({:.2} µs/payload){cpu}",
        capture.len(),
        rate.wall,
        1e6 / rate.wall,
    );
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// CPU time of the calling thread (`/proc/thread-self/schedstat`, Linux).
fn thread_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let ns = stat.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Runs `decode_one` for 300 ms to warm up, then [`ROUNDS`] rounds sharing `duration`.
fn throughput(duration: Duration, mut decode_one: impl FnMut()) -> Rate {
    let warm = Instant::now();
    while warm.elapsed() < Duration::from_millis(300) {
        decode_one();
    }
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let (start, cpu_start) = (Instant::now(), thread_cpu_time());
        let mut n = 0u64;
        while start.elapsed() < duration / ROUNDS {
            for _ in 0..64 {
                decode_one();
            }
            n += 64;
        }
        wall.push(n as f64 / start.elapsed().as_secs_f64());
        if let (Some(end), Some(begin)) = (thread_cpu_time(), cpu_start) {
            cpu.push(n as f64 / (end - begin).as_secs_f64());
        }
    }
    Rate {
        wall: median(wall),
        cpu: (cpu.len() == ROUNDS as usize).then(|| median(cpu)),
    }
}

// -- shared: a config directory for the daemon --------------------------------------------

/// Writes `pipeline.yaml` (accounts with cookies files under `state/`, the marketplace
/// pointing at `fake`, status page on port 0, zero delay), `products.yaml` (one virtual
/// product with a card pool) and the card template, like `tests/goofish.rs`.
fn write_config(
    dir: &Path,
    fake: &FakeGoofish,
    accounts: &[(String, String)],
    marketplace: &str,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir.join("templates"))?;
    let mut yaml = accounts_yaml(dir, fake, accounts, marketplace)?;
    yaml.push_str(
        "pipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 0s } }\n  - ship: { mode: send_then_confirm, max_retries: 5, retry_delay: 300ms }\n  - notify: { channels: [log] }\n",
    );
    let products = format!(
        "pools:\n  keys: {{}}\nproducts:\n  - item_id: \"{ITEM}\"\n    title: 基准激活码\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n    cards: keys\n"
    );
    std::fs::write(dir.join("pipeline.yaml"), yaml)?;
    std::fs::write(dir.join("products.yaml"), products)?;
    std::fs::write(
        dir.join("templates/card.txt.j2"),
        "感谢购买{{ order.item_title }}\n{% for k in cards %}卡密：{{ k }}\n{% endfor %}",
    )?;
    Ok(())
}

// -- 2. latency ---------------------------------------------------------------------------

/// The fake with one seller selling [`ITEM`], and the daemon on it (connected) with `keys`
/// card keys named `{prefix}-NNNNNN-SECRET`. The directory must outlive the daemon.
async fn one_seller_shop(
    keys: usize,
    prefix: &str,
) -> anyhow::Result<(FakeGoofish, tempfile::TempDir, Daemon)> {
    let fake = FakeGoofish::start().await?;
    let dir = tempfile::tempdir()?;
    let cookies = fake.add_seller(SELLER, "基准小店");
    fake.add_item(SELLER, ITEM, "基准激活码", 990, &[]);
    write_config(dir.path(), &fake, &[("main".into(), cookies)], "")?;
    let daemon = Daemon::start(dir.path(), &dir.path().join("state"), clock::system()).await?;
    let keys: String = (0..keys)
        .map(|i| format!("{prefix}-{i:06}-SECRET\n"))
        .collect();
    daemon.store.import_cards("keys", &keys, false, "bench")?;
    if !fake
        .wait_until(WAIT, |f| all_connected(f, &[SELLER.to_owned()]))
        .await
    {
        bail!("the account did not connect: {:?}", fake.stats(SELLER));
    }
    Ok((fake, dir, daemon))
}

async fn delivery_latency(orders: usize) -> anyhow::Result<Vec<Duration>> {
    let (fake, _dir, daemon) = one_seller_shop(orders + 50, "BENCH").await?;

    let mut latencies = Vec::with_capacity(orders);
    let mut paid = Vec::with_capacity(orders);
    let mut created_unseen = 0usize;
    for i in 0..orders {
        // A new buyer per order: its own conversation, so each delivery is recognisable.
        let buyer = format!("{}", 3_100_000_000u64 + i as u64);
        let order = fake.create_order(SELLER, &buyer, ITEM, 1, None);
        // Let the daemon take in the "created" card first, so only the payment is timed.
        let seen = Instant::now();
        while daemon.store.order(&order)?.is_none() {
            if seen.elapsed() > Duration::from_secs(5) {
                created_unseen += 1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let id = order.clone();
        let took = time_to_next_send(&fake, move |f| f.pay(&id)).await?;
        match took {
            Some(d) => latencies.push(d),
            None => bail!("order {i} ({order}): no chat send within {WAIT:?}"),
        }
        paid.push(order);
    }

    // Check afterwards (cloning the record each poll would disturb the timing): one delivered
    // chat message per order, on that order's conversation.
    let sent = fake.sent_messages();
    let mut wrong = 0usize;
    for order in &paid {
        let cid = fake.order_cid(order).unwrap_or_default();
        let n = sent.iter().filter(|m| m.cid == cid && m.delivered).count();
        if n != 1 {
            wrong += 1;
        }
    }
    println!(
        "        check: {} chat sends recorded, {wrong} of {} orders without exactly one delivered message, {created_unseen} created cards not seen before paying",
        sent.len(),
        paid.len()
    );
    daemon.stop().await;
    fake.shutdown();
    Ok(latencies)
}

/// `orders` orders created and seen by the daemon, then all paid within about one second
/// (one payment push every `1 s / orders`): how long after the first payment the last
/// delivery chat frame reaches the fake. Returns (time to push every payment, time to the last
/// frame).
async fn burst_delivery(orders: usize) -> anyhow::Result<(Duration, Duration)> {
    let (fake, _dir, daemon) = one_seller_shop(orders + 50, "BURST").await?;
    let created: Vec<String> = (0..orders)
        .map(|i| {
            fake.create_order(
                SELLER,
                &format!("{}", 3_200_000_000u64 + i as u64),
                ITEM,
                1,
                None,
            )
        })
        .collect();
    let seen = Instant::now();
    for order in &created {
        while daemon.store.order(order)?.is_none() {
            if seen.elapsed() > WAIT {
                bail!("the daemon did not take in order {order}");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let before = fake.stats(SELLER).sends;
    let f = fake.clone();
    let (spread, last) = tokio::task::spawn_blocking(move || {
        let gap = Duration::from_secs(1) / orders.max(1) as u32;
        let t0 = Instant::now();
        for (i, order) in created.iter().enumerate() {
            let at = gap * i as u32;
            if let Some(wait) = at.checked_sub(t0.elapsed()) {
                std::thread::sleep(wait);
            }
            f.pay(order);
        }
        let spread = t0.elapsed();
        loop {
            if f.stats(SELLER).sends as usize >= before as usize + orders {
                return Some((spread, t0.elapsed()));
            }
            if t0.elapsed() > WAIT * 4 {
                return None;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    })
    .await?
    .ok_or_else(|| anyhow::anyhow!("not every burst order was delivered within {:?}", WAIT * 4))?;
    daemon.stop().await;
    fake.shutdown();
    Ok((spread, last))
}

// -- 3. RSS -------------------------------------------------------------------------------

async fn daemon_rss(bin: &Path, accounts: usize) -> anyhow::Result<(u64, u64)> {
    let fake = FakeGoofish::start().await?;
    let dir = tempfile::tempdir()?;
    let (users, entries) = sellers(&fake, accounts);
    fake.add_item(&users[0], ITEM, "基准激活码", 990, &[]);
    // Default marketplace timings (heartbeat, watchdog, …), as in production.
    write_config(dir.path(), &fake, &entries, "")?;
    let mut daemon = RunningDaemon::start(bin, dir.path())?;
    let connected = fake.wait_until(WAIT, |f| all_connected(f, &users)).await;
    if !connected {
        let live = users.iter().filter(|u| fake.stats(u).live >= 1).count();
        bail!(
            "only {live}/{accounts} accounts connected within {WAIT:?}; daemon log tail:\n{}",
            daemon.log_tail()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.still_running()?;
    if !all_connected(&fake, &users) {
        bail!("an account dropped during the 3 s settle time");
    }
    let rss = daemon.memory_kib()?;
    drop(daemon);
    fake.shutdown();
    Ok(rss)
}
