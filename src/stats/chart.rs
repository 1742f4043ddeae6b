//! Small charts as numbers a template draws as inline SVG: bars, lines, axis labels, all in
//! the chart's own coordinates (the `viewBox`), so the page needs no script and scales to a
//! phone's width.

use serde::Serialize;

/// One chart; the template macro `chart` in `stats.html` draws any of them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Chart {
    pub width: u32,
    pub height: u32,
    /// What the chart shows, for screen readers (`aria-label`).
    pub label: String,
    pub bars: Vec<Bar>,
    pub lines: Vec<Series>,
    pub x_labels: Vec<Tick>,
    pub y_labels: Vec<Tick>,
    /// Top of the plot area and its baseline, for the grid lines.
    pub top: f64,
    pub base: f64,
    pub left: f64,
    pub right: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
    /// Shown on hover (`<title>`).
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    /// CSS class (`line-a`, `line-b`): the template's colours.
    pub class: &'static str,
    pub name: String,
    /// `x,y x,y …` for a `<polyline>`; gaps (no value) split it into several.
    pub segments: Vec<String>,
    pub dots: Vec<Dot>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
    pub title: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub x: f64,
    pub y: f64,
    pub text: String,
}

/// Plot geometry shared by every chart of a size.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Frame {
    pub const WIDE: Frame = Frame {
        width: 640,
        height: 220,
        left: 46.0,
        right: 46.0,
        top: 14.0,
        bottom: 26.0,
    };

    pub const SPARK: Frame = Frame {
        width: 140,
        height: 36,
        left: 2.0,
        right: 2.0,
        top: 4.0,
        bottom: 4.0,
    };

    fn plot_w(self) -> f64 {
        f64::from(self.width) - self.left - self.right
    }

    fn base(self) -> f64 {
        f64::from(self.height) - self.bottom
    }

    fn plot_h(self) -> f64 {
        self.base() - self.top
    }

    /// Centre of slot `i` of `n`.
    fn x(self, i: usize, n: usize) -> f64 {
        round(self.left + self.plot_w() * (i as f64 + 0.5) / n.max(1) as f64)
    }

    /// `v` of `max` as a height on the plot.
    fn y(self, v: f64, max: f64) -> f64 {
        let share = if max > 0.0 {
            (v / max).clamp(0.0, 1.0)
        } else {
            0.0
        };
        round(self.base() - self.plot_h() * share)
    }

    pub fn empty(self, label: impl Into<String>) -> Chart {
        Chart {
            width: self.width,
            height: self.height,
            label: label.into(),
            top: self.top,
            base: self.base(),
            left: self.left,
            right: f64::from(self.width) - self.right,
            ..Chart::default()
        }
    }

    /// Bars of `values` (one per slot, `titles` on hover), scaled to their maximum.
    pub fn bars(self, chart: &mut Chart, values: &[f64], titles: Vec<String>) {
        let max = nice_max(values);
        let n = values.len();
        let w = round(self.plot_w() / n.max(1) as f64 * 0.7);
        for (i, (v, title)) in values.iter().zip(titles).enumerate() {
            let y = self.y(*v, max);
            chart.bars.push(Bar {
                x: round(self.x(i, n) - w / 2.0),
                y,
                w,
                h: round(self.base() - y),
                title,
            });
        }
    }

    /// A line through `values` (none: a gap), scaled to `max` (its own maximum if none).
    pub fn line(
        self,
        values: &[Option<f64>],
        max: Option<f64>,
        class: &'static str,
        name: impl Into<String>,
        titles: Vec<String>,
    ) -> Series {
        let max =
            max.unwrap_or_else(|| nice_max(&values.iter().flatten().copied().collect::<Vec<_>>()));
        let n = values.len();
        let mut segments = Vec::new();
        let mut current = String::new();
        let mut dots = Vec::new();
        for (i, (v, title)) in values.iter().zip(titles).enumerate() {
            match v {
                Some(v) => {
                    let (x, y) = (self.x(i, n), self.y(*v, max));
                    if !current.is_empty() {
                        current.push(' ');
                    }
                    current.push_str(&format!("{x},{y}"));
                    dots.push(Dot { x, y, title });
                }
                None if !current.is_empty() => segments.push(std::mem::take(&mut current)),
                None => {}
            }
        }
        if !current.is_empty() {
            segments.push(current);
        }
        Series {
            class,
            name: name.into(),
            segments,
            dots,
        }
    }

    /// Labels under every `step`-th slot.
    pub fn x_labels(self, chart: &mut Chart, texts: &[String], step: usize) {
        let n = texts.len();
        for (i, t) in texts.iter().enumerate() {
            let step = step.max(1);
            // The last slot is always labelled; a regular label too close to it is not.
            if (i % step == 0 && n - 1 - i >= step / 2) || i + 1 == n {
                chart.x_labels.push(Tick {
                    x: self.x(i, n),
                    y: f64::from(self.height) - 8.0,
                    text: t.clone(),
                });
            }
        }
    }

    /// The maximum of an axis, written at the top left (or right), and zero at its foot.
    pub fn y_label(self, chart: &mut Chart, text: String, right_side: bool) {
        let x = if right_side {
            f64::from(self.width) - self.right + 4.0
        } else {
            4.0
        };
        chart.y_labels.push(Tick {
            x,
            y: self.top + 10.0,
            text,
        });
    }
}

/// The scale's top: the maximum rounded up to 1, 2 or 5 times a power of ten (at least 1).
pub fn nice_max(values: &[f64]) -> f64 {
    let max = values.iter().copied().fold(0.0_f64, f64::max);
    if max <= 1.0 {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * mag)
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_up_to_readable_tops() {
        assert_eq!(nice_max(&[0.0]), 1.0);
        assert_eq!(nice_max(&[7.0, 3.0]), 10.0);
        assert_eq!(nice_max(&[130.0]), 200.0);
        assert_eq!(nice_max(&[4_900.0]), 5_000.0);
    }

    #[test]
    fn a_line_breaks_where_a_day_has_no_value() {
        let f = Frame::WIDE;
        let s = f.line(
            &[Some(1.0), None, Some(0.5), Some(0.0)],
            Some(1.0),
            "line-a",
            "x",
            vec![String::new(); 4],
        );
        assert_eq!(s.segments.len(), 2);
        assert_eq!(s.dots.len(), 3);
        assert_eq!(s.dots[0].y, f.top);
        assert_eq!(s.dots[2].y, f.base());
        let mut c = f.empty("t");
        f.bars(&mut c, &[2.0, 1.0], vec![String::new(), String::new()]);
        assert_eq!(c.bars[0].y, f.top);
        assert!(c.bars[1].h > 0.0 && c.bars[1].h < c.bars[0].h);
    }
}
