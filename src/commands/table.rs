//! Terminal tables whose columns line up when cells hold Chinese text.
//!
//! `format!("{:<14}")` pads by `char` count, but a CJK character takes two terminal columns, so
//! a status like `待发货` pushed every later column out of line. Widths here are display widths.

use unicode_width::UnicodeWidthStr;

/// How a column's cells sit in their width.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// A table printed once all rows are known, so every column is as wide as its widest cell.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(String, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(columns: &[(&str, Align)]) -> Self {
        Self {
            columns: columns.iter().map(|(h, a)| (h.to_string(), *a)).collect(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; missing cells print empty, extra cells are ignored.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as lines (header first), without trailing spaces.
    pub fn lines(&self) -> Vec<String> {
        let widths = self.widths();
        let header: Vec<String> = self.columns.iter().map(|(h, _)| h.clone()).collect();
        std::iter::once(&header)
            .chain(self.rows.iter())
            .map(|cells| self.line(cells, &widths))
            .collect()
    }

    pub fn print(&self) {
        for line in self.lines() {
            println!("{line}");
        }
    }

    fn widths(&self) -> Vec<usize> {
        self.columns
            .iter()
            .enumerate()
            .map(|(i, (header, _))| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells.map(|c| c.width()).fold(header.width(), usize::max)
            })
            .collect()
    }

    fn line(&self, cells: &[String], widths: &[usize]) -> String {
        let mut out = String::new();
        for (i, ((_, align), width)) in self.columns.iter().zip(widths).enumerate() {
            let cell = cells.get(i).map(String::as_str).unwrap_or("");
            let pad = " ".repeat(width.saturating_sub(cell.width()));
            if i > 0 {
                out.push_str("  ");
            }
            match align {
                Align::Left => {
                    out.push_str(cell);
                    out.push_str(&pad);
                }
                Align::Right => {
                    out.push_str(&pad);
                    out.push_str(cell);
                }
            }
        }
        out.trim_end().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_line_up_in_display_width_with_chinese_cells() {
        let mut t = Table::new(&[
            ("order", Align::Left),
            ("status", Align::Left),
            ("qty", Align::Right),
        ]);
        t.row(vec!["3001".into(), "待发货".into(), "1".into()]);
        t.row(vec!["3002".into(), "shipped".into(), "12".into()]);
        let lines = t.lines();
        // The qty column ends at the same terminal column on every line.
        let ends: Vec<usize> = lines.iter().map(|l| l.width()).collect();
        assert_eq!(ends, vec![ends[0]; 3], "{lines:#?}");
        assert_eq!(lines[1], "3001   待发货     1");
    }
}
