//! Replay files: one normalized [`OrderEvent`] per line (JSON Lines).
//!
//! Blank lines and lines starting with `#` are skipped; a malformed line is reported with its
//! line number and does not stop the others.

use crate::event::OrderEvent;

/// One line of a replay file.
#[derive(Debug)]
pub struct ReplayLine {
    pub line: usize,
    pub event: Result<OrderEvent, String>,
}

pub fn parse(text: &str) -> Vec<ReplayLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|(i, l)| ReplayLine {
            line: i + 1,
            event: serde_json::from_str(l).map_err(|e| e.to_string()),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventStatus;

    #[test]
    fn parses_lines_and_reports_bad_ones() {
        let text = "# comment\n{\"account\":\"main\",\"order_id\":\"1\",\"status\":\"paid\",\"item_id\":\"9\"}\n\nnot json\n{\"account\":\"main\",\"order_id\":\"2\",\"status\":\"payed\"}\n";
        let lines = parse(text);
        assert_eq!(lines.len(), 3);
        let ev = lines[0].event.as_ref().unwrap();
        assert_eq!(
            (ev.order_id.as_str(), ev.status, ev.quantity),
            ("1", EventStatus::Paid, 1)
        );
        assert_eq!(lines[1].line, 4);
        assert!(lines[1].event.is_err());
        assert!(lines[2].event.as_ref().unwrap_err().contains("payed"));
    }
}
