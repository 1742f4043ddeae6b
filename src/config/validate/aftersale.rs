//! `aftersale:`: each task off unless enabled, windows `HH:MM-HH:MM`, templates that exist and
//! render, numeric item ids, and a rate guard that cannot be turned into a hammer.

use super::*;
use crate::config::aftersale::{
    Aftersale, DEFAULT_JITTER, DEFAULT_MIN_GAP, DailyWindow, PolishTask, RateTask, RawAftersale,
    ThanksTask,
};

/// The guard may be raised, never lowered below this (risk control watches these calls).
const MIN_GAP_FLOOR: Duration = Duration::from_secs(1);
/// The pending-ratings sweep when the seller names no window (quiet hours, Beijing time).
const DEFAULT_SWEEP: DailyWindow = DailyWindow {
    start_min: 3 * 60,
    end_min: 5 * 60,
};

impl Validator<'_> {
    pub(super) fn aftersale(&mut self, doc: &YamlDoc, raw: &RawAftersale) -> Aftersale {
        let jitter = self.duration(
            doc,
            "aftersale.jitter",
            raw.jitter.as_deref(),
            DEFAULT_JITTER,
        );
        let mut min_gap = self.duration(
            doc,
            "aftersale.min_gap",
            raw.min_gap.as_deref(),
            DEFAULT_MIN_GAP,
        );
        if min_gap < MIN_GAP_FLOOR {
            self.err(
                doc,
                "aftersale.min_gap",
                "aftersale.min_gap: must be at least 1s (these calls are what risk control watches)",
            );
            min_gap = DEFAULT_MIN_GAP;
        }
        let rate = raw.rate.enabled.then(|| RateTask {
            template: self.aftersale_template(doc, "aftersale.rate.template", &raw.rate.template),
            sweep_window: self
                .daily_window(doc, "aftersale.rate.sweep_window", &raw.rate.sweep_window)
                .unwrap_or(DEFAULT_SWEEP),
        });
        let thanks = raw.thanks.enabled.then(|| ThanksTask {
            template: self.aftersale_template(
                doc,
                "aftersale.thanks.template",
                &raw.thanks.template,
            ),
        });
        let polish = match raw.polish.enabled {
            false => None,
            true => self.polish(doc, &raw.polish),
        };
        Aftersale {
            rate,
            thanks,
            polish,
            jitter,
            min_gap,
        }
    }

    fn polish(
        &mut self,
        doc: &YamlDoc,
        raw: &crate::config::aftersale::RawPolish,
    ) -> Option<PolishTask> {
        let items = self.numeric_ids(doc, "aftersale.polish.items", &raw.items, |path, id| {
            format!("{path}: `{id}` is not an item id (the number in the listing's link, id=…)")
        });
        if raw.window.is_none() {
            self.err(
                doc,
                "aftersale.polish.enabled",
                "aftersale.polish: `enabled: true` needs `window:` (a daily time window in Beijing time, e.g. \"09:00-10:00\")",
            );
            return None;
        }
        let window = self.daily_window(doc, "aftersale.polish.window", &raw.window)?;
        Some(PolishTask { window, items })
    }

    fn daily_window(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        text: &Option<String>,
    ) -> Option<DailyWindow> {
        let text = text.as_deref()?;
        let window = DailyWindow::parse(text);
        if window.is_none() {
            self.err(
                doc,
                path,
                format!("{path}: `{text}` is not a daily window; write it like \"09:00-10:00\" (Beijing time, start before end, same day)"),
            );
        }
        window
    }

    fn aftersale_template(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        name: &Option<String>,
    ) -> Option<String> {
        let name = name.as_deref()?.trim();
        self.template_ref(doc, path, name);
        Some(name.to_string())
    }
}
