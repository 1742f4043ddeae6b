//! 日志 (`/logs`): the last WARN and ERROR lines of the daemon's log (see `status::logs`).

use futures_util::future::BoxFuture;
use serde::Serialize;

use crate::status::logs::{LogBuffer, LogLine};
use crate::status::page::{Built, Input, ready};

pub(super) fn build<'a>(input: &'a Input<'a>) -> BoxFuture<'a, Built> {
    ready(logs(&input.ctx.logs))
}

#[derive(Debug, Clone, Serialize)]
pub struct LogsPage {
    pub capacity: usize,
    pub lines: Vec<LogLine>,
}

pub fn logs(buffer: &LogBuffer) -> LogsPage {
    LogsPage {
        capacity: buffer.capacity(),
        lines: buffer.tail(),
    }
}
