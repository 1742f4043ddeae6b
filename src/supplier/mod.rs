//! Card suppliers as the ship stage sees them: buy one card for one order unit.
//!
//! [`request`] turns a product's `supplier:` config and one order unit into a ready request
//! (secrets read, body rendered, idempotency key in a header and in the body or query);
//! a [`CardSupplier`] makes it. [`http::HttpSupplier`] calls the seller's supplier over HTTP;
//! [`PrintingSupplier`] (replay, dry runs) prints what would be called and buys nothing.
//!
//! Outcomes are three-valued like the marketplace's sends: a card, provably nothing bought
//! (the connection was refused, the supplier answered with an error), or unknown (the
//! request left and no usable answer came back). Only the second is retried automatically.
//!
//! **Must not:** touch the store or the marketplace; the ship stage claims every call in the
//! store before making it.

pub mod http;

use std::time::Duration;

use crate::config::supplier::{
    IDEMPOTENCY_HEADER, PathStep, SupplierCall, SupplierConfig, SupplierFields, SupplierMethod,
};
use crate::store::CallResult;

/// One call, ready to make. Carries secrets (the URL, secret headers): never logged whole.
#[derive(Clone)]
pub struct SupplierRequest {
    pub order_id: String,
    pub unit: u32,
    pub idempotency_key: String,
    pub method: SupplierMethod,
    pub url: String,
    pub headers: Vec<(String, String)>,
    /// The JSON body (POST) or the query parameters (GET, an object's top-level fields).
    pub body: serde_json::Value,
    /// Where the card is in the answer (empty for a return call: any 2xx will do).
    pub response: Vec<PathStep>,
    pub timeout: Duration,
}

impl std::fmt::Debug for SupplierRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupplierRequest")
            .field("order_id", &self.order_id)
            .field("unit", &self.unit)
            .field("method", &self.method)
            .field("host", &host_of(&self.url))
            .finish_non_exhaustive()
    }
}

/// How a return call (on a refund) went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReturnOutcome {
    Returned,
    Failed { reason: String },
}

#[async_trait::async_trait]
pub trait CardSupplier: Send + Sync {
    /// Buy the card of one unit. Never retries by itself: the caller decides, after recording
    /// the outcome.
    async fn fetch(&self, req: &SupplierRequest) -> CallResult;

    /// Give a fetched card back (order refunded before it reached the buyer).
    async fn give_back(&self, req: &SupplierRequest) -> ReturnOutcome;
}

/// The buying request for unit `fields.unit`, or why it cannot be made (a secret not set, a
/// template that does not render): provably nothing bought.
pub fn request(
    config: &SupplierConfig,
    fields: &SupplierFields,
) -> Result<SupplierRequest, String> {
    build(
        &config.call,
        fields,
        config.response.clone(),
        config.timeout,
    )
}

/// The return request for a fetched card (`fields.card` set), if the product has `return:`.
pub fn return_request(
    config: &SupplierConfig,
    fields: &SupplierFields,
) -> Option<Result<SupplierRequest, String>> {
    let call = config.return_call.as_ref()?;
    Some(build(call, fields, Vec::new(), config.timeout))
}

fn build(
    call: &SupplierCall,
    fields: &SupplierFields,
    response: Vec<PathStep>,
    timeout: Duration,
) -> Result<SupplierRequest, String> {
    let url = call
        .url
        .resolve()
        .map_err(|e| format!("供应商地址读取失败：{e}"))?;
    let mut headers = call.headers.clone();
    for (name, secret) in &call.secret_headers {
        let value = secret
            .resolve()
            .map_err(|e| format!("供应商请求头 {name} 读取失败：{e}"))?;
        headers.push((name.clone(), value));
    }
    headers.push((
        IDEMPOTENCY_HEADER.to_string(),
        fields.idempotency_key.clone(),
    ));
    let body = call
        .request_body(fields)
        .map_err(|e| format!("供应商请求模板渲染失败：{e}"))?;
    Ok(SupplierRequest {
        order_id: fields.order_id.clone(),
        unit: fields.unit,
        idempotency_key: fields.idempotency_key.clone(),
        method: call.method,
        url,
        headers,
        body,
        response,
        timeout,
    })
}

/// `https://api.example.com/buy?k=…` → `api.example.com`: what may be printed of a URL.
pub fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| "?".into())
}

/// Buys nothing: prints the call (host, method, unit, idempotency key; never the URL or a
/// header value) and answers a placeholder card, so replay and dry runs show the whole
/// delivery without spending money.
#[derive(Debug, Default)]
pub struct PrintingSupplier;

#[async_trait::async_trait]
impl CardSupplier for PrintingSupplier {
    async fn fetch(&self, req: &SupplierRequest) -> CallResult {
        println!(
            "supplier order={} unit={} key={} {} {} (模拟：不会真正购买)",
            req.order_id,
            req.unit,
            req.idempotency_key,
            req.method.as_str(),
            host_of(&req.url)
        );
        CallResult::Fetched {
            card: format!("模拟卡密-{}", req.idempotency_key),
            status: 200,
        }
    }

    async fn give_back(&self, req: &SupplierRequest) -> ReturnOutcome {
        println!(
            "supplier-return order={} unit={} {} {} (模拟)",
            req.order_id,
            req.unit,
            req.method.as_str(),
            host_of(&req.url)
        );
        ReturnOutcome::Returned
    }
}
