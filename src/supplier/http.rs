//! The seller's card supplier over HTTP (reqwest).
//!
//! Classification, which decides between "retry with the same key" and "ask the seller":
//! - no connection (refused, DNS, connect timeout): nothing was sent, retryable;
//! - HTTP 408, 429 or 5xx: the supplier says it failed; retryable with the same idempotency
//!   key, which a supplier that did sell answers with the same card;
//! - any other 4xx: refused, not retried;
//! - a timeout or a broken connection after the request left, or a 2xx without a card at
//!   `response:`: the supplier may have sold a card we do not have, so the seller checks.

use std::time::Duration;

use super::{CardSupplier, ReturnOutcome, SupplierRequest};
use crate::config::supplier::{SupplierMethod, pick};
use crate::store::CallResult;

/// Answers larger than this are not a card.
const MAX_ANSWER: usize = 64 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, Clone)]
pub struct HttpSupplier {
    client: reqwest::Client,
}

impl Default for HttpSupplier {
    fn default() -> Self {
        Self::new()
    }
}

impl HttpSupplier {
    pub fn new() -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self { client }
    }

    /// Send `req`; the answer's status and body, or the classified failure.
    async fn exchange(&self, req: &SupplierRequest) -> Result<(u16, Vec<u8>), CallResult> {
        let mut builder = match req.method {
            SupplierMethod::Post => self.client.post(&req.url).json(&req.body),
            SupplierMethod::Get => {
                let mut url = reqwest::Url::parse(&req.url).map_err(|_| CallResult::NotBought {
                    reason: "供应商地址无效（请求未发出）".into(),
                    status: None,
                    retryable: false,
                })?;
                url.query_pairs_mut().extend_pairs(query_of(&req.body));
                self.client.get(url)
            }
        };
        for (name, value) in &req.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let response = builder
            .timeout(req.timeout)
            .send()
            .await
            .map_err(|e| failure(&e, req.timeout))?;
        let status = response.status().as_u16();
        let mut body = response
            .bytes()
            .await
            .map_err(|e| failure(&e, req.timeout))?
            .to_vec();
        body.truncate(MAX_ANSWER);
        Ok((status, body))
    }
}

#[async_trait::async_trait]
impl CardSupplier for HttpSupplier {
    async fn fetch(&self, req: &SupplierRequest) -> CallResult {
        let (status, body) = match self.exchange(req).await {
            Ok(answer) => answer,
            Err(failed) => return failed,
        };
        if let Some(refused) = refused(status) {
            return refused;
        }
        let card = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|json| pick(&json, &req.response));
        match card {
            Some(card) => CallResult::Fetched { card, status },
            None => CallResult::Uncertain {
                reason: format!(
                    "供应商答复 HTTP {status}，但答复中没有卡密（可能已扣款），请到供应商后台核对"
                ),
                status: Some(status),
            },
        }
    }

    async fn give_back(&self, req: &SupplierRequest) -> ReturnOutcome {
        match self.exchange(req).await {
            Ok((status, _)) if (200..300).contains(&status) => ReturnOutcome::Returned,
            Ok((status, _)) => ReturnOutcome::Failed {
                reason: format!("供应商退回接口答复 HTTP {status}"),
            },
            Err(CallResult::NotBought { reason, .. } | CallResult::Uncertain { reason, .. }) => {
                ReturnOutcome::Failed { reason }
            }
            Err(CallResult::Fetched { .. }) => ReturnOutcome::Returned,
        }
    }
}

/// A non-2xx answer: what it means for the card.
fn refused(status: u16) -> Option<CallResult> {
    if (200..300).contains(&status) {
        return None;
    }
    let retry = status == 408 || status == 429 || status >= 500;
    let reason = if retry {
        format!("供应商暂时不可用（HTTP {status}），将用同一幂等键重试")
    } else {
        format!("供应商拒绝了请求（HTTP {status}）")
    };
    Some(CallResult::NotBought {
        reason,
        status: Some(status),
        retryable: retry,
    })
}

fn failure(e: &reqwest::Error, timeout: Duration) -> CallResult {
    if e.is_connect() {
        return CallResult::NotBought {
            reason: "无法连接供应商（请求未发出）".into(),
            status: None,
            retryable: true,
        };
    }
    if e.is_builder() {
        return CallResult::NotBought {
            reason: "供应商地址或请求头无效（请求未发出）".into(),
            status: None,
            retryable: false,
        };
    }
    let reason = if e.is_timeout() {
        format!(
            "供应商在 {} 秒内没有答复（请求已发出），无法确定是否已购买，请到供应商后台核对",
            timeout.as_secs().max(1)
        )
    } else {
        "与供应商的连接在请求发出后中断，无法确定是否已购买，请到供应商后台核对".into()
    };
    CallResult::Uncertain {
        reason,
        status: None,
    }
}

fn query_of(body: &serde_json::Value) -> Vec<(String, String)> {
    let Some(map) = body.as_object() else {
        return Vec::new();
    };
    map.iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            (k.clone(), text)
        })
        .collect()
}
