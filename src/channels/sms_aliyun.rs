//! SMS through Aliyun Dysmsapi `SendSms`, signed with the RPC v1 signature (HMAC-SHA1), sent
//! as a POST form. The seller's approved *notification* template gets the alert's short facts
//! as `TemplateParam` (`params:` picks which; values are strings, cut to 35 characters).
//!
//! Verdicts by `Code`: `OK` accepted; `isv.BUSINESS_LIMIT_CONTROL` / `isv.DAY_LIMIT_CONTROL`
//! quota (50 per number and template per day: fall back, do not hammer); `isp.SYSTEM_ERROR`,
//! `Throttling*`, `InvalidTimeStamp.Expired`, `SignatureNonceUsed` retryable (the next attempt
//! has a fresh timestamp and nonce); everything else permanent. Only the code is kept: the
//! `SignatureDoesNotMatch` message echoes the string-to-sign with key id and phone numbers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::http::{self, Reply};
use super::{
    BuildError, Channel, Check, Limits, Notification, Scalar, SendResult, SmsTarget, Vendor, sign,
};
use crate::secret::SecretKeys;

/// Aliyun limits each template variable to 35 characters.
pub const PARAM_MAX_CHARS: usize = 35;
const QUOTA_WAIT_MS: u64 = 60 * 60 * 1000;

/// `type: aliyun_sms`, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub endpoint: Option<String>,
    pub access_key_id: SecretKeys,
    pub access_key_secret: SecretKeys,
    pub sign_name: Option<String>,
    pub template_code: Option<String>,
    pub phone_numbers: Vec<Scalar>,
    pub region: Option<String>,
    pub params: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub endpoint: String,
    pub sign_name: String,
    pub template_code: String,
    pub region: String,
    /// Phone numbers, template variables, and the AccessKey id and secret.
    pub target: SmsTarget,
}

impl Vendor for Spec {
    type Raw = Raw;
    type Extra = Limits;
    type Sender = AliyunSmsChannel;
    const SECRETS: &'static [&'static str] = &["access_key_id", "access_key_secret"];

    fn check(raw: &Raw, c: &mut Check<'_>) -> Option<Self> {
        let endpoint = c.url(
            "endpoint",
            raw.endpoint.as_deref(),
            "https://dysmsapi.aliyuncs.com",
        );
        let sign_name = c.required("sign_name", raw.sign_name.clone());
        let template_code = c.required("template_code", raw.template_code.clone());
        let target = c.sms_target(
            &raw.phone_numbers,
            &raw.params,
            ("access_key_id", &raw.access_key_id),
            ("access_key_secret", &raw.access_key_secret),
        );
        Some(Spec {
            endpoint,
            sign_name: sign_name?,
            template_code: template_code?,
            region: raw.region.clone().unwrap_or_else(|| "cn-hangzhou".into()),
            target: target?,
        })
    }

    fn sender(
        &self,
        http: reqwest::Client,
        timeout: Duration,
    ) -> Result<AliyunSmsChannel, BuildError> {
        Ok(AliyunSmsChannel {
            http,
            url: format!("{}/", self.endpoint.trim_end_matches('/')),
            key_id: self.target.keys.0.resolve()?,
            key_secret: self.target.keys.1.resolve()?,
            spec: self.clone(),
            timeout,
        })
    }
}

pub struct AliyunSmsChannel {
    http: reqwest::Client,
    url: String,
    key_id: String,
    key_secret: String,
    spec: Spec,
    timeout: Duration,
}

