//! The client against a canned HTTP server over real sockets: token retry, blocked states,
//! risk-control backoff, consign answers and the stable device id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use crate::config::MarketplaceConfig;
use crate::goofish::sign::{self, MTOP_APP_KEY};
use crate::health;
use crate::store::Store;

/// A one-connection-per-request HTTP server answering with canned responses in turn
/// (the last one repeats); counts requests and keeps their raw text.
async fn canned(
    responses: Vec<(u16, Vec<String>, String)>,
) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (c, s) = (count.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let n = c.fetch_add(1, Ordering::SeqCst);
            let (status, cookies, body) = responses[n.min(responses.len() - 1)].clone();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(r) = sock.read(&mut chunk).await {
                if r == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..r]);
                let text = String::from_utf8_lossy(&buf);
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + len {
                        break;
                    }
                }
            }
            s.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).into_owned());
            let mut head = format!(
                "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for c in cookies {
                head.push_str(&format!("set-cookie: {c}\r\n"));
            }
            let _ = sock.write_all(format!("{head}\r\n{body}").as_bytes()).await;
        }
    });
    (format!("http://{addr}/h5/"), count, seen)
}

fn client(base: &str) -> MtopClient {
    let settings = MarketplaceConfig {
        mtop_url: base.to_string(),
        risk_backoff: Duration::from_secs(600),
        ..MarketplaceConfig::default()
    };
    let store = Store::in_memory(crate::clock::system()).unwrap();
    let c = MtopClient::new(
        "main",
        reqwest::Client::new(),
        &settings,
        store,
        health::Health::new(),
    );
    c.set_cookies("unb=2202640918079; cookie2=sessionsecret; _m_h5_tk=old_1")
        .unwrap();
    c
}

/// The value of query parameter `name` in a raw request.
fn query_value<'a>(request: &'a str, name: &str) -> &'a str {
    let start = [format!("?{name}="), format!("&{name}=")]
        .iter()
        .find_map(|k| request.find(k.as_str()).map(|at| at + k.len()))
        .expect("parameter present");
    let rest = &request[start..];
    &rest[..rest.find(['&', ' ']).unwrap_or(rest.len())]
}

const OK: &str = r#"{"api":"x","data":{},"ret":["SUCCESS::调用成功"],"v":"1.0"}"#;

#[tokio::test]
async fn token_error_is_retried_exactly_once_with_the_rotated_token() {
    let expired = r#"{"api":"x","data":{},"ret":["FAIL_SYS_TOKEN_EXOIRED::令牌过期"],"v":"1.0"}"#;
    let rotate = vec!["_m_h5_tk=fresh_99; Path=/".to_string()];
    let (base, count, seen) = canned(vec![
        (200, rotate.clone(), expired.into()),
        (200, vec![], OK.into()),
    ])
    .await;
    let c = client(&base);
    c.keep_alive().await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let second = seen.lock().unwrap()[1].clone();
    assert!(
        second.contains("_m_h5_tk=fresh_99"),
        "retry carries the rotated token"
    );
    let (sign, t) = (query_value(&second, "sign"), query_value(&second, "t"));
    assert_eq!(sign, sign::mtop_sign("fresh", t, MTOP_APP_KEY, "{}"));
    assert!(second.contains("\r\n\r\ndata=%7B%7D"));

    // A server that keeps refusing gets exactly two requests, then a Token error.
    let (base, count, _) = canned(vec![(200, rotate, expired.into())]).await;
    let c = client(&base);
    assert!(matches!(c.keep_alive().await, Err(MtopError::Token(_))));
    assert_eq!(count.load(Ordering::SeqCst), 2);
    // Not blocked: the cookies stay as pasted (unproven until the IM registers with them).
    assert_eq!(c.login_state(), LoginState::Unverified);
}

