//! `/metrics`: the process-wide counters plus gauges read from the cached store view.

use hyper::{Response, StatusCode};

use crate::metrics::{self, Sample};
use crate::store::CardState;
use crate::store::views::ShopView;

use super::Server;
use super::http::{self, Body};

pub(crate) async fn metrics(server: &Server) -> Response<Body> {
    let mut extra = match server.snapshots.view().await {
        Ok(view) => gauges(&view),
        Err(e) => {
            // Counters are still worth scraping when the store cannot be read.
            tracing::warn!(error = %e, "Metrics cannot read the store.");
            Vec::new()
        }
    };
    extra.push(Sample::new(
        metrics::STORE_COMMITS,
        &[],
        server.ctx.store.commit_count() as i64,
    ));
    extra.push(Sample::new(
        metrics::STORE_FSYNCS,
        &[],
        server.ctx.store.fsync_count() as i64,
    ));
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

/// Gauges derived from a view: orders, ledger, outbox, pools, counted stock, queue.
fn gauges(view: &ShopView) -> Vec<Sample> {
    use crate::metrics as m;
    let mut g = Vec::new();
    for (status, n) in view.count_by_status() {
        g.push(Sample::new(m::ORDERS, &[("status", status)], n as i64));
    }
    for (state, n) in view.count_by_delivery() {
        g.push(Sample::new(
            m::DELIVERY_STATES,
            &[("state", state)],
            n as i64,
        ));
    }
    let o = &view.outbox;
    for (state, n) in [
        ("pending", o.pending),
        ("sent", o.sent),
        ("failed", o.failed),
    ] {
        g.push(Sample::new(m::OUTBOX_ROWS, &[("state", state)], n as i64));
    }
    for (pool, counts) in &view.pools {
        for s in CardState::ALL {
            let labels = [("pool", pool.as_str()), ("state", s.as_str())];
            g.push(Sample::new(m::POOL_STOCK, &labels, counts.get(s) as i64));
        }
    }
    for (item, row) in &view.stock {
        g.push(Sample::new(
            m::ITEM_STOCK,
            &[("item", item)],
            row.remaining(),
        ));
    }
    g.push(Sample::new(
        m::DELAY_QUEUE_DEPTH,
        &[],
        view.pending_jobs as i64,
    ));
    g
}
