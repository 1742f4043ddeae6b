//! The HTTP side: a hyper server on loopback that turns `POST /h5/<api>/<v>/?<query>` (form
//! body `data=…`; `GET` with `data` in the query is accepted too) into an [`MtopRequest`],
//! lets [`super::apis`] answer it, and writes the reply with its `Set-Cookie`s.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_ENCODING, CONTENT_TYPE, COOKIE, HeaderValue, LOCATION, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use super::apis::{self, MtopReply, MtopRequest};
use super::state::Shared;
use super::wire::{param, parse_pairs};
use crate::goofish::sign::Cookies;

/// Request bodies beyond this are refused; real mtop bodies are a few hundred bytes.
const MAX_BODY: usize = 1 << 20;

/// One mtop HTTP connection, served until it closes or the fake shuts down.
pub(crate) async fn connection(stream: tokio::net::TcpStream, shared: Arc<Shared>) {
    let cancel = shared.cancel.clone();
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, Infallible>(handle(req, &shared).await) }
    });
    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::select! {
        () = cancel.cancelled() => {}
        _ = conn => {}
    }
}

async fn handle(req: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    if req.uri().path() == super::upload::UPLOAD_PATH {
        return super::upload::handle(req, shared).await;
    }
    let Some((api, version)) = mtop_path(req.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    let cookies = request_cookies(&req);
    let headers = browser_headers(&req);
    let query = parse_pairs(req.uri().query().unwrap_or_default());
    let is_post = req.method() == Method::POST;
    let form = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => parse_pairs(&String::from_utf8_lossy(&body.to_bytes())),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "body too large"),
    };
    let data = if is_post { param(&form, "data") } else { None }.or_else(|| param(&query, "data"));
    let request = MtopRequest {
        api,
        version,
        t: param(&query, "t").map(str::to_owned),
        sign: param(&query, "sign").map(str::to_owned),
        data: data.map(str::to_owned),
        cookies,
        headers,
    };
    let reply = apis::answer(&mut shared.lock(), &request);
    if let Some(delay) = reply.delay {
        tokio::time::sleep(delay).await;
    }
    render(reply)
}

/// The request headers a browser's fingerprint shows in (never the cookie), lower-case.
fn browser_headers(req: &Request<Incoming>) -> Vec<(String, String)> {
    const NAMES: [&str; 5] = [
        "user-agent",
        "accept-encoding",
        "sec-ch-ua",
        "sec-ch-ua-mobile",
        "sec-ch-ua-platform",
    ];
    NAMES
        .iter()
        .filter_map(|n| {
            let v = req.headers().get(*n)?.to_str().ok()?;
            Some(((*n).to_owned(), v.to_owned()))
        })
        .collect()
}

/// `/h5/<api>/<v>/` → (api, v).
fn mtop_path(path: &str) -> Option<(String, String)> {
    let rest = path.strip_prefix("/h5/")?;
    let mut parts = rest.trim_end_matches('/').split('/');
    let (api, version) = (parts.next()?, parts.next()?);
    (parts.next().is_none() && !api.is_empty() && !version.is_empty())
        .then(|| (api.to_owned(), version.to_owned()))
}

/// All `Cookie` headers of the request as one jar (HTTP/1 clients send one, but two are legal).
pub(super) fn request_cookies(req: &Request<Incoming>) -> Cookies {
    let joined: Vec<&str> = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    Cookies::parse(&joined.join("; "))
}

fn render(reply: MtopReply) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::OK);
    let content_type = if status == StatusCode::OK {
        "application/json;charset=UTF-8"
    } else {
        "text/html"
    };
    let body = if reply.gzip {
        gzip(reply.body.as_bytes())
    } else {
        reply.body.into_bytes()
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    if reply.gzip {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    if let Some(location) = reply.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(LOCATION, location);
    }
    for cookie in reply.set_cookies {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            headers.append(SET_COOKIE, value);
        }
    }
    response
}

/// The gateway compresses like any web server when the client says it can read gzip.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(body);
    enc.finish().unwrap_or_default()
}

fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let ok = |a: &str, v: &str| Some((a.to_owned(), v.to_owned()));
        assert_eq!(mtop_path("/h5/mtop.a.b/1.0/"), ok("mtop.a.b", "1.0"));
        assert_eq!(mtop_path("/h5/mtop.a.b/1.0"), ok("mtop.a.b", "1.0"));
        assert_eq!(mtop_path("/h5/mtop.a.b/"), None);
        assert_eq!(mtop_path("/h5/a/1.0/x/"), None);
        assert_eq!(mtop_path("/other"), None);
    }
}
