//! Process-wide counters and gauges, rendered as Prometheus text by the status page.
//!
//! Any module counts with one call and no handle to thread through:
//!
//! ```
//! use xianyu_shopd::metrics;
//! metrics::inc(metrics::EVENTS_RECEIVED, &[("kind", "order")]);
//! metrics::set(metrics::DELAY_QUEUE_DEPTH, &[], 3);
//! ```
//!
//! A series is one `AtomicI64` behind a read-mostly lock, created on first use. The names
//! callers use are short (`events_received_total`); [`render`] prefixes them with
//! [`NAMESPACE`]. Every family in [`FAMILIES`] is always printed with its `HELP`/`TYPE` lines,
//! and families with a known set of labels start at zero, so a scraper (and a test) sees every
//! metric before the first event. Label values must never be secrets: accounts, channels,
//! pools and outcomes only.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, LazyLock, RwLock};

/// Prefix of every family this crate defines.
pub const NAMESPACE: &str = "xianyu_shopd";

/// Order (and chat, connection) events a source produced, by `kind`.
pub const EVENTS_RECEIVED: &str = "events_received_total";
/// Finished delivery attempts, by `outcome` (`delivered`, `failed_safe`, `needs_human`, `manual`).
pub const DELIVERIES: &str = "deliveries_total";
/// Pipeline jobs waiting in the durable delay queue.
pub const DELAY_QUEUE_DEPTH: &str = "delay_queue_depth";
/// Card keys per `pool` and `state`.
pub const POOL_STOCK: &str = "pool_stock";
/// Counted stock left per `item`.
pub const ITEM_STOCK: &str = "item_stock_remaining";
/// IM WebSocket reconnects, by `account`.
pub const RECONNECTS: &str = "reconnects_total";
/// IM access-token refreshes, by `account` and `result` (`ok`, `error`).
pub const TOKEN_REFRESHES: &str = "token_refreshes_total";
/// Config reloads, by `result` (`ok`, `error`).
pub const RELOADS: &str = "reloads_total";
/// Notification delivery attempts, by `channel` and `outcome` (`sent`, `retry`, `failed`).
pub const NOTIFICATIONS: &str = "notifications_total";
/// Orders in the store per `status` (a gauge the status page refreshes on each scrape).
pub const ORDERS: &str = "orders";
/// Delivery-ledger rows per `state`.
pub const DELIVERY_STATES: &str = "delivery_ledger_rows";
/// Notifications in the outbox per `state`.
pub const OUTBOX_ROWS: &str = "outbox_rows";
/// Chat pushes seen, by `kind` (`buyer`, `own`, `typing`, `read_receipt`).
pub const CHAT_MESSAGES: &str = "chat_messages_total";
/// Chat replies committed and sent, by answering `stage` and `outcome` (reply state).
pub const CHAT_REPLIES: &str = "chat_replies_total";
/// Buyer messages deliberately left unanswered, by `reason`.
pub const CHAT_SKIPPED: &str = "chat_skipped_total";
/// Model calls, by `outcome` (`ok` or the error code).
pub const LLM_REQUESTS: &str = "llm_requests_total";
/// Total milliseconds spent waiting for successful model answers (divide by the `ok` count).
pub const LLM_LATENCY_MS: &str = "llm_latency_milliseconds_total";
/// Latency of the last successful model answer.
pub const LLM_LAST_LATENCY_MS: &str = "llm_last_latency_milliseconds";
/// Model answers the output guard blocked, by `reason`.
pub const GUARD_REJECTIONS: &str = "chat_guard_rejections_total";
/// Supplier card calls (`products[].supplier`) that settled, by `outcome`.
pub const SUPPLIER_CALLS: &str = "supplier_calls_total";
/// Durable store commits since the daemon opened the store.
pub const STORE_COMMITS: &str = "store_commits_total";
/// `fdatasync` calls on the store file since the daemon opened it (counted, not estimated).
pub const STORE_FSYNCS: &str = "store_fsyncs_total";
/// After-sale actions (`rate`, `thanks`, `polish`) that settled, by `action` and `outcome`
/// (`done`, `already_done`, `failed`, `unknown`, `risk_control`).
pub const AFTERSALE_ACTIONS: &str = "aftersale_actions_total";
/// Resident set size of this process (standard name, no namespace).
pub const PROCESS_RSS: &str = "process_resident_memory_bytes";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// A metric family: name, help text, type, and the label sets that exist from the start.
#[derive(Debug)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub seeds: &'static [&'static [(&'static str, &'static str)]],
}