#[tokio::test]
async fn session_expired_blocks_without_further_requests() {
    let dead = r#"{"api":"x","data":{},"ret":["FAIL_SYS_SESSION_EXPIRED::Session过期"],"v":"1.0"}"#;
    let (base, count, _) = canned(vec![(200, vec![], dead.into())]).await;
    let c = client(&base);
    assert_eq!(c.keep_alive().await, Err(MtopError::LoginExpired));
    assert_eq!(c.login_state(), LoginState::LoginExpired);
    for _ in 0..5 {
        assert_eq!(c.consign("123").await, Err(MtopError::LoginExpired));
    }
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "blocked calls never reach the network"
    );
    c.set_cookies("unb=2202640918079; cookie2=fresh").unwrap();
    // Fresh cookies unblock calls, but only an IM registration proves them.
    assert_eq!(c.login_state(), LoginState::Unverified);
    assert!(c.check_usable().is_ok());
    c.confirm_login();
    assert!(c.login_state().is_ok());
}

#[tokio::test(start_paused = true)]
async fn risk_control_backs_off_then_probes_once() {
    let risk = r#"{"api":"x","data":{"url":"https://h/_____tmd_____/punish?x5secdata=1"},"ret":["FAIL_SYS_USER_VALIDATE","RGV587_ERROR::SM::哎哟喂,被挤爆啦,请稍后重试"],"v":"1.0"}"#;
    let (base, count, _) = canned(vec![
        (200, vec![], risk.into()),
        (200, vec![], risk.into()),
        (200, vec![], OK.into()),
    ])
    .await;
    let c = client(&base);
    assert!(matches!(
        c.keep_alive().await,
        Err(MtopError::RiskControl { .. })
    ));
    let LoginState::RiskControl { retry_at, strikes } = c.login_state() else {
        panic!("not blocked")
    };
    assert_eq!(strikes, 1);
    for _ in 0..10 {
        assert!(matches!(
            c.keep_alive().await,
            Err(MtopError::RiskControl { .. })
        ));
    }
    assert_eq!(count.load(Ordering::SeqCst), 1);
    tokio::time::advance(Duration::from_secs(601)).await;
    assert!(Instant::now() >= retry_at);
    assert!(matches!(
        c.keep_alive().await,
        Err(MtopError::RiskControl { .. })
    ));
    let LoginState::RiskControl {
        retry_at: second,
        strikes,
    } = c.login_state()
    else {
        panic!()
    };
    assert_eq!(strikes, 2);
    assert!(
        second >= Instant::now() + Duration::from_secs(1199),
        "backoff doubles"
    );
    tokio::time::advance(Duration::from_secs(1201)).await;
    c.keep_alive().await.unwrap();
    assert!(c.login_state().is_ok());
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn consign_already_shipped_and_device_id_is_stable() {
    let shipped =
        r#"{"api":"x","data":{},"ret":["FAIL_BIZ_ORDER_ALREADY_DELIVERY::订单已发货"],"v":"1.0"}"#;
    let (base, _, seen) = canned(vec![
        (200, vec![], OK.into()),
        (200, vec![], shipped.into()),
    ])
    .await;
    let c = client(&base);
    assert_eq!(
        c.consign("2503688126356636370").await,
        Ok(Consigned::Confirmed)
    );
    assert_eq!(
        c.consign("2503688126356636370").await,
        Ok(Consigned::AlreadyShipped)
    );
    let first = seen.lock().unwrap()[0].clone();
    assert!(first.contains(&format!(
        "data={}",
        form_encode(
            r#"{"orderId":"2503688126356636370", "tradeText":"","picList":[],"newUnconsign":true}"#
        )
    )));
    let did = c.device_id().unwrap();
    assert!(sign::is_device_id(&did, "2202640918079"));
    c.set_cookies("unb=2202640918079; cookie2=other").unwrap();
    assert_eq!(
        c.device_id().unwrap(),
        did,
        "the device id is generated once per user"
    );
}
