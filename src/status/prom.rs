//! `/metrics`: the process-wide counters plus gauges read from the store at scrape time.

use hyper::{Response, StatusCode};

use super::http::{self, Body};
use super::{Server, model};
use crate::metrics::{self, Sample};

pub(crate) async fn metrics(server: &Server) -> Response<Body> {
    let mut extra = match server.snapshots.view().await {
        Ok(view) => model::gauges(&view),
        Err(e) => {
            // Counters are still worth scraping when the store cannot be read.
            tracing::warn!(error = %e, "Metrics cannot read the store.");
            Vec::new()
        }
    };
    extra.push(Sample::new(
        metrics::PROCESS_RSS,
        &[],
        metrics::process_rss_bytes() as i64,
    ));
    let text = metrics::global().render_with(&extra);
    http::response(
        StatusCode::OK,
        "text/plain; version=0.0.4; charset=utf-8",
        text,
    )
}