/// Every family the daemon exports. `/metrics` prints all of them, samples or not.
pub const FAMILIES: &[Family] = &[
    Family {
        name: AFTERSALE_ACTIONS,
        help: "After-sale actions that settled, by action (rate, thanks, polish) and outcome (done, already_done, failed, unknown, risk_control).",
        kind: Kind::Counter,
        seeds: &[
            &[("action", "rate"), ("outcome", "done")],
            &[("action", "rate"), ("outcome", "already_done")],
            &[("action", "thanks"), ("outcome", "done")],
            &[("action", "polish"), ("outcome", "done")],
            &[("action", "polish"), ("outcome", "already_done")],
        ],
    },
    Family {
        name: EVENTS_RECEIVED,
        help: "Events received from sources, by kind.",
        kind: Kind::Counter,
        seeds: &[&[("kind", "order")]],
    },
    Family {
        name: DELIVERIES,
        help: "Delivery attempts that ended, by outcome.",
        kind: Kind::Counter,
        seeds: &[
            &[("outcome", "delivered")],
            &[("outcome", "failed_safe")],
            &[("outcome", "needs_human")],
            &[("outcome", "manual")],
        ],
    },
    Family {
        name: SUPPLIER_CALLS,
        help: "Supplier card calls that settled, by outcome (fetched, not_bought, uncertain, returned, return_failed).",
        kind: Kind::Counter,
        seeds: &[
            &[("outcome", "fetched")],
            &[("outcome", "not_bought")],
            &[("outcome", "uncertain")],
        ],
    },
    Family {
        name: DELAY_QUEUE_DEPTH,
        help: "Pipeline jobs waiting in the durable delay queue.",
        kind: Kind::Gauge,
        seeds: &[&[]],
    },
    Family {
        name: POOL_STOCK,
        help: "Card keys per pool and state.",
        kind: Kind::Gauge,
        seeds: &[],
    },
    Family {
        name: ITEM_STOCK,
        help: "Counted stock remaining per item.",
        kind: Kind::Gauge,
        seeds: &[],
    },
    Family {
        name: RECONNECTS,
        help: "IM connection reconnects, by account.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: TOKEN_REFRESHES,
        help: "IM access token refreshes, by account and result.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: RELOADS,
        help: "Config reloads, by result.",
        kind: Kind::Counter,
        seeds: &[&[("result", "ok")], &[("result", "error")]],
    },
    Family {
        name: NOTIFICATIONS,
        help: "Notification delivery attempts, by channel and outcome.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: ORDERS,
        help: "Orders in the store, by status.",
        kind: Kind::Gauge,
        seeds: &[],
    },
    Family {
        name: DELIVERY_STATES,
        help: "Delivery ledger rows, by state.",
        kind: Kind::Gauge,
        seeds: &[],
    },
    Family {
        name: OUTBOX_ROWS,
        help: "Notifications in the outbox, by state.",
        kind: Kind::Gauge,
        seeds: &[],
    },
    Family {
        name: CHAT_MESSAGES,
        help: "Chat pushes seen, by kind.",
        kind: Kind::Counter,
        seeds: &[&[("kind", "buyer")], &[("kind", "own")]],
    },
    Family {
        name: CHAT_REPLIES,
        help: "Chat replies sent, by answering stage and outcome.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: CHAT_SKIPPED,
        help: "Buyer messages left unanswered on purpose, by reason.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: LLM_REQUESTS,
        help: "Model calls, by outcome (ok or the error).",
        kind: Kind::Counter,
        seeds: &[&[("outcome", "ok")]],
    },
    Family {
        name: LLM_LATENCY_MS,
        help: "Milliseconds spent on successful model answers (divide by llm_requests_total{outcome=\"ok\"}).",
        kind: Kind::Counter,
        seeds: &[&[]],
    },
    Family {
        name: LLM_LAST_LATENCY_MS,
        help: "Latency of the last successful model answer, in milliseconds.",
        kind: Kind::Gauge,
        seeds: &[&[]],
    },
    Family {
        name: GUARD_REJECTIONS,
        help: "Model answers blocked by the output guard, by reason.",
        kind: Kind::Counter,
        seeds: &[],
    },
    Family {
        name: STORE_COMMITS,
        help: "Durable store commits since the store was opened (one write transaction each, shared by the writes that arrived together).",
        kind: Kind::Counter,
        seeds: &[&[]],
    },
    Family {
        name: STORE_FSYNCS,
        help: "fdatasync calls on the store file since it was opened, counted at the file: a commit is two (redb's two-phase commit) plus one when the file grows.",
        kind: Kind::Counter,
        seeds: &[&[]],
    },
    Family {
        name: PROCESS_RSS,
        help: "Resident memory size in bytes.",
        kind: Kind::Gauge,
        seeds: &[&[]],
    },
];

