//! `/export/orders.csv?from=&to=`: the orders created in a range of days (the statistics
//! zone's days, default the last 30) as CSV for Excel, streamed in chunks from one read
//! transaction (see `stats::csv`). Behind the same token rules as every page; never a key.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

use crate::stats::csv::CsvChunks;
use crate::stats::{self, Query};
use crate::store::rollup_facts;

use super::Server;
use super::http::{self, Body};

/// A chunk goes out once this much is written.
const CHUNK: usize = 64 * 1024;

pub(crate) async fn orders_csv(server: &Server, query: &[(String, String)]) -> Response<Body> {
    let store = server.ctx.store.clone();
    let asked = (
        http::query_get(query, "from").map(String::from),
        http::query_get(query, "to").map(String::from),
    );
    let setup = store
        .call(|s| Ok((stats::today(s)?, s.stats_zone()?)))
        .await;
    let (today, zone_name) = match setup {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(error = %e, "The orders export cannot read the store.");
            return http::text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "无法读取店铺数据，详情见日志。\n",
            );
        }
    };
    let q = match Query::parse(asked.0.as_deref(), asked.1.as_deref(), None, None, today) {
        Ok(q) => q,
        Err(e) => return http::text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let zone = rollup_facts::zone(&zone_name).unwrap_or(jiff::tz::TimeZone::UTC);
    let titles: HashMap<String, String> = server
        .ctx
        .config
        .load()
        .products
        .iter()
        .map(|(id, p)| (id.clone(), p.title.clone()))
        .collect();
    let (start, end) = (q.from.start_ms(&zone), q.to.add(1).start_ms(&zone));
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let filename = format!("orders-{}-{}.csv", q.from.label(), q.to.label());
    tokio::task::spawn_blocking(move || {
        let mut chunks = CsvChunks::new(zone);
        let read = store.each_order(|o| {
            if o.created_time >= start && o.created_time < end {
                chunks.push(
                    o,
                    o.item_id
                        .as_deref()
                        .and_then(|id| titles.get(id))
                        .map(String::as_str),
                );
            }
            // A client that went away stops the scan.
            chunks.len() < CHUNK || tx.blocking_send(Bytes::from(chunks.take())).is_ok()
        });
        if let Err(e) = read {
            tracing::warn!(error = %e, "The orders export stopped: the store could not be read.");
            return;
        }
        let _ = tx.blocking_send(Bytes::from(chunks.take()));
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = http::response(StatusCode::OK, "text/csv; charset=utf-8", Bytes::new());
    *resp.body_mut() = StreamBody::new(stream).boxed_unsync();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{filename}\"")) {
        resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    resp
}
