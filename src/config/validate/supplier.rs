//! `products[].supplier`: the buying call, its answer path, timeout, retries and `return:`.

use super::*;
use crate::config::supplier::{
    DEFAULT_SUPPLIER_RETRIES, DEFAULT_SUPPLIER_TIMEOUT, SupplierCall, SupplierConfig,
    SupplierFields, SupplierMethod, looks_secret, parse_path,
};

/// More retries than this is a typo that would keep an order waiting for days.
const MAX_SUPPLIER_RETRIES: u32 = 10;

/// The fields of one call as written (the buying call and `return:` share them).
struct CallFields<'a> {
    method: Option<&'a str>,
    url: SecretKeys,
    headers: &'a BTreeMap<String, String>,
    headers_env: &'a BTreeMap<String, String>,
    body: Option<&'a serde_yaml::Value>,
}

impl Validator<'_> {
    pub(super) fn supplier(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        raw: Option<&raw::Supplier>,
        stock: &Stock,
    ) -> Option<SupplierConfig> {
        let raw = raw?;
        let spath = format!("{path}.supplier");
        if matches!(stock, Stock::Cards { .. }) {
            self.key_err(doc, &spath, format!("{path}: give either `cards`/`sku_cards` (a card pool) or `supplier` (cards bought at delivery time), not both"));
        }
        let call = self.supplier_call(
            doc,
            &spath,
            CallFields {
                method: raw.method.as_deref(),
                url: SecretKeys {
                    env: raw.url_env.clone(),
                    file: raw.url_file.clone(),
                },
                headers: &raw.headers,
                headers_env: &raw.headers_env,
                body: raw.body.as_ref(),
            },
        );
        let response = match parse_path(&raw.response) {
            Ok(p) => p,
            Err(e) => {
                self.err(doc, &format!("{spath}.response"), format!("{spath}.response: {e}; write where the card is in the JSON answer, like data.card or data.cards[0].code"));
                Vec::new()
            }
        };
        let timeout = self.duration(
            doc,
            &format!("{spath}.timeout"),
            raw.timeout.as_deref(),
            DEFAULT_SUPPLIER_TIMEOUT,
        );
        if timeout.is_zero() {
            self.err(
                doc,
                &format!("{spath}.timeout"),
                format!("{spath}.timeout: must be longer than 0s"),
            );
        }
        let retries = raw.retries.unwrap_or(DEFAULT_SUPPLIER_RETRIES);
        if retries > MAX_SUPPLIER_RETRIES {
            self.err(
                doc,
                &format!("{spath}.retries"),
                format!("{spath}.retries: at most {MAX_SUPPLIER_RETRIES} (got {retries})"),
            );
        }
        let return_call = raw.return_call.as_ref().and_then(|r| {
            self.supplier_call(
                doc,
                &format!("{spath}.return"),
                CallFields {
                    method: r.method.as_deref(),
                    url: SecretKeys {
                        env: r.url_env.clone(),
                        file: r.url_file.clone(),
                    },
                    headers: &r.headers,
                    headers_env: &r.headers_env,
                    body: r.body.as_ref(),
                },
            )
        });
        Some(SupplierConfig {
            call: call?,
            response,
            response_text: raw.response.trim().to_string(),
            timeout,
            retries: retries.min(MAX_SUPPLIER_RETRIES),
            return_call,
        })
    }

    fn supplier_call(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        raw: CallFields<'_>,
    ) -> Option<SupplierCall> {
        let method = match raw.method.map(|m| m.trim().to_ascii_uppercase()).as_deref() {
            None | Some("POST") => SupplierMethod::Post,
            Some("GET") => SupplierMethod::Get,
            Some(other) => {
                self.field_err(
                    doc,
                    path,
                    "method",
                    format!("`{other}` is not supported; write GET or POST"),
                );
                SupplierMethod::Post
            }
        };
        let url = self.secret(doc, path, "url", &raw.url);
        let mut headers = Vec::new();
        for (name, value) in raw.headers {
            let hpath = format!("{path}.headers.{name}");
            if looks_secret(name) {
                self.key_err(doc, &hpath, format!("{hpath}: `{name}` looks like a credential; write it as headers_env: {{ {name}: VARIABLE }} so its value stays out of git"));
            } else if !header_ok(name, value) {
                self.err(doc, &hpath, format!("{hpath}: not a valid HTTP header"));
            }
            headers.push((name.clone(), value.clone()));
        }
        let mut secret_headers = Vec::new();
        for (name, var) in raw.headers_env {
            let hpath = format!("{path}.headers_env.{name}");
            let keys = SecretKeys {
                env: Some(var.clone()),
                file: None,
            };
            let (secret, finding) = keys.check(self.dir, &hpath, "value");
            if finding.is_some() || !header_ok(name, "x") {
                self.err(doc, &hpath, format!("{hpath}: `{var}` is not an environment variable name (write the variable that holds the header's value)"));
            }
            if let Some(secret) = secret {
                secret_headers.push((name.clone(), secret));
            }
        }
        let body = raw
            .body
            .and_then(|b| self.supplier_body(doc, path, method, b));
        let call = SupplierCall {
            method,
            url: url?,
            headers,
            secret_headers,
            body,
        };
        let mut sample = SupplierFields::sample();
        if !path.ends_with(".return") {
            sample.card.clear();
        }
        if let Err(e) = call.request_body(&sample) {
            self.field_err(doc, path, "body", format!("{e} (usable: order_id, unit, units, item_id, sku, quantity, buyer_id, amount, idempotency_key, and card in return:)"));
        }
        Some(call)
    }

    fn supplier_body(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        method: SupplierMethod,
        body: &serde_yaml::Value,
    ) -> Option<serde_json::Value> {
        let bpath = format!("{path}.body");
        let json = match serde_json::to_value(body) {
            Ok(j) => j,
            Err(e) => {
                self.err(doc, &bpath, format!("{bpath}: cannot be sent as JSON: {e}"));
                return None;
            }
        };
        if method == SupplierMethod::Get && !json.is_object() {
            self.err(doc, &bpath, format!("{bpath}: a GET request sends its body as query parameters, so write a map (name: value)"));
        }
        Some(json)
    }
}

fn header_ok(name: &str, value: &str) -> bool {
    reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_ok()
        && reqwest::header::HeaderValue::from_str(value).is_ok()
}