type Labels = Vec<(String, String)>;

/// One value computed at scrape time, for [`Registry::render_with`].
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub labels: Vec<(String, String)>,
    pub value: i64,
}

impl Sample {
    pub fn new(name: &'static str, labels: &[(&str, &str)], value: i64) -> Self {
        Self {
            name,
            labels: owned(labels),
            value,
        }
    }
}
type Key = (String, Labels);

/// A set of series. The process-wide one is [`global`]; tests and scrapes may build their own.
#[derive(Debug, Default)]
pub struct Registry {
    series: RwLock<BTreeMap<Key, Arc<AtomicI64>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The series for `name{labels}`, created at zero if new.
    fn cell(&self, name: &str, labels: &[(&str, &str)]) -> Arc<AtomicI64> {
        let key = key(name, labels);
        if let Some(c) = read(&self.series).get(&key) {
            return c.clone();
        }
        write(&self.series).entry(key).or_default().clone()
    }

    pub fn add(&self, name: &str, labels: &[(&str, &str)], n: i64) {
        self.cell(name, labels).fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(&self, name: &str, labels: &[(&str, &str)], v: i64) {
        self.cell(name, labels).store(v, Ordering::Relaxed);
    }

    /// Current value; 0 for a series never touched.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> i64 {
        read(&self.series)
            .get(&key(name, labels))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    fn samples(&self) -> BTreeMap<String, Vec<(Labels, i64)>> {
        let mut out: BTreeMap<String, Vec<(Labels, i64)>> = BTreeMap::new();
        for ((name, labels), cell) in read(&self.series).iter() {
            out.entry(name.clone())
                .or_default()
                .push((labels.clone(), cell.load(Ordering::Relaxed)));
        }
        out
    }

    /// Prometheus text exposition (format 0.0.4) of every family and series.
    pub fn render(&self) -> String {
        self.render_with(&[])
    }

    /// Like [`Self::render`], plus samples computed at scrape time (store-derived gauges,
    /// RSS); an extra sample replaces a registry series with the same name and labels.
    pub fn render_with(&self, extra: &[Sample]) -> String {
        let mut samples = self.samples();
        for s in extra {
            let mut labels = s.labels.clone();
            labels.sort();
            let rows = samples.entry(s.name.to_string()).or_default();
            rows.retain(|(l, _)| *l != labels);
            rows.push((labels, s.value));
        }
        let mut out = String::with_capacity(4096);
        for fam in FAMILIES {
            let mut rows = samples.remove(fam.name).unwrap_or_default();
            for seed in fam.seeds {
                let labels: Labels = owned(seed);
                if !rows.iter().any(|(l, _)| *l == labels) {
                    rows.push((labels, 0));
                }
            }
            rows.sort();
            write_family(&mut out, fam.name, fam.help, fam.kind.as_str(), &rows);
        }
        // Series other modules invented without adding a family: still exported, untyped.
        for (name, rows) in samples {
            write_family(&mut out, &name, "Undocumented series.", "untyped", &rows);
        }
        out
    }
}

fn key(name: &str, labels: &[(&str, &str)]) -> Key {
    let mut l = owned(labels);
    l.sort();
    (name.to_string(), l)
}

fn owned(labels: &[(&str, &str)]) -> Labels {
    labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// A poisoned lock only means another thread panicked mid-update of a map of atomics; the map
// itself is still consistent, so metrics keep working instead of spreading the panic.
fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn full_name(name: &str) -> String {
    if name.starts_with("process_") {
        name.to_string()
    } else {
        format!("{NAMESPACE}_{name}")
    }
}

fn write_family(out: &mut String, name: &str, help: &str, kind: &str, rows: &[(Labels, i64)]) {
    let name = full_name(name);
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
    for (labels, v) in rows {
        let _ = writeln!(out, "{name}{} {v}", label_text(labels));
    }
}

fn label_text(labels: &Labels) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let parts: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);

/// The process-wide registry.
pub fn global() -> &'static Registry {
    &GLOBAL
}

