//! SMS through Tencent Cloud `SendSms` (2021-01-11), signed with TC3-HMAC-SHA256 over
//! `content-type;host;x-tc-action`. Template parameters are the alert's short facts, in the
//! order `params:` lists them.
//!
//! Verdicts: every `SendStatusSet[].Code == "Ok"` accepted (some Ok is also accepted, since a
//! retry would text the numbers that already got it); request errors `AuthFailure.*`,
//! `InvalidParameter*`, `FailedOperation.*`, `UnauthorizedOperation.*` permanent;
//! `RequestLimitExceeded*`, `InternalError*` retryable; `LimitExceeded.*` (per-number
//! frequency) quota.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::http::{self, Reply};
use super::{
    BuildError, Channel, Check, Limits, Notification, Scalar, SendResult, SmsTarget, Vendor, sign,
};
use crate::secret::SecretKeys;

/// Conservative: Tencent's per-variable limits depend on the template type.
pub const PARAM_MAX_CHARS: usize = 20;
const QUOTA_WAIT_MS: u64 = 60 * 60 * 1000;
const CONTENT_TYPE: &str = "application/json; charset=utf-8";
const SIGNED_HEADERS: &str = "content-type;host;x-tc-action";

/// `type: tencent_sms`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub endpoint: Option<String>,
    pub secret_id: SecretKeys,
    pub secret_key: SecretKeys,
    pub sdk_app_id: Option<Scalar>,
    pub sign_name: Option<String>,
    pub template_id: Option<Scalar>,
    pub phone_numbers: Vec<Scalar>,
    pub region: Option<String>,
    pub params: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub endpoint: String,
    pub sdk_app_id: String,
    pub sign_name: String,
    pub template_id: String,
    pub region: String,
    /// Phone numbers, `TemplateParamSet` facts, and the SecretId and SecretKey.
    pub target: SmsTarget,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = TencentSmsChannel;
    const SECRETS: &'static [&'static str] = &["secret_id", "secret_key"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let endpoint = c.url(
            "endpoint",
            raw.endpoint.as_deref(),
            "https://sms.tencentcloudapi.com",
        );
        let sdk_app_id = c.required("sdk_app_id", raw.sdk_app_id.as_ref().map(Scalar::text));
        let sign_name = c.required("sign_name", raw.sign_name.clone());
        let template_id = c.required("template_id", raw.template_id.as_ref().map(Scalar::text));
        let target = c.sms_target(
            &raw.phone_numbers,
            &raw.params,
            ("secret_id", &raw.secret_id),
            ("secret_key", &raw.secret_key),
        );
        Some(Spec {
            endpoint,
            sdk_app_id: sdk_app_id?,
            sign_name: sign_name?,
            template_id: template_id?,
            region: raw.region.clone().unwrap_or_else(|| "ap-guangzhou".into()),
            target: target?,
        })
    }

    fn sender(
        &self,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<TencentSmsChannel, BuildError> {
        let url = format!("{}/", self.endpoint.trim_end_matches('/'));
        let parsed = reqwest::Url::parse(&url)
            .map_err(|e| BuildError::Invalid(format!("Tencent SMS endpoint: {e}")))?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => {
                return Err(BuildError::Invalid(
                    "Tencent SMS endpoint has no host".into(),
                ));
            }
        };
        Ok(TencentSmsChannel {
            http,
            url,
            host,
            secret_id: self.target.keys.0.resolve()?,
            secret_key: self.target.keys.1.resolve()?,
            spec: self.clone(),
            timeout,
        })
    }
}

pub struct TencentSmsChannel {
    http: reqwest::Client,
    url: String,
    host: String,
    secret_id: String,
    secret_key: String,
    spec: Spec,
    timeout: Duration,
}

/// Field order matters only for readability; the signature covers the exact bytes sent.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendSmsBody {
    pub phone_number_set: Vec<String>,
    pub sms_sdk_app_id: String,
    pub sign_name: String,
    pub template_id: String,
    pub template_param_set: Vec<String>,
}

impl TencentSmsChannel {
    pub fn body(&self, n: &Notification) -> SendSmsBody {
        SendSmsBody {
            phone_number_set: self
                .spec
                .target
                .phone_numbers
                .iter()
                .map(|p| e164(p))
                .collect(),
            sms_sdk_app_id: self.spec.sdk_app_id.clone(),
            sign_name: self.spec.sign_name.clone(),
            template_id: self.spec.template_id.clone(),
            template_param_set: self
                .spec
                .target
                .params
                .iter()
                .map(|p| n.var(p, PARAM_MAX_CHARS))
                .collect(),
        }
    }
}

