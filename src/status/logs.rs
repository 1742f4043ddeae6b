//! The tail of warnings and errors, for the 日志 page.
//!
//! [`layer`] is a `tracing` layer that copies every WARN and ERROR event into a bounded ring
//! buffer ([`LogBuffer`]); `main.rs` installs it next to the formatter, and the status page reads
//! the same process-wide buffer ([`global`]). The buffer holds what the log already says, so the
//! crate's logging rule (no secrets in log fields) is what keeps secrets off this page too.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Arc, LazyLock, Mutex};

use serde::Serialize;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

use crate::clock::{Clock, SystemClock};

/// Lines kept by the process-wide buffer.
pub const DEFAULT_CAPACITY: usize = 500;

/// A log line longer than this is cut: the page is a tail, not an archive.
const MAX_LINE: usize = 2000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    /// Unix ms.
    pub at: u64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    pub target: String,
    pub message: String,
    /// The event's other fields as `key=value`, space separated.
    pub fields: String,
}

/// A bounded, shared ring of log lines.
#[derive(Debug, Clone)]
pub struct LogBuffer {
    lines: Arc<Mutex<VecDeque<LogLine>>>,
    capacity: usize,
}

impl LogBuffer {
    pub fn new(capacity: usize) -> Self {
        Self {
            lines: Arc::new(Mutex::new(VecDeque::with_capacity(capacity))),
            capacity: capacity.max(1),
        }
    }

    pub fn push(&self, line: LogLine) {
        let mut lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// Newest first.
    pub fn tail(&self) -> Vec<LogLine> {
        let lines = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        lines.iter().rev().cloned().collect()
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// A layer that records WARN and ERROR events into this buffer.
    pub fn layer(&self) -> LogLayer {
        LogLayer {
            buffer: self.clone(),
        }
    }
}

static GLOBAL: LazyLock<LogBuffer> = LazyLock::new(|| LogBuffer::new(DEFAULT_CAPACITY));

/// The buffer the daemon's status page shows.
pub fn global() -> &'static LogBuffer {
    &GLOBAL
}

/// The layer for `main.rs`: `registry().with(filter).with(xianyu_shopd::status::logs::layer())`.
pub fn layer() -> LogLayer {
    GLOBAL.layer()
}

/// See [`LogBuffer::layer`].
#[derive(Debug, Clone)]
pub struct LogLayer {
    buffer: LogBuffer,
}

impl<S: Subscriber> Layer<S> for LogLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        // More verbose levels compare greater: this keeps WARN and ERROR only.
        if *meta.level() > Level::WARN {
            return;
        }
        let mut v = Fields::default();
        event.record(&mut v);
        self.buffer.push(LogLine {
            at: SystemClock.now_ms(),
            level: if *meta.level() == Level::ERROR {
                "ERROR"
            } else {
                "WARN"
            },
            target: meta.target().to_string(),
            message: cut(v.message),
            fields: cut(v.fields),
        });
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.push(field, format_args!("{value}"));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.push(field, format_args!("{value:?}"));
        }
    }
}

impl Fields {
    fn push(&mut self, field: &Field, value: std::fmt::Arguments<'_>) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
        let _ = write!(self.fields, "{}={value}", field.name());
    }
}

fn cut(mut s: String) -> String {
    if s.len() > MAX_LINE {
        let mut end = MAX_LINE;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn keeps_the_last_warnings_and_errors_only() {
        let buf = LogBuffer::new(2);
        let sub = tracing_subscriber::registry().with(buf.layer());
        tracing::subscriber::with_default(sub, || {
            tracing::info!("not kept");
            tracing::warn!(order_id = "A1", "First.");
            tracing::error!(stage = "ship", "Second.");
            tracing::warn!("Third.");
        });
        let tail = buf.tail();
        assert_eq!(tail.len(), 2);
        assert_eq!(tail[0].message, "Third.");
        assert_eq!(
            (tail[1].level, tail[1].fields.as_str()),
            ("ERROR", "stage=ship")
        );
    }
}
