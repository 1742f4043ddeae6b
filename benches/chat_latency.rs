//! Chat figures (issue 12), measured in one run on loopback:
//!
//! 1. **Buyer message → reply frame latency** — the whole in-process daemon (`app::Daemon`)
//!    with a `chat:` section against the loopback [`FakeGoofish`] and the simulated model
//!    ([`FakeModel`], a real HTTP server). `BENCH_MESSAGES` (default 1000) buyer messages,
//!    each from a new buyer (its own conversation), one at a time: the clock starts just
//!    before the fake pushes the message and stops when the fake has received the daemon's
//!    `sendByReceiverScope` (its per-account `sends` counter moves; polled every ~100 µs from
//!    a blocking thread). Two runs:
//!    (a) `在吗`, answered by a keyword rule, reply delay `{ min: 0s, max: 0s }`;
//!    (b) a question about the item no rule matches, answered by the `llm` stage through the
//!    simulated model, which answers at once.
//!    The chat section has no `debounce` stage (its window is a deliberate wait, 2 s by
//!    default, that would only add itself to every figure). Afterwards the bench checks that
//!    the store recorded exactly one sent reply per message from the expected stage.
//! 2. **redb growth per 1,000 chat turns** — the size of `state/shop.redb` before and after
//!    each run above (one turn = one buyer message and its reply).
//! 3. **Daemon RSS** — the real `xianyu-shopd` binary as a child process
//!    (`--config-dir DIR run`) with 20 connected accounts: `VmRSS` once all are live (no
//!    chat yet), then again after 1,000 buyers (50 per account) have each asked and been
//!    answered, i.e. with 1,000 conversations of history in the store.
//!
//! Run with `cargo bench --bench chat_latency` (it builds the release binary the RSS part
//! starts).

use std::path::Path;

use std::time::Duration;

use anyhow::bail;
use xianyu_shopd::app::Daemon;
use xianyu_shopd::clock;
use xianyu_shopd::fake::FakeGoofish;
use xianyu_shopd::fake::model::{Behavior, FakeModel};
use xianyu_shopd::store::DB_FILE;

mod common;
use common::*;

const RSS_ACCOUNTS: usize = 20;
const RSS_CONVERSATIONS: usize = 1000;

