//! Who may read the status page: tokens, non-loopback addresses, and shutdown.

mod status_common;
mod support;

use std::time::Duration;

use status_common::{PAGES, TOKEN, assert_no_secrets, request, serve, shop, start};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use xianyu_shopd::health::Health;
use xianyu_shopd::status::logs::LogBuffer;
use xianyu_shopd::status::{self, StatusContext, StatusError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_token_is_required_everywhere_but_healthz() {
    let s = start(true).await;
    for path in PAGES {
        let r = s.get(path).await;
        assert_eq!(r.status, 401, "{path} without a token");
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"xianyu-shopd\"")
        );
        assert!(
            !r.body.contains("主店") && !r.body.contains("C1"),
            "{path} leaks data: {}",
            r.body
        );
        let wrong = s
            .get_with(path, &[("Authorization", "Bearer s3cret-status-token-xyZ")])
            .await;
        assert_eq!(wrong.status, 401, "{path} with a wrong token");
        let sep = if path.contains('?') { '&' } else { '?' };
        let wrong_q = s.get(&format!("{path}{sep}token=nope")).await;
        assert_eq!(wrong_q.status, 401, "{path} with a wrong ?token=");
    }
    assert_eq!(
        s.get("/healthz").await.status,
        200,
        "health checks need no token"
    );
    assert_eq!(
        s.get("/api/status").await.body,
        "{\"error\":\"a token is required\"}"
    );
    assert!(s.get("/").await.body.contains("需要访问令牌"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_accepted_as_bearer_query_or_cookie_and_never_echoed_in_a_page() {
    let s = start(true).await;
    let bearer = format!("Bearer {TOKEN}");
    for path in PAGES {
        let r = s.get_with(path, &[("Authorization", &bearer)]).await;
        assert_eq!(r.status, 200, "{path} with Bearer");
        assert_no_secrets(path, &r.body);
        assert!(r.header("set-cookie").is_none());
    }
    let q = s.get(&format!("/?token={TOKEN}")).await;
    assert_eq!(q.status, 200);
    assert_no_secrets("/?token=", &q.body);
    let cookie = q
        .header("set-cookie")
        .expect("a cookie keeps in-page links working");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let r = s
        .get_with("/orders/C1", &[("Cookie", &format!("other=1; {pair}"))])
        .await;
    assert_eq!(r.status, 200, "links followed with the cookie");
    assert_eq!(
        r.header("referrer-policy"),
        Some("no-referrer"),
        "?token= never leaks via Referer"
    );
    let bad = s.get_with("/", &[("Cookie", "shopd_token=guess")]).await;
    assert_eq!(bad.status, 401);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_address_without_a_token_is_refused() {
    let h = shop(false).await;
    // 0.0.0.0 is reachable from other machines; nothing is sent to it, the server only binds.
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let ctx = StatusContext::new(h.store.clone(), h.shop.config.clone());
    let err = status::serve(listener, ctx, CancellationToken::new())
        .await
        .expect_err("must refuse");
    assert!(matches!(err, StatusError::TokenRequired(_)), "{err}");
    assert!(err.to_string().contains("token_env"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reachable_address_with_a_token_serves_only_with_it() {
    let h = shop(true).await;
    let s = serve(h, Health::new(), LogBuffer::new(10), "0.0.0.0:0").await;
    // Requests go to loopback only; the listener is the wildcard one.
    assert_eq!(s.get("/api/status").await.status, 401);
    let ok = s
        .get_with(
            "/api/status",
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
        .await;
    assert_eq!(ok.status, 200);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_token_file_stops_the_server_from_starting() {
    let h = shop(true).await;
    std::fs::remove_file(h.dir.path().join("state/status-token.txt")).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ctx = StatusContext::new(h.store.clone(), h.shop.config.clone());
    let err = status::serve(listener, ctx, CancellationToken::new())
        .await
        .unwrap_err();
    assert!(matches!(err, StatusError::Token(_)), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_the_listener_and_returns() {
    let s = start(false).await;
    let addr = s.addr;
    assert_eq!(request(addr, "GET", "/healthz", &[]).await.status, 200);
    s.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), s.task)
        .await
        .expect("serve returns after shutdown")
        .unwrap()
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

/// Issue 10 nit: a 1-character token used to be accepted on 0.0.0.0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_token_is_refused_off_loopback() {
    let h = shop(true).await;
    std::fs::write(h.dir.path().join("state/status-token.txt"), "abc123").unwrap();
    let listener = TcpListener::bind("0.0.0.0:0").await.unwrap();
    let ctx = StatusContext::new(h.store.clone(), h.shop.config.clone());
    let err = status::serve(listener, ctx, CancellationToken::new())
        .await
        .expect_err("a six-character token must not guard a reachable page");
    assert!(
        matches!(err, StatusError::WeakToken { chars: 6, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("至少要 16 个字符"), "{err}");
    // On loopback the same token is only a convenience and is accepted.
    let s = serve(h, Health::new(), LogBuffer::new(10), "127.0.0.1:0").await;
    let ok = s
        .get_with("/api/status", &[("Authorization", "Bearer abc123")])
        .await;
    assert_eq!(ok.status, 200);
    s.stop().await;
}

/// Issue 10 nit: `Authorization: bearer …` in lower case was rejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bearer_scheme_is_case_insensitive() {
    let s = start(true).await;
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let r = s
            .get_with(
                "/api/status",
                &[("Authorization", &format!("{scheme} {TOKEN}"))],
            )
            .await;
        assert_eq!(r.status, 200, "{scheme}");
    }
    let wrong = s
        .get_with(
            "/api/status",
            &[("Authorization", &format!("Basic {TOKEN}"))],
        )
        .await;
    assert_eq!(wrong.status, 401, "another scheme is not a bearer token");
    s.stop().await;
}