/// Mainland numbers without a country code get `+86`.
fn e164(phone: &str) -> String {
    if phone.starts_with('+') {
        phone.to_string()
    } else {
        format!("+86{phone}")
    }
}

/// The `Authorization` header for `body` sent at `timestamp` (unix seconds).
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    body: &[u8],
    timestamp: u64,
) -> String {
    let canonical = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\nx-tc-action:sendsms\n\n{SIGNED_HEADERS}\n{}",
        sign::sha256_hex(body)
    );
    let date = &crate::clock::format_ms(timestamp * 1000)[..10];
    let scope = format!("{date}/sms/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        sign::sha256_hex(canonical.as_bytes())
    );
    let k_date = sign::hmac_sha256(format!("TC3{secret_key}").as_bytes(), date.as_bytes());
    let k_service = sign::hmac_sha256(&k_date, b"sms");
    let k_signing = sign::hmac_sha256(&k_service, b"tc3_request");
    let signature = hex::encode(sign::hmac_sha256(&k_signing, to_sign.as_bytes()));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={SIGNED_HEADERS}, Signature={signature}"
    )
}

#[async_trait::async_trait]
impl Channel for TencentSmsChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let body = serde_json::to_vec(&self.body(n)).unwrap_or_default();
        let ts = http::unix_now_ms() / 1000;
        let req = self
            .http
            .post(&self.url)
            .header("content-type", CONTENT_TYPE)
            .header("x-tc-action", "SendSms")
            .header("x-tc-version", "2021-01-11")
            .header("x-tc-region", &self.spec.region)
            .header("x-tc-timestamp", ts.to_string())
            .header(
                "authorization",
                authorization(&self.secret_id, &self.secret_key, &self.host, &body, ts),
            )
            .body(body);
        http::exchange(req, self.timeout, classify).await
    }
}

pub fn classify(reply: &Reply) -> SendResult {
    let Some(body) = reply.json() else {
        return http::no_code(reply);
    };
    let resp = &body["Response"];
    if let Some(code) = resp["Error"]["Code"].as_str() {
        return by_code(code);
    }
    let Some(set) = resp["SendStatusSet"].as_array() else {
        return http::no_code(reply);
    };
    let failed: Vec<&str> = set
        .iter()
        .filter_map(|s| s["Code"].as_str())
        .filter(|c| *c != "Ok")
        .collect();
    match failed.first() {
        None if !set.is_empty() => SendResult::Accepted,
        None => SendResult::permanent("empty SendStatusSet"),
        Some(_) if failed.len() < set.len() => {
            tracing::warn!(
                failed = failed.len(),
                of = set.len(),
                "Tencent SMS reached only some numbers."
            );
            SendResult::Accepted
        }
        Some(code) => by_code(code),
    }
}

fn by_code(code: &str) -> SendResult {
    let error = format!("Code {code}");
    if code.starts_with("RequestLimitExceeded")
        || code.starts_with("InternalError")
        || code == "AuthFailure.SignatureExpire"
    {
        SendResult::retryable(error, None)
    } else if code.starts_with("LimitExceeded") {
        SendResult::quota(error, Some(QUOTA_WAIT_MS))
    } else {
        SendResult::permanent(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_sendsms_vector() {
        let body = r#"{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666","SignName":"腾讯云","TemplateId":"1110","TemplateParamSet":["4370"]}"#;
        assert_eq!(
            sign::sha256_hex(body.as_bytes()),
            "1369c481774d15387c6e3dc5fc16858229a6fbf23fcc63612c90980b1def0737"
        );
        let typed = SendSmsBody {
            phone_number_set: vec![e164("13800138000")],
            sms_sdk_app_id: "1400006666".into(),
            sign_name: "腾讯云".into(),
            template_id: "1110".into(),
            template_param_set: vec!["4370".into()],
        };
        assert_eq!(serde_json::to_string(&typed).unwrap(), body);
        let auth = authorization(
            "AKIDEXAMPLE",
            "SecretKeyEXAMPLE",
            "sms.tencentcloudapi.com",
            body.as_bytes(),
            1_700_000_000,
        );
        assert!(
            auth.starts_with("TC3-HMAC-SHA256 Credential=AKIDEXAMPLE/2023-11-14/sms/tc3_request, "),
            "{auth}"
        );
        assert!(
            auth.ends_with(
                "Signature=8fd2dacbec62434b783796e7c86d8f89092118cef5707c9961fb0cfea811fb50"
            ),
            "{auth}"
        );
    }
}
