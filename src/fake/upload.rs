//! The image upload endpoint (reference §3.8), served on the fake's HTTP port at
//! `/api/upload.api`: `POST ?floderId=0&appkey=xy_chat&_input_charset=utf-8`, a
//! `multipart/form-data` body whose `file` part is the image, the account's cookies. The answer
//! is `{"success":true,"object":{"url":"<CDN url>","pix":"<w>x<h>"}}`.
//!
//! Compared with `cv-cat/XianYuApis` `goofish_apis.py` (`upload_media`: the query, the `file`
//! part, `object.url` and `object.pix` read by `public`) and zhinianboke/xianyu-auto-reply
//! `utils/image_uploader.py` (the same URL and field; it reads `object.url` and also tries
//! `data.url`, `url`, `result.url`). What a refusal looks like is in no capture: the fake
//! answers `success: false` with an `errorCode` for a missing session or a file that is not
//! an image (assumed), and the gateway's HTML 502 for [`super::Fault::FailUploads`].

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::json;

use super::record::FakeUpload;
use super::state::Shared;
use super::wire::{param, parse_pairs};

pub(crate) const UPLOAD_PATH: &str = "/api/upload.api";
/// Bodies beyond this are refused (the daemon sends at most 5 MB images).
const MAX_UPLOAD: usize = 8 << 20;

/// One upload request.
pub(crate) async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let query = parse_pairs(req.uri().query().unwrap_or_default());
    let cookies = super::http::request_cookies(&req);
    let boundary = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(boundary_of);
    let post = req.method() == Method::POST;
    let body = match Limited::new(req.into_body(), MAX_UPLOAD).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return reply(StatusCode::PAYLOAD_TOO_LARGE, "body too large".into()),
    };
    let user = cookies.user_id().map(str::to_owned);
    let file = boundary.as_deref().and_then(|b| file_part(&body, b));
    let ok_query = param(&query, "appkey").is_some() && param(&query, "floderId").is_some();
    let answer = {
        let mut st = shared.lock();
        let user = user.as_deref();
        st.record.mtop_call(user, "upload.api");
        let session = super::apis::session_user(&st, &cookies);
        let mut record = FakeUpload {
            account: session.clone().unwrap_or_default(),
            file_name: file.as_ref().map(|f| f.name.clone()).unwrap_or_default(),
            mime: file.as_ref().map(|f| f.mime.clone()).unwrap_or_default(),
            bytes: file.as_ref().map_or(0, |f| f.bytes.len()),
            url: String::new(),
        };
        if st.faults.take_failed_upload(user) {
            st.record.uploads.push(record);
            None
        } else if st.faults.stall_uploads(user) {
            st.record.uploads.push(record);
            Some(None)
        } else {
            let answer = match (post && ok_query, session, file) {
                (false, _, _) => json!({"success": false, "errorCode": "PARAM_ERROR"}),
                (true, None, _) => json!({"success": false, "errorCode": "NOT_LOGIN"}),
                (true, Some(_), None) => json!({"success": false, "errorCode": "NO_FILE"}),
                (true, Some(account), Some(file)) => match imagesize::blob_size(&file.bytes) {
                    Ok(size) => {
                        let url = st.ids.cdn_url(&account, &file.name);
                        record.url.clone_from(&url);
                        json!({"success": true, "object": {
                            "url": url,
                            "pix": format!("{}x{}", size.width, size.height),
                            "size": file.bytes.len(),
                        }})
                    }
                    Err(_) => json!({"success": false, "errorCode": "FILE_TYPE_ERROR"}),
                },
            };
            st.record.uploads.push(record);
            Some(Some(answer))
        }
    };
    match answer {
        None => {
            let html = "<html><body><h1>502 Bad Gateway</h1></body></html>";
            reply(StatusCode::BAD_GATEWAY, html.into())
        }
        Some(None) => {
            // Never answered: the client's timeout decides.
            shared.cancel.cancelled().await;
            reply(StatusCode::SERVICE_UNAVAILABLE, String::new())
        }
        Some(Some(answer)) => reply(StatusCode::OK, answer.to_string()),
    }
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let kind = if status == StatusCode::OK {
        "application/json;charset=UTF-8"
    } else {
        "text/html"
    };
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

/// `multipart/form-data; boundary=XYZ` → `XYZ`.
fn boundary_of(content_type: &str) -> Option<String> {
    let (kind, rest) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    rest.split(';').find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.eq_ignore_ascii_case("boundary")
            .then(|| v.trim_matches('"').to_string())
    })
}

/// The `file` part of a multipart body.
struct FilePart {
    name: String,
    mime: String,
    bytes: Vec<u8>,
}

fn file_part(body: &[u8], boundary: &str) -> Option<FilePart> {
    let delimiter = format!("--{boundary}");
    let mut rest = body;
    loop {
        let start = find(rest, delimiter.as_bytes())? + delimiter.len();
        rest = &rest[start..];
        if rest.starts_with(b"--") {
            return None; // the closing delimiter: no `file` part
        }
        let head_end = find(rest, b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&rest[..head_end]).to_string();
        let content = &rest[head_end + 4..];
        let end = find(content, format!("\r\n{delimiter}").as_bytes())?;
        let is_file = head.lines().any(|l| {
            l.to_ascii_lowercase().starts_with("content-disposition:")
                && l.contains("name=\"file\"")
        });
        if is_file {
            let header = |name: &str| {
                head.lines().find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| v.trim().to_string())
                })
            };
            let disposition = header("content-disposition").unwrap_or_default();
            let name = disposition
                .split(';')
                .find_map(|p| p.trim().strip_prefix("filename="))
                .map(|v| v.trim_matches('"').to_string())
                .unwrap_or_default();
            return Some(FilePart {
                name,
                mime: header("content-type").unwrap_or_default(),
                bytes: content[..end].to_vec(),
            });
        }
        rest = &content[end..];
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_file_part() {
        let body = b"--XX\r\nContent-Disposition: form-data; name=\"other\"\r\n\r\nv\r\n--XX\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--XX--\r\n";
        let part = file_part(body, "XX").unwrap();
        assert_eq!(part.name, "a.png");
        assert_eq!(part.mime, "image/png");
        assert_eq!(part.bytes, b"\x89PNG");
        assert!(file_part(b"--XX--\r\n", "XX").is_none());
        assert_eq!(
            boundary_of("multipart/form-data; boundary=\"XX\"").as_deref(),
            Some("XX")
        );
        assert_eq!(boundary_of("text/plain"), None);
    }
}
