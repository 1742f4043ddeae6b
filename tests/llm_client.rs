//! The OpenAI-compatible client against the simulated model over real loopback sockets:
//! every failure a provider can produce becomes the typed error the chat pipeline falls back on.

use std::time::Duration;

use xianyu_shopd::fake::model::{Behavior, FakeModel, SIMULATED_MODEL};
use xianyu_shopd::llm::{LlmClient, LlmError, Message, Settings};

fn settings(base_url: String) -> Settings {
    Settings {
        base_url,
        model: "qwen-plus".into(),
        api_key: Some("test-key-123".into()),
        timeout: Duration::from_millis(800),
        max_tokens: 120,
        temperature: 0.2,
        extra: serde_json::Map::new(),
        max_retry_wait: Duration::from_secs(1),
    }
}

fn ask() -> Vec<Message> {
    vec![Message::system("你是客服"), Message::user("在吗")]
}

#[tokio::test]
async fn an_answer_comes_back_with_the_request_as_sent() {
    let model = FakeModel::start().await.unwrap();
    model.require_key("test-key-123");
    model.push(Behavior::Answer("在的～".into()));
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    let c = client.complete(&ask()).await.unwrap();
    assert_eq!(c.text, "在的～");
    assert_eq!(c.model.as_deref(), Some(SIMULATED_MODEL));
    assert_eq!(c.attempts, 1);
    let sent = &model.requests()[0];
    assert_eq!(sent, &client.request_body(&ask()));
    assert_eq!(sent["model"], "qwen-plus");
    assert_eq!(sent["max_tokens"], 120);
    assert_eq!(sent["messages"][1]["content"], "在吗");
}

#[tokio::test]
async fn a_wrong_key_is_a_rejection_that_never_shows_the_key() {
    let model = FakeModel::start().await.unwrap();
    model.require_key("the-right-one");
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    let err = client.complete(&ask()).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Rejected { status: 401, .. }),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?} {}", err.label()).contains("test-key-123"));
    assert!(err.label().contains("密钥"));
}

#[tokio::test]
async fn a_short_429_is_waited_out_and_retried_once() {
    let model = FakeModel::start().await.unwrap();
    model.push(Behavior::RateLimited {
        retry_after_secs: Some(1),
    });
    model.push(Behavior::Answer("好的".into()));
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    let started = std::time::Instant::now();
    let c = client.complete(&ask()).await.unwrap();
    assert_eq!((c.text.as_str(), c.attempts), ("好的", 2));
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retry-after honoured"
    );
}

#[tokio::test]
async fn a_long_429_fails_and_pauses_later_calls_without_touching_the_network() {
    let model = FakeModel::start().await.unwrap();
    model.push(Behavior::RateLimited {
        retry_after_secs: Some(30),
    });
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    let err = client.complete(&ask()).await.unwrap_err();
    assert_eq!(
        err,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(30))
        }
    );
    let again = client.complete(&ask()).await.unwrap_err();
    assert!(
        matches!(again, LlmError::RateLimited { retry_after: Some(d) } if d <= Duration::from_secs(30))
    );
    assert_eq!(
        model.request_count(),
        1,
        "the cooling period made no request"
    );
}

#[tokio::test]
async fn server_errors_are_retried_once() {
    let model = FakeModel::start().await.unwrap();
    model.push(Behavior::Status(503));
    model.push(Behavior::Answer("恢复了".into()));
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    assert_eq!(client.complete(&ask()).await.unwrap().text, "恢复了");
    model.push(Behavior::Status(500));
    model.push(Behavior::Status(502));
    assert_eq!(
        client.complete(&ask()).await.unwrap_err(),
        LlmError::Server { status: 502 }
    );
    assert_eq!(model.request_count(), 4);
}

#[tokio::test]
async fn slow_non_json_empty_and_unreachable_are_typed() {
    let model = FakeModel::start().await.unwrap();
    let client = LlmClient::new(settings(model.base_url())).unwrap();
    model.push(Behavior::Delay(
        Duration::from_secs(3),
        Box::new(Behavior::Answer("迟到".into())),
    ));
    assert_eq!(
        client.complete(&ask()).await.unwrap_err(),
        LlmError::Timeout(Duration::from_millis(800))
    );
    model.push(Behavior::NotJson);
    assert!(matches!(client.complete(&ask()).await.unwrap_err(), LlmError::NotJson(n) if n > 0));
    model.push(Behavior::EmptyChoices);
    assert_eq!(
        client.complete(&ask()).await.unwrap_err(),
        LlmError::EmptyChoices
    );
    // a port nobody listens on
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = LlmClient::new(settings(format!("http://{closed}/v1"))).unwrap();
    let err = client.complete(&ask()).await.unwrap_err();
    assert!(matches!(err, LlmError::Unreachable(_)), "{err:?}");
    assert!(err.label().contains("连不上"));
}
