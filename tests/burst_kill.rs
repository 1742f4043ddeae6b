//! SIGKILL during a burst (issue 15 item 4): with group commit many orders share one write
//! transaction, so a kill lands in the middle of a batch. The real `xianyu-shopd run` binary
//! takes 2,000 payments pushed by the in-test fake Goofish as fast as its socket carries them,
//! is SIGKILLed twice while deliveries stream out, and is started again each time. The fake's
//! record is the truth: every order got exactly one delivery message, or is `needs_human` with
//! at most one; no key reached two buyers; `cards list` balances.

use std::time::{Duration, Instant};

use xianyu_shopd::clock;
use xianyu_shopd::fake::FakeGoofish;
use xianyu_shopd::store::{DeliveryState, Holding, Store};

mod chaos_common;
use chaos_common::*;

const ORDERS: usize = 2000;
/// Deliveries that reach the fake before each kill.
const KILL_AFTER_SENDS: [u64; 2] = [300, 1100];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_during_a_burst_loses_and_repeats_nothing() {
    let fake = FakeGoofish::start().await.unwrap();
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().to_path_buf();
    write_config(&dir, &fake, 1);
    let imported = ORDERS + 50;
    let keys: String = (0..imported).map(|i| format!("BURST-{i:05}\n")).collect();
    std::fs::write(dir.join("keys.txt"), keys).unwrap();
    cli(&dir, &["cards", "import", "keys", "keys.txt"]);
    let mut daemon = Daemon::new(&dir);
    daemon.start();
    let user = seller(0);
    assert!(
        fake.wait_until(Duration::from_secs(60), |f| {
            let s = f.stats(&user);
            s.regs >= 1 && s.syncs >= 1 && s.live >= 1
        })
        .await,
        "the account never connected:\n{}",
        tail(&daemon.log(), 20)
    );

    let orders: Vec<String> = (0..ORDERS)
        .map(|n| fake.create_order(&user, &format!("4{n:09}"), &item(0), 1, None))
        .collect();
    // The payments, back to back: the socket carries them as fast as it can.
    for order in &orders {
        fake.pay(order);
    }
    for (i, after) in KILL_AFTER_SENDS.into_iter().enumerate() {
        let waited = Instant::now();
        while u64::from(fake.stats(&user).sends) < after {
            assert!(
                waited.elapsed() < Duration::from_secs(240),
                "only {} deliveries before kill {i}:\n{}",
                fake.stats(&user).sends,
                tail(&daemon.log(), 20)
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        daemon.kill9();
        daemon.start();
    }

    let settled = settle(&dir, &orders, Duration::from_secs(300)).await;
    daemon.stop();
    assert!(
        settled,
        "orders never settled:\n{}",
        tail(&daemon.log(), 40)
    );

    let record = Record::of(&fake);
    record.assert_no_duplicates("");
    let store = Store::open(&dir.join("state"), clock::system()).unwrap();
    let (mut delivered, mut needs_human, mut held) = (0, 0, 0);
    for order in &orders {
        let cid = fake.order_cid(order).unwrap();
        let messages = record.messages_in(&cid);
        let d = store
            .delivery(order)
            .unwrap()
            .expect("every paid order has a ledger row");
        match d.state {
            DeliveryState::Delivered => {
                assert_eq!(
                    messages,
                    1,
                    "delivered order {order} (conversation {cid}): {d:?}\nwhat the fake saw sent there: {:?}",
                    fake.sent_messages()
                        .into_iter()
                        .filter(|m| m.cid == cid)
                        .map(|m| (m.delivered, m.receivers, m.reply, m.text.len()))
                        .collect::<Vec<_>>()
                );
                delivered += 1;
            }
            DeliveryState::NeedsHuman => {
                assert!(
                    messages <= 1,
                    "needs_human order {order}: {messages} messages"
                );
                if let Holding::Cards { ids, .. } = &d.holding {
                    held += ids.len() as u64;
                }
                needs_human += 1;
            }
            other => panic!("order {order} ended {other:?}: {d:?}"),
        }
    }
    drop(store);
    let counts = cards_list(&dir);
    counts.assert_balance(imported as u64, "");
    assert_eq!(
        counts.reserved, held,
        "only needs_human orders hold keys: {counts:?}"
    );
    assert_eq!(counts.delivered, delivered as u64, "{counts:?}");
    assert!(
        delivered + needs_human == ORDERS && delivered > ORDERS / 2,
        "delivered {delivered}, needs_human {needs_human}"
    );
    eprintln!("burst_kill: {delivered} delivered, {needs_human} needs_human, 2 SIGKILLs");
}
