//! A fake card supplier on loopback: the HTTP service a seller's `products[].supplier` points
//! at, for tests over real sockets.
//!
//! It sells one card per idempotency key (a repeated key gets the same card back, as a
//! well-behaved supplier does), records every request it received (method, path, the
//! `Idempotency-Key` header, the `Authorization` header, the JSON body or query), and can
//! misbehave on purpose ([`SupplierMode`]): take the request and never answer (the
//! "uncertain" case), answer an HTTP error, or answer 200 without a card. The port can be
//! reserved before anything listens on it ([`FakeSupplier::reserve`]), so a first call meets
//! a refused connection.
//!
//! There is no public standard for supplier APIs; the shape (POST JSON with the order fields,
//! `Idempotency-Key` header, card at a configurable JSON path) follows what seller bots
//! accept: YD's API delivery client (placeholders incl. `{idempotency_key}`, response path,
//! retries with the same key) and XP's `ApiKamiDeliveryServiceImpl` (`Idempotency-Key:
//! <orderId>` header, results cached per order), as summarised in
//! `shared/reference/anchors-2026.md` §2(b).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// How the fake answers the buying calls (`/buy`). Return calls (`/return`) always succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SupplierMode {
    /// `{"code":0,"data":{"card":"CARD-<key>"}}`, the same card for the same key.
    Sell,
    /// Read the request, then never answer (until the fake stops).
    Hang,
    /// Answer this HTTP status with an error body.
    Fail(u16),
    /// Answer 200 with `{"code":0,"data":{}}`: no card where it should be.
    NoCard,
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SupplierHit {
    pub method: String,
    pub path: String,
    pub idempotency_key: Option<String>,
    pub authorization: Option<String>,
    /// The JSON body (POST), or the query as a JSON object (GET).
    pub body: serde_json::Value,
}

struct State {
    mode: SupplierMode,
    hits: Vec<SupplierHit>,
    /// Cards sold, by idempotency key.
    sold: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct FakeSupplier {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    cancel: CancellationToken,
}

impl FakeSupplier {
    /// Listen on a fresh loopback port.
    pub async fn start(mode: SupplierMode) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(Self::serve(listener, mode))
    }

    /// A loopback address nothing listens on yet: connections to it are refused until
    /// [`FakeSupplier::start_on`] binds it.
    pub fn reserve() -> std::io::Result<SocketAddr> {
        let probe = std::net::TcpListener::bind("127.0.0.1:0")?;
        probe.local_addr()
    }

    pub async fn start_on(addr: SocketAddr, mode: SupplierMode) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr).await?;
        Ok(Self::serve(listener, mode))
    }

    fn serve(listener: TcpListener, mode: SupplierMode) -> Self {
        let addr = listener
            .local_addr()
            .expect("bound listener has an address");
        let fake = Self {
            addr,
            state: Arc::new(Mutex::new(State {
                mode,
                hits: Vec::new(),
                sold: BTreeMap::new(),
            })),
            cancel: CancellationToken::new(),
        };
        let served = fake.clone();
        tokio::spawn(super::serve::serve_http1(
            listener,
            fake.cancel.clone(),
            move |req| {
                let fake = served.clone();
                async move { handle(req, &fake).await }
            },
        ));
        fake
    }

    /// `http://127.0.0.1:<port>/buy`
    pub fn buy_url(&self) -> String {
        format!("http://{}/buy", self.addr)
    }

    pub fn return_url(&self) -> String {
        format!("http://{}/return", self.addr)
    }

    pub fn set_mode(&self, mode: SupplierMode) {
        self.lock().mode = mode;
    }

    pub fn hits(&self) -> Vec<SupplierHit> {
        self.lock().hits.clone()
    }

    /// Requests to `path` (`/buy` or `/return`).
    pub fn hits_on(&self, path: &str) -> Vec<SupplierHit> {
        self.hits().into_iter().filter(|h| h.path == path).collect()
    }

    /// Cards sold so far, by idempotency key.
    pub fn sold(&self) -> BTreeMap<String, String> {
        self.lock().sold.clone()
    }

    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

async fn handle(req: Request<Incoming>, fake: &FakeSupplier) -> Response<Full<Bytes>> {
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let (key, authorization) = (header("idempotency-key"), header("authorization"));
    let query: serde_json::Map<String, serde_json::Value> =
        form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned().into()))
            .collect();
    let body = match Limited::new(req.into_body(), 1 << 16).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "{}".into()),
    };
    let body = if method == "GET" {
        serde_json::Value::Object(query)
    } else {
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
    };
    let mode = {
        let mut state = fake.lock();
        state.hits.push(SupplierHit {
            method,
            path: path.clone(),
            idempotency_key: key.clone(),
            authorization,
            body,
        });
        state.mode.clone()
    };
    if path == "/return" {
        return reply(StatusCode::OK, r#"{"code":0}"#.into());
    }
    match mode {
        SupplierMode::Sell => {
            let card = sell(fake, key.unwrap_or_default());
            let body = serde_json::json!({"code": 0, "data": {"card": card}});
            reply(StatusCode::OK, body.to_string())
        }
        SupplierMode::Hang => {
            // The supplier sold the card; the answer never comes.
            sell(fake, key.unwrap_or_default());
            fake.cancel.cancelled().await;
            reply(StatusCode::SERVICE_UNAVAILABLE, "{}".into())
        }
        SupplierMode::Fail(status) => reply(
            StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            r#"{"code":1,"msg":"error"}"#.into(),
        ),
        SupplierMode::NoCard => reply(StatusCode::OK, r#"{"code":0,"data":{}}"#.into()),
    }
}

/// The card for `key`: sold once, the same card for a repeated key.
fn sell(fake: &FakeSupplier, key: String) -> String {
    fake.lock()
        .sold
        .entry(key.clone())
        .or_insert_with(|| format!("CARD-{key}"))
        .clone()
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}
