//! Hot reload: validate-then-swap, restart-only settings, cookie changes per account, the
//! file watcher with atomic-rename saves, and what config a running or delayed order uses;
//! hostile saves (issue 10): a looping template, a stuck reload, `rm products.yaml`, a save
//! caught half-way, a replaced `templates/`, files changed but not applied.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use xianyu_shopd::app::Shop;
use xianyu_shopd::clock;
use xianyu_shopd::config::reload::{ReloadOutcome, Reloader, Trigger};
use xianyu_shopd::config::templates::DeliveryView;
use xianyu_shopd::config::{self, watch};
use xianyu_shopd::event::EventStatus::Paid;
use xianyu_shopd::marketplace::{
    ConsignOutcome, ConsignRequest, DeliveryMessage, Marketplace, SendOutcome,
};
use xianyu_shopd::store::{DeliveryState, Store};

/// Save like an editor does: write a temp file, rename it over the target.
fn atomic_write(path: &Path, text: &str) {
    let tmp = path.with_file_name(format!(
        ".{}.swp",
        path.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn reloader(h: &Harness) -> Arc<Reloader> {
    Arc::new(Reloader::new(
        h.dir.path().to_path_buf(),
        h.shop.config.clone(),
        clock::system(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_running_config_and_says_where() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let before = h.shop.config.load().version.clone();
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("auto_ship: true", "auto_shipp: true"),
    );
    let ReloadOutcome::Rejected(errors) = r.reload() else {
        panic!("a broken edit must be rejected")
    };
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("products.yaml:7:5:") && e.contains("did you mean `auto_ship`")),
        "{errors:?}"
    );
    assert_eq!(
        h.shop.config.load().version,
        before,
        "the last good config keeps running"
    );
    let report = r.report();
    assert!(!report.ok && report.at > 0 && report.version == before);

    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("测试激活码", "测试激活码 v2"),
    );
    assert!(matches!(r.reload(), ReloadOutcome::Applied(_)));
    assert_ne!(h.shop.config.load().version, before);
    assert!(r.report().ok);
    assert!(card_title(&h).ends_with("v2"));
    assert_eq!(r.reload(), ReloadOutcome::Unchanged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_listen_address_requires_a_restart() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let pipeline = std::fs::read_to_string(h.dir.path().join("pipeline.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("pipeline.yaml"),
        &format!("{pipeline}status:\n  listen: 127.0.0.1:9999\n"),
    );
    let ReloadOutcome::Rejected(errors) = r.reload() else {
        panic!("must be refused")
    };
    assert!(errors[0].contains("requires a restart"), "{errors:?}");
    assert_eq!(h.shop.config.load().status.listen.port(), 8080);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cookie_file_change_names_only_its_account() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_yaml("{ min: 0s, max: 0s }", "{}").replace(
        "accounts:\n  - id: main\n    cookies_env: TEST_COOKIES\n",
        "accounts:\n  - id: main\n    cookies_file: state/main.cookies\n  - id: second\n    cookies_file: state/second.cookies\n",
    );
    write_config(dir.path(), &pipeline, &products_yaml("send_then_confirm"));
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/main.cookies"), "unb=1; cookie2=a").unwrap();
    std::fs::write(dir.path().join("state/second.cookies"), "unb=2; cookie2=b").unwrap();
    let handle = config::handle(config::load(dir.path()).unwrap());
    let r = Reloader::new(dir.path().to_path_buf(), handle, clock::system());
    let mut changes = r.subscribe();
    atomic_write(
        &dir.path().join("state/second.cookies"),
        "unb=2; cookie2=fresh",
    );
    let ReloadOutcome::Applied(change) = r.reload() else {
        panic!("cookie change must apply")
    };
    assert_eq!(change.accounts_with_new_cookies, vec!["second".to_string()]);
    assert_eq!(changes.try_recv().unwrap(), change);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watcher_applies_an_atomic_rename_save() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let (shutdown, task) = start_watcher(&h, &r, watch::Timing::default()).await;
    let before = h.shop.config.load().version.clone();
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    // The store writing under state/ must not count as a config change.
    h.store
        .import_cards("keys", "K-1\n", false, "test")
        .unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replace("测试网盘链接", "测试网盘链接 新版"),
    );
    let started = Instant::now();
    while h.shop.config.load().version == before {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the save was never picked up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        h.shop
            .config
            .load()
            .product(STOCK_ITEM)
            .unwrap()
            .title
            .ends_with("新版")
    );
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_order_fires_under_the_config_current_when_it_fires() {
    let h = Harness::new(
        &pipeline_yaml("{ min: 1h, max: 1h }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    h.import_keys(1);
    h.ingest(event("V1", Paid, CARD_ITEM)).await;
    h.dispatch_and_wait().await;
    let job = h
        .store
        .due_jobs(u64::MAX, 10)
        .unwrap()
        .pop()
        .expect("waiting in delay");
    let scheduled_under = h.shop.config.load().version.clone();
    assert_eq!(job.config_version, scheduled_under);

    // The seller turns auto-ship off while the order waits.
    let products = std::fs::read_to_string(h.dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &h.dir.path().join("products.yaml"),
        &products.replacen("auto_ship: true", "auto_ship: false", 1),
    );
    assert!(matches!(reloader(&h).reload(), ReloadOutcome::Applied(_)));
    h.shop.runner.run_job(job).await.unwrap();
    assert_eq!(
        h.market.send_calls(),
        0,
        "the seller's latest word wins: nothing is sent"
    );
    assert_eq!(
        h.store.delivery("V1").unwrap().unwrap().state,
        DeliveryState::Manual
    );
}

/// A marketplace whose sends wait until the test lets them go.
struct GatedMarket {
    entered: Notify,
    release: Notify,
    consigns: std::sync::Mutex<u32>,
}

#[async_trait::async_trait]
impl Marketplace for GatedMarket {
    async fn send_delivery(&self, _msg: &DeliveryMessage) -> SendOutcome {
        self.entered.notify_one();
        self.release.notified().await;
        SendOutcome::Accepted { message_id: None }
    }
    async fn confirm_shipment(&self, _req: &ConsignRequest) -> ConsignOutcome {
        *self.consigns.lock().unwrap() += 1;
        ConsignOutcome::Confirmed
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_flight_order_completes_under_its_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    write_config(
        dir.path(),
        &pipeline_yaml("{ min: 0s, max: 0s }", "{}"),
        &products_yaml("send_then_confirm"),
    );
    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    store.import_cards("keys", "K-1\n", false, "test").unwrap();
    let market = Arc::new(GatedMarket {
        entered: Notify::new(),
        release: Notify::new(),
        consigns: Default::default(),
    });
    let shop = Shop::new(
        store.clone(),
        config::load(dir.path()).unwrap(),
        market.clone(),
    )
    .unwrap();
    shop.runner
        .ingest(event("I1", Paid, CARD_ITEM))
        .await
        .unwrap();
    let job = store.due_jobs(u64::MAX, 1).unwrap().pop().unwrap();
    let runner = shop.runner.clone();
    let run = tokio::spawn(async move { runner.run_job(job).await });
    market.entered.notified().await;

    // Mid-send, the seller switches the product to send_only.
    let products = std::fs::read_to_string(dir.path().join("products.yaml")).unwrap();
    atomic_write(
        &dir.path().join("products.yaml"),
        &products.replacen("mode: send_then_confirm", "mode: send_only", 1),
    );
    let r = Reloader::new(
        dir.path().to_path_buf(),
        shop.config.clone(),
        clock::system(),
    );
    assert!(matches!(r.reload(), ReloadOutcome::Applied(_)));
    market.release.notify_one();
    run.await.unwrap().unwrap();
    assert_eq!(
        *market.consigns.lock().unwrap(),
        1,
        "the run that started under send_then_confirm still confirms"
    );
    assert_eq!(
        store.delivery("I1").unwrap().unwrap().state,
        DeliveryState::Delivered
    );
}

// ---- hostile saves (issue 10) ---------------------------------------------------------------

/// The watcher running over the harness's config, given time to install its watches.
async fn start_watcher(
    h: &Harness,
    r: &Arc<Reloader>,
    timing: watch::Timing,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    start_watcher_with(h, r, timing, |_, _| {}).await
}

/// The watcher running on `h`'s config, returned once its OS watches are installed (so an
/// edit made next is seen by the file watch, not only by the disk poll).
async fn start_watcher_with(
    h: &Harness,
    r: &Arc<Reloader>,
    timing: watch::Timing,
    on_reload: impl Fn(&Reloader, Option<&ReloadOutcome>) + Send + Sync + 'static,
) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let (ready, watching) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(watch::run_with(
        r.clone(),
        (h.dir.path().to_path_buf(), h.dir.path().join("state")),
        shutdown.clone(),
        on_reload,
        timing,
        Some(ready),
    ));
    assert_eq!(watching.await, Ok(true), "the config directory is watched");
    (shutdown, task)
}

/// The disk poll off, so only the file watch can notice an edit.
fn watch_only(reload_timeout: Duration) -> watch::Timing {
    watch::Timing {
        reload_timeout,
        disk_poll: Duration::from_secs(3600),
    }
}

async fn wait_until(what: &str, secs: u64, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(secs),
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Shutdown returns at once, whatever a reload is doing.
async fn stop_promptly(shutdown: CancellationToken, task: tokio::task::JoinHandle<()>) {
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the watcher stops at once")
        .unwrap();
}

fn card_title(h: &Harness) -> String {
    h.shop
        .config
        .load()
        .product(CARD_ITEM)
        .unwrap()
        .title
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_looping_template_saved_while_running_is_rejected_and_later_fixes_apply() {
    // D4: the watcher used to await this reload for ever (a core at 100 %, later saves and
    // SIGHUP ignored, the status page still "ok", shutdown never returning).
    let h = Harness::default_shop();
    let r = reloader(&h);
    let (shutdown, task) = start_watcher(&h, &r, watch::Timing::default()).await;
    let before = h.shop.config.load().version.clone();
    let card = h.dir.path().join("templates/card.txt.j2");
    atomic_write(
        &card,
        "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
    );
    wait_until("the loop is rejected", 20, || {
        let report = r.report();
        !report.ok && report.at > 0
    })
    .await;
    let errors = r.report().errors;
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("templates/card.txt.j2:1:1: exceeds the render budget")),
        "{errors:?}"
    );
    assert_eq!(h.shop.config.load().version, before);
    atomic_write(&card, &TEMPLATE.replace("感谢购买", "谢谢购买"));
    // The watcher swaps the config, then records the outcome: wait for both.
    wait_until("the fix is applied and reported ok", 20, || {
        h.shop.config.load().version != before && r.report().ok
    })
    .await;
    stop_promptly(shutdown, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_reload_is_shown_given_up_on_and_never_holds_the_watcher() {
    // A reload that cannot finish (here: products.yaml never stops changing, so the reload
    // waits for it to hold still) is given up on after the timeout and shown; a save after
    // that is applied by a fresh reload, the abandoned ones never apply anything, and
    // shutdown does not wait for them.
    let h = Harness::default_shop();
    let r = reloader(&h);
    let (shutdown, task) = start_watcher(&h, &r, watch_only(Duration::from_secs(1))).await;
    let before = h.shop.config.load().version.clone();
    let path = h.dir.path().join("products.yaml");
    let products = std::fs::read_to_string(&path).unwrap();
    let churn = |rounds: usize| {
        let (path, products) = (path.clone(), products.clone());
        std::thread::spawn(move || {
            for n in 0..rounds {
                std::fs::write(
                    &path,
                    products.replace("测试激活码", &format!("测试激活码 草稿{n}")),
                )
                .unwrap();
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let writer = churn(60);
    wait_until("the stuck reload is shown", 10, || {
        r.report().stuck_since.is_some()
    })
    .await;
    assert_eq!(
        h.shop.config.load().version,
        before,
        "nothing half-saved ran"
    );
    writer.join().unwrap();
    atomic_write(&path, &products.replace("测试激活码", "测试激活码 定稿"));
    wait_until("the save after the churn is applied", 20, || {
        card_title(&h).ends_with("定稿")
    })
    .await;
    // The abandoned reloads end once the files hold still; none of them may apply a draft.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(card_title(&h).ends_with("定稿"), "{}", card_title(&h));
    let report = r.report();
    assert!(report.ok && report.stuck_since.is_none(), "{report:?}");
    // Shutdown while a reload waits for churning files.
    let writer = churn(40);
    tokio::time::sleep(Duration::from_millis(600)).await;
    stop_promptly(shutdown, task).await;
    writer.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_or_emptying_products_yaml_keeps_the_running_config_until_sighup() {
    // D7: `rm products.yaml` was applied as "no products" (ok: true), and every auto-ship
    // order went to a human.
    let h = Harness::default_shop();
    let r = reloader(&h);
    let before = h.shop.config.load().version.clone();
    let path = h.dir.path().join("products.yaml");
    for (what, emptied) in [("removed", false), ("emptied", true)] {
        if emptied {
            std::fs::write(&path, "").unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
        let ReloadOutcome::Rejected(errors) = r.reload() else {
            panic!("a {what} products.yaml must be rejected")
        };
        assert!(
            errors.iter().any(|e| e.starts_with("products.yaml:1:1:")
                && e.contains("missing or empty")
                && e.contains("SIGHUP")),
            "{errors:?}"
        );
        assert_eq!(h.shop.config.load().version, before);
        assert!(h.shop.config.load().product(CARD_ITEM).unwrap().auto_ship);
    }
    // SIGHUP is the seller saying the removal is meant.
    assert!(matches!(
        r.reload_for(Trigger::Hangup),
        ReloadOutcome::Applied(_)
    ));
    assert!(h.shop.config.load().product(CARD_ITEM).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_save_caught_half_way_is_never_applied() {
    // D7: an editor that truncates and then writes left a valid half of products.yaml for a
    // moment, and the daemon ran it: the auto-ship card item became a manual one.
    use std::io::Write;
    let h = Harness::default_shop();
    let r = reloader(&h);
    let (shutdown, task) = start_watcher(&h, &r, watch::Timing::default()).await;
    let path = h.dir.path().join("products.yaml");
    let full = std::fs::read_to_string(&path)
        .unwrap()
        .replace("测试激活码", "测试激活码 v2");
    // The first product without its `auto_ship: true` and everything after: still valid.
    let cut = full.find("    auto_ship: true").unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let watching = CancellationToken::new();
    let observer = {
        let (config, seen, watching) = (h.shop.config.clone(), seen.clone(), watching.clone());
        tokio::spawn(async move {
            while !watching.is_cancelled() {
                let c = config.load();
                let auto = c.product(CARD_ITEM).map(|p| p.auto_ship);
                seen.lock().unwrap().push((c.version.clone(), auto));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    {
        let mut f = std::fs::File::create(&path).unwrap(); // truncates
        f.write_all(full[..cut].as_bytes()).unwrap();
        f.sync_all().unwrap();
        tokio::time::sleep(Duration::from_millis(400)).await;
        f.write_all(full[cut..].as_bytes()).unwrap();
    }
    wait_until("the whole save is applied", 10, || {
        card_title(&h).ends_with("v2")
    })
    .await;
    watching.cancel();
    observer.await.unwrap();
    let seen = seen.lock().unwrap();
    let bad: Vec<_> = seen
        .iter()
        .filter(|(_, auto)| *auto != Some(true))
        .collect();
    assert!(bad.is_empty(), "a half-written products.yaml ran: {bad:?}");
    stop_promptly(shutdown, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_edits_are_picked_up_after_templates_is_replaced() {
    // D8: after `mv templates templates.old && cp -r templates.old templates`, the recursive
    // watch followed the old directory and later template edits were never applied. The disk
    // poll is off here, so only the re-registered watch can notice the edit.
    let h = Harness::default_shop();
    let r = reloader(&h);
    let (shutdown, task) = start_watcher(&h, &r, watch_only(watch::RELOAD_TIMEOUT)).await;
    let (templates, old) = (
        h.dir.path().join("templates"),
        h.dir.path().join("templates.old"),
    );
    std::fs::rename(&templates, &old).unwrap();
    std::fs::create_dir(&templates).unwrap();
    std::fs::copy(old.join("card.txt.j2"), templates.join("card.txt.j2")).unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = h.shop.config.load().version.clone();
    atomic_write(
        &templates.join("card.txt.j2"),
        &TEMPLATE.replace("感谢购买", "谢谢购买"),
    );
    wait_until("the edit in the new templates/ is applied", 10, || {
        h.shop.config.load().version != before
    })
    .await;
    let text = h
        .shop
        .config
        .load()
        .templates
        .render("card.txt.j2", &DeliveryView::sample())
        .unwrap();
    assert!(text.starts_with("谢谢购买"), "{text}");
    stop_promptly(shutdown, task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_changed_but_not_applied_are_shown_on_the_status_page() {
    let h = Harness::default_shop();
    let r = reloader(&h);
    let health = xianyu_shopd::health::Health::new();
    let timing = watch::Timing {
        reload_timeout: watch::RELOAD_TIMEOUT,
        disk_poll: Duration::from_millis(200),
    };
    let shown = health.clone();
    let (shutdown, task) = start_watcher_with(&h, &r, timing, move |r, _| {
        shown.set_reload(r.report().into())
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let ctx = xianyu_shopd::status::StatusContext::new(h.store.clone(), h.shop.config.clone())
        .with_health(health.clone());
    tokio::spawn(xianyu_shopd::status::serve(listener, ctx, shutdown.clone()));
    let running = h.shop.config.load().version.clone();
    let path = h.dir.path().join("products.yaml");
    let products = std::fs::read_to_string(&path).unwrap();
    atomic_write(
        &path,
        &products.replace("auto_ship: true", "auto_shipp: true"),
    );
    wait_until("the unapplied files are noticed", 10, || {
        let report = r.report();
        !report.ok && report.unapplied.is_some()
    })
    .await;
    let on_disk = xianyu_shopd::config::disk_version(h.dir.path());
    assert_eq!(r.report().unapplied.as_deref(), Some(on_disk.as_str()));
    assert_ne!(on_disk, running);
    let page = reqwest::get(format!("http://{addr}/"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("已修改但未生效"), "{page}");
    assert!(page.contains(&on_disk), "{page}");
    // Fixed: applied, nothing left unapplied.
    atomic_write(&path, &products.replace("测试激活码", "测试激活码 v2"));
    wait_until("the fix is applied and shown", 10, || {
        let report = r.report();
        report.ok && report.unapplied.is_none() && card_title(&h).ends_with("v2")
    })
    .await;
    shutdown.cancel();
    task.await.unwrap();
}