/// Add one to a counter.
pub fn inc(name: &str, labels: &[(&str, &str)]) {
    GLOBAL.add(name, labels, 1);
}

/// Add `n` to a counter (or move a gauge).
pub fn add(name: &str, labels: &[(&str, &str)], n: i64) {
    GLOBAL.add(name, labels, n);
}

/// Set a gauge.
pub fn set(name: &str, labels: &[(&str, &str)], v: i64) {
    GLOBAL.set(name, labels, v);
}

/// Read a series (tests, the status page).
pub fn get(name: &str, labels: &[(&str, &str)]) -> i64 {
    GLOBAL.get(name, labels)
}

/// Resident set size of this process in bytes, from `/proc/self/statm` (0 where there is none).
pub fn process_rss_bytes() -> u64 {
    let Ok(text) = std::fs::read_to_string("/proc/self/statm") else {
        return 0;
    };
    let pages: u64 = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    pages * PAGE_SIZE
}

/// `statm` counts pages. 4 KiB is the page size of the targets this daemon ships for
/// (x86_64, and aarch64 kernels built with 4K pages); reading the real value would need libc.
const PAGE_SIZE: u64 = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_order_independent_and_escaped() {
        let r = Registry::new();
        r.add("x_total", &[("b", "2"), ("a", "1")], 1);
        r.add("x_total", &[("a", "1"), ("b", "2")], 2);
        assert_eq!(r.get("x_total", &[("b", "2"), ("a", "1")]), 3);
        r.set("y", &[("k", "a\"b\\c\nd")], 5);
        let text = r.render();
        assert!(
            text.contains("xianyu_shopd_x_total{a=\"1\",b=\"2\"} 3"),
            "{text}"
        );
        assert!(
            text.contains(r#"xianyu_shopd_y{k="a\"b\\c\nd"} 5"#),
            "{text}"
        );
    }

    #[test]
    fn every_family_is_rendered_even_when_empty() {
        let text = Registry::new().render();
        for fam in FAMILIES {
            assert!(
                text.contains(&format!("# TYPE {} ", full_name(fam.name))),
                "{}",
                fam.name
            );
        }
        assert!(text.contains("xianyu_shopd_reloads_total{result=\"error\"} 0"));
    }

    #[test]
    fn rss_is_read_from_proc() {
        if std::path::Path::new("/proc/self/statm").exists() {
            assert!(process_rss_bytes() > 0);
        }
    }
}
