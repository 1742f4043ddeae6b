//! `products[].supplier`: a product whose card comes from an HTTP supplier at delivery time
//! instead of a pool.
//!
//! Validated in `validate/supplier.rs`; the ship stage builds one request per order unit from
//! it ([`SupplierConfig::request_body`]) and hands it to the `supplier` port. The URL and any
//! secret header are [`SecretRef`]s (`url_env`/`url_file`, `headers_env`), read only when the
//! call is made, so `products.yaml` stays reviewable in git.

use std::time::Duration;

use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

use crate::secret::SecretRef;

/// `method:`; GET carries the order fields as query parameters, POST as a JSON body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SupplierMethod {
    Get,
    #[default]
    Post,
}

impl SupplierMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// One step of `response:` (`data.cards[0].code` → `data`, `cards`, `[0]`, `code`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathStep {
    Key(String),
    Index(usize),
}

/// An HTTP call to the supplier: the buying call, or the return call made on a refund.
#[derive(Debug, Clone)]
pub struct SupplierCall {
    pub method: SupplierMethod,
    pub url: SecretRef,
    /// Plain headers (never secrets: `check` refuses secret-looking names here).
    pub headers: Vec<(String, String)>,
    /// Headers whose values are read from the environment when the call is made.
    pub secret_headers: Vec<(String, SecretRef)>,
    /// The body (POST) or query (GET) as written: string leaves are templates over
    /// [`SupplierFields`]. `None`: the order fields themselves.
    pub body: Option<serde_json::Value>,
}

/// `products[].supplier`.
#[derive(Debug, Clone)]
pub struct SupplierConfig {
    pub call: SupplierCall,
    /// Where the card is in the JSON answer.
    pub response: Vec<PathStep>,
    /// `response:` as written, for messages.
    pub response_text: String,
    pub timeout: Duration,
    /// How often a call that provably bought nothing (refused connection, HTTP 5xx/408/429)
    /// is tried again, with the same idempotency key.
    pub retries: u32,
    /// `return:`: called once per fetched card when the order is refunded before the card
    /// reached the buyer.
    pub return_call: Option<SupplierCall>,
}

pub const DEFAULT_SUPPLIER_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_SUPPLIER_RETRIES: u32 = 2;
/// The header that carries the idempotency key (also sent in the body or query).
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";

/// What a body template can use: the order unit being bought.
#[derive(Debug, Clone, Serialize)]
pub struct SupplierFields {
    pub order_id: String,
    /// 1-based index of this unit within the order.
    pub unit: u32,
    pub units: u32,
    pub item_id: String,
    pub sku: String,
    pub quantity: u32,
    pub buyer_id: String,
    pub amount: String,
    /// `<order_id>-<unit>` (assigned by the store): the same on every retry and restart.
    pub idempotency_key: String,
    /// The card being returned (return call only; empty when buying).
    pub card: String,
}

impl SupplierFields {
    pub fn sample() -> Self {
        Self {
            order_id: "3000000000000000001".into(),
            unit: 1,
            units: 1,
            item_id: "900000000001".into(),
            sku: "月卡".into(),
            quantity: 1,
            buyer_id: "2200000000001".into(),
            amount: "9.90".into(),
            idempotency_key: "3000000000000000001-1".into(),
            card: "SAMPLE-CARD".into(),
        }
    }
}

impl SupplierCall {
    /// The body (or query) for `fields`: every string leaf rendered, and `idempotency_key`
    /// added to a map that does not set it, so the supplier can recognise a retry.
    pub fn request_body(&self, fields: &SupplierFields) -> Result<serde_json::Value, String> {
        let mut body = match &self.body {
            Some(b) => render_leaves(b, fields)?,
            None => default_body(fields),
        };
        if let serde_json::Value::Object(map) = &mut body {
            map.entry("idempotency_key")
                .or_insert_with(|| fields.idempotency_key.clone().into());
        }
        Ok(body)
    }
}

fn default_body(f: &SupplierFields) -> serde_json::Value {
    let mut body = serde_json::json!({
        "order_id": f.order_id,
        "unit": f.unit,
        "units": f.units,
        "item_id": f.item_id,
        "sku": f.sku,
        "quantity": f.quantity,
    });
    if !f.card.is_empty() {
        body["card"] = f.card.clone().into();
    }
    body
}

