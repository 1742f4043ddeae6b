//! `chat-test` with the real binary: which stage answers, the reply, the exact model request,
//! and a clear failure when the model cannot be reached. Nothing is sent or stored.

use std::path::Path;
use std::process::{Command, Output};

use xianyu_shopd::fake::model::{Behavior, FakeModel};

fn config(dir: &Path, model_url: &str) {
    let pipeline = format!(
        "accounts:\n  - id: main\n    name: 小店\n    cookies_env: X_COOKIES\npipeline:\n  - ingest: {{}}\nchat:\n  - keywords:\n      rules:\n        - any: [在吗]\n          reply: 在的，亲\n  - llm: {{ base_url: \"{model_url}\", model: test-model, timeout: 2s }}\n  - default: {{ reply: 稍等 }}\n  - send: {{}}\n"
    );
    let products = "products:\n  - item_id: \"900\"\n    title: Office 激活码\n    price: 99\n    facts: 支持 Windows 10 和 Windows 11\n";
    std::fs::write(dir.join("pipeline.yaml"), pipeline).unwrap();
    std::fs::write(dir.join("products.yaml"), products).unwrap();
}

fn chat_test(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xianyu-shopd"))
        .arg("--config-dir")
        .arg(dir)
        .arg("chat-test")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyword_and_model_answers_are_printed_with_the_exact_request() {
    let model = FakeModel::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), &model.base_url());

    let out = chat_test(dir.path(), &["在吗"]);
    assert!(out.status.success());
    assert!(
        stdout(&out).contains("回答阶段：keywords"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("在的，亲"));
    assert_eq!(model.request_count(), 0, "a keyword answer asks no model");

    model.push(Behavior::Answer("支持 Windows 11 的".into()));
    let history = dir.path().join("history.txt");
    std::fs::write(&history, "买家：你好\n卖家：你好，在的\n").unwrap();
    let out = chat_test(
        dir.path(),
        &[
            "--item",
            "900",
            "--history",
            history.to_str().unwrap(),
            "--verbose",
            "win11 能用吗",
        ],
    );
    let text = stdout(&out);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("回答阶段：llm") && text.contains("支持 Windows 11 的"),
        "{text}"
    );
    // the printed request is the one the model received
    let sent = &model.requests()[0];
    assert!(text.contains(&format!("POST {}/chat/completions", model.base_url())));
    assert!(text.contains("\"model\": \"test-model\""));
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages[1]["content"], "你好");
    assert_eq!(messages[2]["role"], "assistant");
    assert_eq!(messages.last().unwrap()["content"], "win11 能用吗");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("Office 激活码")
    );
    // nothing was stored: there is still no store
    assert!(!dir.path().join("state/shop.redb").exists());
}

#[test]
fn an_unreachable_model_is_a_clear_failure() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    config(dir.path(), &format!("http://{closed}/v1"));
    let out = chat_test(dir.path(), &["支持 Mac 吗"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("连不上模型服务"), "{stderr}");
    // the fallback that a buyer would get is still shown
    assert!(stdout(&out).contains("稍等"), "{}", stdout(&out));
}

#[test]
fn mistakes_are_explained_in_chinese() {
    let dir = tempfile::tempdir().unwrap();
    config(dir.path(), "http://127.0.0.1:9/v1");
    let history = dir.path().join("history.txt");
    std::fs::write(&history, "买家：在吗\n路人：你好\n").unwrap();
    let out = chat_test(
        dir.path(),
        &["--history", history.to_str().unwrap(), "在吗"],
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("history.txt:2: `路人` 不是 买家 或 卖家"),
        "{stderr}"
    );
    let out = chat_test(dir.path(), &["--account", "shop2", "在吗"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("没有账号 `shop2`"), "{stderr}");
}
