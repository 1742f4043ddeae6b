//! kill -9 of the real `xianyu-shopd run` between committing a chat reply and learning whether
//! the send went through: after a restart the reply is never sent again, and the buyer's
//! message (pushed again) is never answered twice.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use xianyu_shopd::clock;
use xianyu_shopd::fake::model::FakeModel;
use xianyu_shopd::fake::{FakeGoofish, Fault};
use xianyu_shopd::store::{ReplyState, Store};

const SELLER: &str = "2202640918079";
const BUYER: &str = "3149637063";
const ITEM: &str = "900000000001";

fn run(dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .args(["--config-dir", dir.to_str().unwrap(), "run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon")
}

fn sent_with(fake: &FakeGoofish, text: &str) -> usize {
    fake.sent_messages()
        .iter()
        .filter(|m| m.text == text)
        .count()
}

async fn wait(fake: &FakeGoofish, f: impl Fn(&FakeGoofish) -> bool) -> bool {
    fake.wait_until(Duration::from_secs(20), f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_in_flight_when_the_daemon_is_killed_is_never_sent_again() {
    let fake = FakeGoofish::start().await.unwrap();
    let model = FakeModel::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cookies = fake.add_seller(SELLER, "小店");
    fake.add_item(SELLER, ITEM, "激活码", 9900, &[]);
    std::fs::create_dir_all(dir.path().join("state")).unwrap();
    std::fs::write(dir.path().join("state/cookies.txt"), cookies).unwrap();
    let pipeline = format!(
        "accounts:\n  - id: main\n    cookies_file: state/cookies.txt\nmarketplace: {{ mtop_url: \"{}\", ws_url: \"{}\", heartbeat: 300ms, send_timeout: 30s, reconnect_max: 1s, keepalive: 1h }}\nstatus: {{ listen: \"127.0.0.1:0\" }}\npipeline:\n  - ingest: {{}}\nchat:\n  - keywords:\n      rules:\n        - any: [在吗]\n          reply: 在的，亲\n  - llm: {{ base_url: \"{}\", model: m }}\n  - send: {{ delay: {{ min: 0s, max: 0s }} }}\n",
        fake.mtop_base(),
        fake.ws_url(),
        model.base_url()
    );
    std::fs::write(dir.path().join("pipeline.yaml"), pipeline).unwrap();

    let mut child = run(dir.path());
    assert!(
        wait(&fake, |f| f.stats(SELLER).live >= 1
            && f.stats(SELLER).syncs >= 1)
        .await
    );
    // The send reaches the buyer but its answer never comes back: the reply is claimed and
    // in flight when the process dies.
    fake.fault(Fault::LoseSendResponses { count: 1 });
    fake.push_chat(SELLER, BUYER, "在吗");
    assert!(
        wait(&fake, |f| sent_with(f, "在的，亲") == 1).await,
        "the reply was sent"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    fake.clear_faults();

    let mut child = run(dir.path());
    assert!(
        wait(&fake, |f| f.stats(SELLER).regs >= 2
            && f.stats(SELLER).live >= 1)
        .await
    );
    // The same message arrives again (a re-sync): it is known, and nothing is resent.
    fake.repeat_last_push(SELLER);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        sent_with(&fake, "在的，亲"),
        1,
        "the buyer got the reply exactly once"
    );
    child.kill().expect("SIGKILL");
    child.wait().unwrap();

    let store = Store::open(&dir.path().join("state"), clock::system()).unwrap();
    let counts = store.chat_reply_counts().unwrap();
    assert_eq!(
        counts.get(ReplyState::Unknown.as_str()),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(counts.get(ReplyState::Sent.as_str()), None, "{counts:?}");
}