/// Render one template leaf (`"{{ order_id }}"`); unknown names are errors, not blanks.
pub fn render_leaf(text: &str, fields: &SupplierFields) -> Result<String, String> {
    if !text.contains("{{") && !text.contains("{%") {
        return Ok(text.to_string());
    }
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.render_str(text, minijinja::value::Serde(fields))
        .map_err(|e| {
            let detail = e
                .detail()
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string());
            format!("`{text}`: {detail}")
        })
}

fn render_leaves(
    value: &serde_json::Value,
    fields: &SupplierFields,
) -> Result<serde_json::Value, String> {
    use serde_json::Value;
    Ok(match value {
        Value::String(s) => Value::String(render_leaf(s, fields)?),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| render_leaves(v, fields))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), render_leaves(v, fields)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

/// `data.cards[0].code` → steps, or why it is not a path.
pub fn parse_path(text: &str) -> Result<Vec<PathStep>, String> {
    let mut steps = Vec::new();
    for segment in text.trim().split('.') {
        let (name, mut rest) = match segment.find('[') {
            Some(i) => (&segment[..i], &segment[i..]),
            None => (segment, ""),
        };
        if !name.is_empty() {
            steps.push(PathStep::Key(name.to_string()));
        } else if rest.is_empty() {
            return Err(format!("`{text}` has an empty step"));
        }
        while let Some(after) = rest.strip_prefix('[') {
            let Some(end) = after.find(']') else {
                return Err(format!("`{text}`: `[` without `]`"));
            };
            let index = after[..end]
                .parse::<usize>()
                .map_err(|_| format!("`{text}`: `[{}]` is not an index", &after[..end]))?;
            steps.push(PathStep::Index(index));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            return Err(format!("`{text}`: unexpected `{rest}`"));
        }
    }
    if steps.is_empty() {
        return Err("the path is empty".into());
    }
    Ok(steps)
}

/// The value at `path` in `json`, as card text (a string, or a number written out).
pub fn pick(json: &serde_json::Value, path: &[PathStep]) -> Option<String> {
    let mut at = json;
    for step in path {
        at = match step {
            PathStep::Key(k) => at.get(k.as_str())?,
            PathStep::Index(i) => at.get(*i)?,
        };
    }
    let text = match at {
        serde_json::Value::String(s) => s.trim().to_string(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// A header name that usually carries a credential, which belongs in `headers_env`.
pub fn looks_secret(header: &str) -> bool {
    let h = header.to_ascii_lowercase();
    h == "authorization"
        || h == "cookie"
        || ["token", "secret", "key", "sign", "password", "auth"]
            .iter()
            .any(|w| h.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_and_pick() {
        let p = parse_path("data.cards[0].code").unwrap();
        let json = serde_json::json!({"data": {"cards": [{"code": "AB-12"}]}});
        assert_eq!(pick(&json, &p).as_deref(), Some("AB-12"));
        assert_eq!(
            pick(&json, &parse_path("data.cards[1].code").unwrap()),
            None
        );
        assert!(parse_path("data..x").is_err());
        assert!(parse_path("a[x]").is_err());
        assert_eq!(
            pick(&serde_json::json!({"n": 42}), &parse_path("n").unwrap()).as_deref(),
            Some("42")
        );
    }

    #[test]
    fn the_body_gets_the_idempotency_key_and_rendered_fields() {
        let call = SupplierCall {
            method: SupplierMethod::Post,
            url: SecretRef::Env("X".into()),
            headers: vec![],
            secret_headers: vec![],
            body: Some(serde_json::json!({"ref": "{{ order_id }}/{{ unit }}", "n": 1})),
        };
        let body = call.request_body(&SupplierFields::sample()).unwrap();
        assert_eq!(body["ref"], "3000000000000000001/1");
        assert_eq!(body["n"], 1);
        assert_eq!(body["idempotency_key"], "3000000000000000001-1");
        let bad = SupplierCall {
            body: Some(serde_json::json!({"x": "{{ ordr_id }}"})),
            ..call
        };
        assert!(bad.request_body(&SupplierFields::sample()).is_err());
    }
}
