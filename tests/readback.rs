//! Read-back (issue 9, step 2): a send whose outcome is unknown is checked against the
//! conversation history (`/r/MessageManager/listUserMessages`) instead of going straight to the
//! seller. End to end against the loopback fake over real sockets: the fake keeps every
//! conversation's history, can lose send answers, drop sends, fail or ignore history reads.
//! The restart case runs the real binary and SIGKILLs it while a send is in flight.

mod goofish_env;

use std::process::Command;
use std::time::Duration;

use goofish_env::*;
use xianyu_shopd::alert::EventKind;
use xianyu_shopd::clock;
use xianyu_shopd::fake::{FakeGoofish, Fault, SendReply};
use xianyu_shopd::store::{CardState, DeliveryState, Store};

/// The reason the seller reads when the message is not in the conversation.
const NOT_FOUND: &str = "会话中未找到发货消息";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_send_found_in_the_conversation_is_delivered_with_evidence() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::LeaveSendsUnanswered);
    env.fake.pay(&order);
    // Found by the read-back: delivered, and the shipment confirmed after all.
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    let sent = env.fake.sent_messages();
    assert_eq!(sent.len(), 1, "never sent again: {sent:?}");
    assert_eq!(sent[0].reply, SendReply::Withheld);
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert!(d.message_id.is_some(), "the message id is the evidence");
    assert!(
        d.history
            .iter()
            .any(|e| e.note.contains("在聊天记录中找到发货消息")),
        "{:?}",
        d.history
    );
    assert!(env.fake.stats(SELLER).history_reads >= 1);
    assert_eq!(
        env.alerts(EventKind::NeedsHuman),
        0,
        "nothing for the seller to do"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_absent_from_the_conversation_stays_needs_human_with_the_reason() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::DropSends);
    env.fake.pay(&order);
    let settled = wait_for(|| {
        env.store().delivery(&order).unwrap().is_some_and(|d| {
            d.last_error
                .as_deref()
                .is_some_and(|e| e.contains(NOT_FOUND))
        })
    })
    .await;
    assert!(settled, "{:?}", env.store().delivery(&order).unwrap());
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::NeedsHuman);
    assert!(
        env.fake.stats(SELLER).history_reads >= 2,
        "absent only after a second read"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        env.fake.sent_messages().len(),
        1,
        "not sent again by default"
    );
    assert!(env.fake.consigns().is_empty());
    assert_eq!(env.alerts(EventKind::NeedsHuman), 1);
    let counts = env.store().card_counts().unwrap()["keys"].clone();
    assert_eq!(
        counts.get(CardState::Reserved),
        1,
        "the key stays reserved for the order until the seller decides"
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_product_that_opts_in_is_sent_again_when_the_message_is_absent() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM3).await;
    env.fake.fault(Fault::DropSends);
    env.fake.pay(&order);
    assert!(
        env.fake
            .wait_until(WAIT, |f| f.stats(SELLER).history_reads >= 2)
            .await
    );
    env.fake.clear_faults();
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    let sent = env.fake.sent_messages();
    assert_eq!(
        sent.len(),
        2,
        "the dropped send, then the one that arrived: {sent:?}"
    );
    assert!(!sent[0].delivered && sent[1].delivered);
    assert_eq!(env.alerts(EventKind::NeedsHuman), 0);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_history_is_read_again_then_left_to_the_seller() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::LeaveSendsUnanswered);
    env.fake.fault(Fault::FailHistory);
    env.fake.pay(&order);
    let told = wait_for(|| env.alerts(EventKind::NeedsHuman) == 1).await;
    assert!(told, "{:?}", env.store().delivery(&order).unwrap());
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::NeedsHuman);
    assert!(
        d.last_error
            .as_deref()
            .is_some_and(|e| e.contains("无法读取聊天记录")),
        "{d:?}"
    );
    assert_eq!(
        env.fake.stats(SELLER).history_reads,
        5,
        "five reads, backing off"
    );
    assert_eq!(env.fake.sent_messages().len(), 1, "never resent");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_history_that_never_answers_leaves_the_order_uncertain_not_resent() {
    let env = Env::start(QUICK).await;
    let order = created_order(&env, SELLER, BUYER, ITEM).await;
    env.fake.fault(Fault::LeaveSendsUnanswered);
    env.fake.fault(Fault::LoseHistoryAnswers);
    env.fake.pay(&order);
    assert!(
        env.fake
            .wait_until(WAIT, |f| f.stats(SELLER).history_reads >= 2)
            .await
    );
    let d = env.store().delivery(&order).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::NeedsHuman);
    assert_eq!(env.fake.sent_messages().len(), 1, "never resent");
    // Once the history answers again, the message is found.
    env.fake.clear_faults();
    env.assert_delivered_once(&order, SELLER, BUYER).await;
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The real binary, killed while a send is in flight
// ---------------------------------------------------------------------------------------------

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
}

/// A step of the restart case, which starts the real binary twice: on a busy CI box a debug
/// build's start alone can take many seconds (an idle machine passes each step in about one),
/// so each step waits for its condition up to this generous deadline.
const RESTART_STEP: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_in_flight_at_a_crash_is_read_back_after_the_restart() {
    let fake = FakeGoofish::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A long send timeout keeps the unanswered send in flight until the kill.
    let timings = QUICK.replace("send_timeout: 2s", "send_timeout: 60s");
    write_config(dir.path(), &fake, &timings, &[("main", SELLER)]);
    std::fs::write(
        dir.path().join("keys.txt"),
        "KEY-0001-SECRET\nKEY-0002-SECRET\n",
    )
    .unwrap();
    let import = bin()
        .arg("--config-dir")
        .arg(dir.path())
        .args(["cards", "import", "keys"])
        .arg(dir.path().join("keys.txt"))
        .output()
        .unwrap();
    assert!(import.status.success(), "{import:?}");

    let mut daemon = run_binary(dir.path());
    assert!(
        fake.wait_until(RESTART_STEP, |f| f.stats(SELLER).live >= 1)
            .await
    );
    let order = fake.create_order(SELLER, BUYER, ITEM, 1, None);
    fake.fault(Fault::LeaveSendsUnanswered);
    fake.pay(&order);
    assert!(
        fake.wait_until(RESTART_STEP, |f| f.stats(SELLER).sends >= 1)
            .await
    );
    daemon.kill().unwrap(); // SIGKILL: the ledger still says `sending`
    daemon.wait().unwrap();
    fake.clear_faults();

    let mut daemon = run_binary(dir.path());
    let shipped = fake
        .wait_until(RESTART_STEP, |f| {
            f.consigns().iter().any(|c| c.order_id == order)
        })
        .await;
    // SIGTERM: a clean stop lets the confirm step record its result.
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(daemon.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    daemon.wait().unwrap();
    assert!(shipped, "confirmed after the read-back found the message");
    let sent = fake.sent_messages();
    assert_eq!(sent.len(), 1, "never sent twice: {sent:?}");

    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    let d = store.delivery(&order).unwrap().unwrap();
    assert_eq!(d.state, DeliveryState::Delivered, "{d:?}");
    assert!(d.message_id.is_some());
    let counts = store.card_counts().unwrap()["keys"].clone();
    assert_eq!(
        (
            counts.get(CardState::Delivered),
            counts.get(CardState::Reserved)
        ),
        (1, 0),
        "the key is the order's, delivered"
    );
}