impl AliyunSmsChannel {
    /// Every request parameter but `Signature`.
    pub fn params(
        &self,
        n: &Notification,
        timestamp: &str,
        nonce: &str,
    ) -> BTreeMap<String, String> {
        let template_param: BTreeMap<&str, String> = self
            .spec
            .target
            .params
            .iter()
            .map(|p| (p.as_str(), n.var(p, PARAM_MAX_CHARS)))
            .collect();
        [
            ("AccessKeyId", self.key_id.clone()),
            ("Action", "SendSms".into()),
            ("Format", "JSON".into()),
            ("OutId", n.id.to_string()),
            ("PhoneNumbers", self.spec.target.phone_numbers.join(",")),
            ("RegionId", self.spec.region.clone()),
            ("SignName", self.spec.sign_name.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", nonce.into()),
            ("SignatureVersion", "1.0".into()),
            ("TemplateCode", self.spec.template_code.clone()),
            (
                "TemplateParam",
                serde_json::to_string(&template_param).unwrap_or_default(),
            ),
            ("Timestamp", timestamp.into()),
            ("Version", "2017-05-25".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

/// The canonicalized query string: parameters sorted by name, both sides RFC 3986-encoded.
pub fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", sign::percent_encode(k), sign::percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// `Base64(HMAC-SHA1(secret + "&", METHOD + "&%2F&" + encode(canonical)))`.
pub fn signature(method: &str, canonical: &str, secret: &str) -> String {
    let to_sign = format!(
        "{method}&{}&{}",
        sign::percent_encode("/"),
        sign::percent_encode(canonical)
    );
    sign::base64(&sign::hmac_sha1(
        format!("{secret}&").as_bytes(),
        to_sign.as_bytes(),
    ))
}

/// UTC `yyyy-MM-ddTHH:mm:ssZ`.
pub fn timestamp_now() -> String {
    crate::clock::format_ms(http::unix_now_ms())
}

#[async_trait::async_trait]
impl Channel for AliyunSmsChannel {
    async fn send(&self, n: &Notification) -> SendResult {
        let params = self.params(n, &timestamp_now(), &sign::nonce());
        let canonical = canonical_query(&params);
        let sig = signature("POST", &canonical, &self.key_secret);
        let body = format!("{canonical}&Signature={}", sign::percent_encode(&sig));
        let req = self
            .http
            .post(&self.url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        http::exchange(req, self.timeout, classify).await
    }
}

pub fn classify(reply: &Reply) -> SendResult {
    let Some(body) = reply.json() else {
        return http::no_code(reply);
    };
    let Some(code) = body["Code"].as_str() else {
        return http::no_code(reply);
    };
    let error = format!("Code {code}");
    match code {
        "OK" => SendResult::Accepted,
        "isv.BUSINESS_LIMIT_CONTROL" | "isv.DAY_LIMIT_CONTROL" => {
            SendResult::quota(error, Some(QUOTA_WAIT_MS))
        }
        "isp.SYSTEM_ERROR"
        | "InvalidTimeStamp.Expired"
        | "SignatureNonceUsed"
        | "ServiceUnavailable" => SendResult::retryable(error, None),
        c if c.starts_with("Throttling") => SendResult::retryable(error, None),
        _ if reply.status.is_server_error() => SendResult::retryable(error, None),
        _ => SendResult::permanent(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The official worked example (reference §10a) must reproduce byte for byte.
    #[test]
    fn official_worked_example() {
        let params: BTreeMap<String, String> = [
            ("AccessKeyId", "testId"),
            ("Action", "SendSms"),
            ("Format", "XML"),
            ("OutId", "123"),
            ("PhoneNumbers", "15300000001"),
            ("RegionId", "cn-hangzhou"),
            ("SignName", "阿里云短信测试专用"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "45e25e9b-0a6f-4070-8c85-2956eda1b466"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", "SMS_71390007"),
            ("TemplateParam", "{\"customer\":\"test\"}"),
            ("Timestamp", "2017-07-12T02:42:19Z"),
            ("Version", "2017-05-25"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let canonical = canonical_query(&params);
        assert_eq!(
            canonical,
            "AccessKeyId=testId&Action=SendSms&Format=XML&OutId=123&PhoneNumbers=15300000001&RegionId=cn-hangzhou&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95%E4%B8%93%E7%94%A8&SignatureMethod=HMAC-SHA1&SignatureNonce=45e25e9b-0a6f-4070-8c85-2956eda1b466&SignatureVersion=1.0&TemplateCode=SMS_71390007&TemplateParam=%7B%22customer%22%3A%22test%22%7D&Timestamp=2017-07-12T02%3A42%3A19Z&Version=2017-05-25"
        );
        let sig = signature("GET", &canonical, "testSecret");
        assert_eq!(sig, "zJDF+Lrzhj/ThnlvIToysFRq6t4=");
        assert_eq!(
            sign::percent_encode(&sig),
            "zJDF%2BLrzhj%2FThnlvIToysFRq6t4%3D"
        );
    }

    #[test]
    fn sdk_unit_vector() {
        let params: BTreeMap<String, String> = [("query", "test"), ("body", "test")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(
            signature("GET", &canonical_query(&params), "secret"),
            "XlUyV4sXjOuX5FnjUz9IF9tm5rU="
        );
    }
}
