//! `replay FILE [--dry-run] [--no-wait]`: feed a JSON Lines file of order events through the
//! real pipeline. Sends and confirms go to an offline marketplace that prints them (nothing
//! reaches Xianyu); notifications go to the configured channels. `--dry-run` works on an
//! in-memory copy of the store with a simulated clock, so it never waits and writes nothing;
//! without it, `replay` holds the daemon lock like `run` (one writer of the pipeline per state
//! directory).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;

use crate::app::Shop;
use crate::cli::Dirs;
use crate::clock::{Clock, ManualClock, SharedClock};
use crate::event::shown;
use crate::marketplace::memory::MemoryMarketplace;
use crate::order::Decision;
use crate::replay;
use crate::store::{DB_FILE, DaemonLock, OutboxState, Store};

pub async fn run(
    dirs: &Dirs,
    file: &Path,
    dry_run: bool,
    no_wait: bool,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(dirs)?;
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let lines = replay::parse(&text);
    let manual_clock = Arc::new(ManualClock::new(crate::clock::SystemClock.now_ms()));
    // A replay that writes is a daemon for its duration: two must never share a state dir.
    let _lock = if dry_run {
        None
    } else {
        Some(DaemonLock::acquire(&dirs.state_dir())?)
    };
    let store = if dry_run {
        dry_run_store(dirs, manual_clock.clone())?
    } else {
        super::open_store(dirs)?
    };
    // Replay never buys: supplier cards are printed calls with placeholder cards.
    print_aftersale_plan(&config, dry_run);
    // Writing the real store, a printed rating would be recorded as done although it never
    // reached the platform (and `run` would then never make it): no after-sale at all.
    let market = if dry_run {
        MemoryMarketplace::printing()
    } else {
        MemoryMarketplace::printing().without_aftersale()
    };
    let shop = Shop::with_supplier(
        store,
        config,
        Arc::new(market),
        Arc::new(crate::supplier::PrintingSupplier),
    )?;
    if dry_run {
        println!("dry run: nothing is written; delays are simulated");
    }
    let (orders, bad_lines) = ingest_all(&shop, lines).await?;
    if dry_run || !no_wait {
        let jump = |to: u64| manual_clock.set_ms(to.max(manual_clock.now_ms()));
        let advance: Option<&dyn Fn(u64)> = if dry_run { Some(&jump) } else { None };
        let pending = shop.store.pending_job_count()?;
        if pending > 0 {
            println!("waiting for {pending} scheduled deliveries");
        }
        shop.scheduler.run_until_idle(advance).await?;
    }
    if dry_run {
        print_pending_notifications(&shop.store)?;
    } else {
        shop.dispatcher.drain_due().await?;
    }
    print_summary(&shop.store, &orders)?;
    Ok(if bad_lines > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// What the after-sale tasks would do. In a dry run ratings and thank-yous of the replayed
/// orders run (and print) like any job; a replay that writes the store runs none of them; the
/// daily jobs are `run`'s alone, so they are described here.
fn print_aftersale_plan(config: &crate::config::Config, dry_run: bool) {
    let a = &config.aftersale;
    if !dry_run && (a.rate.is_some() || a.thanks.is_some()) {
        println!(
            "aftersale: replay without --dry-run neither rates nor thanks (nothing would reach Xianyu, yet it would be recorded as done); `run` rates completed orders through its daily sweep of the pending-ratings list"
        );
    }
    let accounts: Vec<&str> = config.accounts.iter().map(|x| x.id.as_str()).collect();
    if let Some(rate) = &a.rate {
        println!(
            "aftersale rate: each completed order's buyer is rated once ({}); daily sweep of the pending-ratings list at {} (Beijing) for {}",
            rate.template
                .as_deref()
                .map_or("built-in text".to_string(), |t| format!("templates/{t}")),
            rate.sweep_window.label(),
            accounts.join(", ")
        );
    }
    if let Some(thanks) = &a.thanks {
        println!(
            "aftersale thanks: one thank-you message per completed order ({})",
            thanks
                .template
                .as_deref()
                .map_or("built-in text".to_string(), |t| format!("templates/{t}"))
        );
    }
    if let Some(polish) = &a.polish {
        let what = if polish.items.is_empty() {
            "every on-shelf item".to_string()
        } else {
            format!("items {}", polish.items.join(", "))
        };
        println!(
            "aftersale polish: would polish {what} of {} once a day at {} (Beijing); not run by replay",
            accounts.join(", "),
            polish.window.label()
        );
    }
    if a.any_enabled() {
        println!(
            "aftersale guard: at least {} between calls per account, up to {} random delay; risk control pauses an account until fresh cookies",
            humantime::format_duration(a.min_gap),
            humantime::format_duration(a.jitter)
        );
    }
}

fn dry_run_store(dirs: &Dirs, clock: Arc<ManualClock>) -> anyhow::Result<Store> {
    let shared: SharedClock = clock;
    if !dirs.state_dir().join(DB_FILE).exists() {
        return Ok(Store::in_memory(shared)?);
    }
    let real = Store::open(&dirs.state_dir(), shared)?;
    Ok(real.snapshot_in_memory()?)
}

/// Every line is ingested; a bad line is reported and skipped. A store that cannot be written (a
/// full disk) stops the replay at once with one message: the rest would fail the same way, and
/// running the same file again later resumes where it stopped (ingest deduplicates).
async fn ingest_all(
    shop: &Shop,
    lines: Vec<replay::ReplayLine>,
) -> Result<(BTreeSet<String>, usize), crate::store::StoreError> {
    let mut orders = BTreeSet::new();
    let mut bad = 0;
    for line in lines {
        let ev = match line.event {
            Ok(ev) => ev,
            Err(e) => {
                eprintln!("line {}: not a valid event: {e}", line.line);
                bad += 1;
                continue;
            }
        };
        let (order_id, status) = (ev.order_id.clone(), ev.status);
        match shop.runner.ingest(ev).await {
            Ok(outcome) => {
                orders.insert(order_id.clone());
                println!(
                    "event   line {} order={} {}: {}",
                    line.line,
                    shown(&order_id),
                    status.as_str(),
                    describe(&outcome.decision)
                );
            }
            Err(crate::pipeline::PipelineError::Store(e)) if e.is_unavailable() => return Err(e),
            Err(e) => {
                eprintln!("line {}: {e}", line.line);
                bad += 1;
            }
        }
    }
    Ok((orders, bad))
}

fn describe(d: &Decision) -> String {
    match d {
        Decision::Transition { from, to, .. } => {
            format!("{} → {}", from.map_or("(new)", |s| s.label()), to.label())
        }
        Decision::Duplicate => "duplicate, ignored".into(),
        Decision::Stale { current } => {
            format!("stale (order is already {}), ignored", current.label())
        }
    }
}

fn print_pending_notifications(store: &Store) -> anyhow::Result<()> {
    for n in store
        .notifications(usize::MAX)?
        .into_iter()
        .rev()
        .filter(|n| n.state == OutboxState::Pending)
    {
        println!(
            "notify  {} via {}: {} {}",
            n.event,
            shown(&n.channel),
            shown(&n.title),
            shown(&n.text.replace('\n', " | "))
        );
    }
    Ok(())
}

fn print_summary(store: &Store, orders: &BTreeSet<String>) -> anyhow::Result<()> {
    let mut by_state: BTreeMap<&'static str, usize> = BTreeMap::new();
    for id in orders {
        let state = store
            .delivery(id)?
            .map_or("no delivery (not paid)", |d| d.state.as_str());
        *by_state.entry(state).or_default() += 1;
    }
    let parts: Vec<String> = by_state.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    println!("summary {} order(s): {}", orders.len(), parts.join(", "));
    Ok(())
}