fn main() -> anyhow::Result<()> {
    // As the binary does: one process-wide rustls provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    println!("== chat_latency ==");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let messages = env_or("BENCH_MESSAGES", 1000) as usize;
    if let Err(e) = rt.block_on(latency_runs(messages)) {
        println!("latency FAILED: {e:#}");
    }
    match daemon_binary() {
        Some(bin) => match rt.block_on(daemon_rss(&bin)) {
            Ok(r) => println!(
                "rss     xianyu-shopd run, {RSS_ACCOUNTS} accounts: VmRSS {:.1} MiB connected, {:.1} MiB with {RSS_CONVERSATIONS} conversations of history (VmHWM {:.1} MiB); {} replies sent; shop.redb {:.1} MiB",
                mib(r.idle_kib * 1024),
                mib(r.after_kib * 1024),
                mib(r.hwm_kib * 1024),
                r.replies,
                mib(r.db_bytes),
            ),
            Err(e) => println!("rss     FAILED: {e:#}"),
        },
        None => println!(
            "rss     SKIPPED: the release binary target/release/xianyu-shopd is missing; run `cargo build --release` first"
        ),
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

// -- config ---------------------------------------------------------------------------------

/// The chat section: keyword rule, order status, the model, a fallback, zero reply delay and
/// rate limits that never bind in a bench.
fn chat_yaml(model_url: &str) -> String {
    format!(
        r#"chat:
  - filter: {{ max_age: 5m }}
  - takeover: {{ pause: 30m }}
  - keywords:
      rules:
        - any: [在吗]
          reply: 在的，亲
  - order-status: {{}}
  - llm:
      base_url: {model_url}
      model: simulated-model
      timeout: 10s
  - default:
      reply: 亲，稍等，卖家马上回复您
      cooldown: 0s
  - send:
      delay: {{ min: 0s, max: 0s }}
      per_conversation_per_minute: 1000
      per_account_per_minute: 100000
"#
    )
}

/// `pipeline.yaml` (accounts with cookies files under `state/`, the marketplace pointing at
/// `fake`, status page on port 0, the chat section) and `products.yaml` (one item with facts).
fn write_config(
    dir: &Path,
    fake: &FakeGoofish,
    accounts: &[(String, String)],
    model_url: &str,
) -> anyhow::Result<()> {
    let mut yaml = accounts_yaml(dir, fake, accounts, "")?;
    yaml.push_str(
        "pipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - ship: {}\n",
    );
    yaml.push_str(&chat_yaml(model_url));
    let products = format!(
        "products:\n  - item_id: \"{ITEM}\"\n    title: 基准测试商品\n    category: physical\n    price: 99\n    facts: |\n      支持 Windows 和 macOS\n      一码一机，永久激活\n"
    );
    std::fs::write(dir.join("pipeline.yaml"), yaml)?;
    std::fs::write(dir.join("products.yaml"), products)?;
    Ok(())
}

fn db_size(state: &Path) -> u64 {
    std::fs::metadata(state.join(DB_FILE)).map_or(0, |m| m.len())
}

// -- 1 + 2. latency and redb growth -----------------------------------------------------------

/// How a run's buyers ask and which stage must answer.
struct Run {
    label: &'static str,
    text: &'static str,
    about_item: bool,
    stage: &'static str,
    /// Buyer ids start here (each run its own buyers).
    first_buyer: u64,
}

async fn latency_runs(messages: usize) -> anyhow::Result<()> {
    let fake = FakeGoofish::start().await?;
    let model = FakeModel::start().await?;
    model.set_default(Behavior::Answer("支持的，亲，拍下自动发货".into()));
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let cookies = fake.add_seller(SELLER, "基准小店");
    fake.add_item(SELLER, ITEM, "基准测试商品", 9900, &[]);
    fake.set_item_description(ITEM, "基准测试商品的描述");
    write_config(
        dir.path(),
        &fake,
        &[("main".into(), cookies)],
        &model.base_url(),
    )?;
    let daemon = Daemon::start(dir.path(), &state, clock::system()).await?;
    if !fake
        .wait_until(WAIT, |f| all_connected(f, &[SELLER.to_owned()]))
        .await
    {
        bail!("the account did not connect: {:?}", fake.stats(SELLER));
    }
    let runs = [
        Run {
            label: "(a) keyword reply, zero reply delay",
            text: "在吗",
            about_item: false,
            stage: "keywords",
            first_buyer: 3_100_000_000,
        },
        Run {
            label: "(b) simulated model answering at once",
            text: "这个支持 Mac 吗？",
            about_item: true,
            stage: "llm",
            first_buyer: 3_200_000_000,
        },
    ];
    for run in &runs {
        // A few unmeasured messages first (connections, caches, the item detail).
        ask_all(&fake, run, run.first_buyer + 900_000, 20).await?;
        // The last warm-up reply is marked sent just after its frame.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let before_db = db_size(&state);
        let before = daemon.store.chat_replies_by_stage()?;
        let mut lat = ask_all(&fake, run, run.first_buyer, messages).await?;
        // Replies are committed as sent right after the frame; give the last one a moment.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let after = daemon.store.chat_replies_by_stage()?;
        let grown = db_size(&state).saturating_sub(before_db);
        let delta = |stage: &str| {
            after.get(stage).copied().unwrap_or(0) - before.get(stage).copied().unwrap_or(0)
        };
        let others: u64 =
            after.values().sum::<u64>() - before.values().sum::<u64>() - delta(run.stage);
        print_latency(run.label, &mut lat);
        println!(
            "        check: {} replies from `{}`, {others} from other stages (expected {messages} and 0)",
            delta(run.stage),
            run.stage
        );
        println!(
            "redb    {} turns: shop.redb grew {:.2} MiB ({:.2} MiB per 1,000 turns), now {:.2} MiB",
            messages,
            mib(grown),
            mib(grown) * 1000.0 / messages as f64,
            mib(db_size(&state)),
        );
    }
    daemon.stop().await;
    fake.shutdown();
    Ok(())
}

/// `n` new buyers ask one question each, one at a time; the latency of each reply frame.
async fn ask_all(
    fake: &FakeGoofish,
    run: &Run,
    first_buyer: u64,
    n: usize,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n {
        let buyer = (first_buyer + i as u64).to_string();
        let (text, about) = (run.text, run.about_item);
        let took = time_to_next_send(fake, move |f| {
            if about {
                f.push_chat_about(SELLER, &buyer, ITEM, text);
            } else {
                f.push_chat(SELLER, &buyer, text);
            }
        })
        .await?;
        match took {
            Some(d) => latencies.push(d),
            None => bail!("{}: message {i} got no reply within {WAIT:?}", run.label),
        }
    }
    Ok(latencies)
}

fn print_latency(label: &str, lat: &mut [Duration]) {
    lat.sort();
    let n = lat.len();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let mean = lat.iter().map(|d| ms(*d)).sum::<f64>() / n as f64;
    println!(
        "latency buyer message → reply frame, {label}, {n} messages: p50 {:.2} ms, p99 {:.2} ms (min {:.2}, mean {:.2}, max {:.2})",
        ms(lat[n / 2]),
        ms(lat[(n * 99).div_ceil(100) - 1]),
        ms(lat[0]),
        mean,
        ms(lat[n - 1])
    );
}

// -- 3. RSS -------------------------------------------------------------------------------

struct RssFigures {
    idle_kib: u64,
    after_kib: u64,
    hwm_kib: u64,
    replies: u32,
    db_bytes: u64,
}

async fn daemon_rss(bin: &Path) -> anyhow::Result<RssFigures> {
    let fake = FakeGoofish::start().await?;
    let model = FakeModel::start().await?;
    let dir = tempfile::tempdir()?;
    let (users, entries) = sellers(&fake, RSS_ACCOUNTS);
    write_config(dir.path(), &fake, &entries, &model.base_url())?;
    let mut daemon = RunningDaemon::start(bin, dir.path())?;
    if !fake.wait_until(WAIT, |f| all_connected(f, &users)).await {
        bail!(
            "not every account connected; daemon log tail:\n{}",
            daemon.log_tail()
        );
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (idle_kib, _) = daemon.memory_kib()?;

    // Round by round, one new buyer per account asks; each round waits for its replies.
    let sends = |f: &FakeGoofish| users.iter().map(|u| f.stats(u).sends).sum::<u32>();
    let rounds = RSS_CONVERSATIONS / RSS_ACCOUNTS;
    for round in 0..rounds {
        for (a, user) in users.iter().enumerate() {
            let buyer = 3_300_000_000u64 + (a * rounds + round) as u64;
            fake.push_chat(user, &buyer.to_string(), "在吗");
        }
        let want = ((round + 1) * RSS_ACCOUNTS) as u32;
        if !fake.wait_until(WAIT, |f| sends(f) >= want).await {
            bail!(
                "round {round}: {} of {want} replies; daemon log tail:\n{}",
                sends(&fake),
                daemon.log_tail()
            );
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    daemon.still_running()?;
    let (after_kib, hwm_kib) = daemon.memory_kib()?;
    let replies = sends(&fake);
    drop(daemon);
    let db_bytes = db_size(&dir.path().join("state"));
    fake.shutdown();
    Ok(RssFigures {
        idle_kib,
        after_kib,
        hwm_kib,
        replies,
        db_bytes,
    })
}
