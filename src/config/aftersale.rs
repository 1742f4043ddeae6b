//! `aftersale:` in pipeline.yaml: the after-sale chores (rate the buyer, thank them, polish
//! listings), as written ([`RawAftersale`]) and as validated ([`Aftersale`]).
//!
//! Every task is off unless the seller writes `enabled: true`: these calls are exactly what
//! Xianyu's risk control watches. Validated in `validate/aftersale.rs`; run by
//! the top-level after-sale module.

use std::time::Duration;

use serde::Deserialize;

use super::raw::ItemId;

/// The rating text when the seller names no template (YD's default wording).
pub const DEFAULT_RATE_TEXT: &str = "不错的买家，交易愉快！";
/// The thank-you message when the seller names no template.
pub const DEFAULT_THANKS_TEXT: &str = "感谢您的光临和好评，有需要随时找我，祝您生活愉快！";
/// Random delay added to every after-sale call, unless `jitter:` says otherwise.
pub const DEFAULT_JITTER: Duration = Duration::from_secs(5 * 60);
/// At least this long between two after-sale calls of one account (XS: one write per 60 s).
pub const DEFAULT_MIN_GAP: Duration = Duration::from_secs(60);

/// `aftersale:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAftersale {
    pub rate: RawRate,
    pub thanks: RawThanks,
    pub polish: RawPolish,
    pub jitter: Option<String>,
    pub min_gap: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawRate {
    pub enabled: bool,
    pub template: Option<String>,
    /// `HH:MM-HH:MM` (Beijing time): the daily sweep over the pending-ratings list.
    pub sweep_window: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawThanks {
    pub enabled: bool,
    pub template: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawPolish {
    pub enabled: bool,
    /// `HH:MM-HH:MM` (Beijing time).
    pub window: Option<String>,
    /// Item ids; empty means every on-shelf item of the account.
    pub items: Vec<ItemId>,
}

/// A daily time window in Beijing time, minutes after midnight; `end > start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyWindow {
    pub start_min: u32,
    pub end_min: u32,
}

impl DailyWindow {
    /// `HH:MM-HH:MM`, same day, start before end.
    pub fn parse(text: &str) -> Option<Self> {
        let (a, b) = text.trim().split_once('-')?;
        let minutes = |t: &str| -> Option<u32> {
            let (h, m) = t.trim().split_once(':')?;
            let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
            (h < 24 && m < 60).then_some(h * 60 + m)
        };
        let (start_min, end_min) = (minutes(a)?, minutes(b)?);
        (end_min > start_min).then_some(Self { start_min, end_min })
    }

    pub fn label(&self) -> String {
        let f = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        format!("{}-{}", f(self.start_min), f(self.end_min))
    }
}

/// `aftersale.rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateTask {
    /// A template in `templates/`; `None`: [`DEFAULT_RATE_TEXT`].
    pub template: Option<String>,
    pub sweep_window: DailyWindow,
}

/// `aftersale.thanks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThanksTask {
    pub template: Option<String>,
}

/// `aftersale.polish`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolishTask {
    pub window: DailyWindow,
    /// Empty: every on-shelf item.
    pub items: Vec<String>,
}

/// The validated `aftersale:` section; a `None` task is off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Aftersale {
    pub rate: Option<RateTask>,
    pub thanks: Option<ThanksTask>,
    pub polish: Option<PolishTask>,
    pub jitter: Duration,
    pub min_gap: Duration,
}

impl Default for Aftersale {
    fn default() -> Self {
        Self {
            rate: None,
            thanks: None,
            polish: None,
            jitter: DEFAULT_JITTER,
            min_gap: DEFAULT_MIN_GAP,
        }
    }
}

impl Aftersale {
    pub fn any_enabled(&self) -> bool {
        self.rate.is_some() || self.thanks.is_some() || self.polish.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_parse_within_one_day_only() {
        assert_eq!(
            DailyWindow::parse("09:00-10:30"),
            Some(DailyWindow {
                start_min: 540,
                end_min: 630
            })
        );
        for bad in [
            "10:00-09:00",
            "25:00-26:00",
            "9-10",
            "09:00",
            "09:60-10:00",
            "",
        ] {
            assert_eq!(DailyWindow::parse(bad), None, "{bad}");
        }
    }
}
