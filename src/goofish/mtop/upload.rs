//! The image upload (reference §3.8): `POST <upload_url>?floderId=0&appkey=xy_chat&_input_charset=utf-8`,
//! multipart field `file`, the account's cookies, Origin/Referer `https://www.goofish.com/`; the
//! answer's `object.url` is the CDN URL and `object.pix` is `<width>x<height>`
//! (`cv-cat/XianYuApis` `goofish_apis.py` `upload_media`; zhinianboke/xianyu-auto-reply
//! `utils/image_uploader.py`, which also accepts `data.url`, `url` and `result.url`).
//!
//! Not an mtop call (no `sign`, no `ret` envelope), but it rides on the same cookie jar and
//! login state: while the account is blocked it fails fast without touching the network.

use serde_json::Value;

use super::client::network_error;
use super::{MtopClient, MtopError};

/// Where an uploaded image lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadedPic {
    pub url: String,
    /// `object.pix`, when the answer had one.
    pub size: Option<(u32, u32)>,
}

impl MtopClient {
    /// Upload one image file; the CDN URL and its pixel size.
    pub async fn upload_image(
        &self,
        file_name: &str,
        mime: &str,
        bytes: &[u8],
    ) -> Result<UploadedPic, MtopError> {
        self.check_usable()?;
        let cookie = self
            .cookie_header()
            .ok_or_else(|| MtopError::NoCookies("cookies not loaded".into()))?;
        let part = reqwest::multipart::Part::bytes(bytes.to_vec())
            .file_name(file_name.to_string())
            .mime_str(mime)
            .map_err(|e| MtopError::BadResponse(format!("bad image type: {e}")))?;
        let form = reqwest::multipart::Form::new().part("file", part);
        let mut cookie_value = reqwest::header::HeaderValue::from_str(&cookie)
            .map_err(|_| MtopError::NoCookies("the cookie string is not a valid header".into()))?;
        cookie_value.set_sensitive(true);
        let mut url = reqwest::Url::parse(&self.upload_url)
            .map_err(|e| MtopError::BadResponse(format!("bad upload URL: {e}")))?;
        url.query_pairs_mut()
            .append_pair("floderId", "0")
            .append_pair("appkey", "xy_chat")
            .append_pair("_input_charset", "utf-8");
        let response = self
            .http
            .post(url)
            .header("accept", "*/*")
            .header("origin", "https://www.goofish.com")
            .header("referer", "https://www.goofish.com/")
            .header("user-agent", self.user_agent())
            .header(reqwest::header::COOKIE, cookie_value)
            .timeout(self.upload_timeout)
            .multipart(form)
            .send()
            .await
            .map_err(network_error)?;
        let status = response.status().as_u16();
        self.merge_set_cookies(response.headers());
        if status != 200 {
            return Err(MtopError::Http(status));
        }
        let body = response.bytes().await.map_err(network_error)?;
        parse_upload(&body)
    }
}

/// Read an upload answer: the URL from `object.url` (or where zn also looks), the size from
/// `object.pix`. An answer that says `success: false` is a business failure.
pub(super) fn parse_upload(body: &[u8]) -> Result<UploadedPic, MtopError> {
    let answer: Value = serde_json::from_slice(body)
        .map_err(|_| MtopError::BadResponse("upload answer is not JSON".into()))?;
    if answer.get("success").and_then(Value::as_bool) == Some(false) {
        let code = ["errorCode", "code", "message", "msg"]
            .iter()
            .find_map(|k| answer.get(*k).and_then(Value::as_str))
            .unwrap_or("success=false");
        return Err(MtopError::Business {
            api: "upload.api".into(),
            ret: code.to_string(),
        });
    }
    let url = ["/object/url", "/data/url", "/url", "/result/url"]
        .iter()
        .find_map(|p| answer.pointer(p).and_then(Value::as_str))
        .filter(|u| !u.is_empty())
        .ok_or_else(|| MtopError::BadResponse("upload answer has no url".into()))?;
    let size = answer
        .pointer("/object/pix")
        .and_then(Value::as_str)
        .and_then(|pix| {
            let (w, h) = pix.split_once('x')?;
            Some((w.trim().parse().ok()?, h.trim().parse().ok()?))
        });
    Ok(UploadedPic {
        url: url.to_string(),
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers() {
        let ok = parse_upload(
            br#"{"success":true,"object":{"url":"https://img.alicdn.com/a.png","pix":"800x600"}}"#,
        )
        .unwrap();
        assert_eq!(ok.url, "https://img.alicdn.com/a.png");
        assert_eq!(ok.size, Some((800, 600)));
        let zn = parse_upload(br#"{"data":{"url":"https://x/b.jpg"}}"#).unwrap();
        assert_eq!(zn.size, None);
        assert!(matches!(
            parse_upload(br#"{"success":false,"errorCode":"FILE_TOO_LARGE"}"#),
            Err(MtopError::Business { ret, .. }) if ret == "FILE_TOO_LARGE"
        ));
        assert!(matches!(
            parse_upload(b"<html>"),
            Err(MtopError::BadResponse(_))
        ));
        assert!(matches!(
            parse_upload(br#"{"object":{}}"#),
            Err(MtopError::BadResponse(_))
        ));
    }
}
