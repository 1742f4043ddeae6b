//! `stats:` (the time zone days are counted in) and `report:` (the daily summary: when, and to
//! which channels).

use super::*;

/// The zone days are counted in when `stats.time_zone` is not given.
pub const DEFAULT_TIME_ZONE: &str = "Asia/Shanghai";

impl Validator<'_> {
    pub(super) fn stats(
        &mut self,
        doc: &YamlDoc,
        stats: &raw::Stats,
        report: &Option<raw::Report>,
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> StatsSettings {
        let time_zone = match stats.time_zone.as_deref().map(str::trim) {
            None | Some("") => DEFAULT_TIME_ZONE.to_string(),
            Some(name) if jiff::tz::TimeZone::get(name).is_ok() => name.to_string(),
            Some(name) => {
                self.err(
                    doc,
                    "stats.time_zone",
                    format!("stats.time_zone: `{name}` is not a time zone name like Asia/Shanghai or Europe/Berlin"),
                );
                DEFAULT_TIME_ZONE.to_string()
            }
        };
        let report = report.as_ref().map(|r| self.report(doc, r, channels));
        StatsSettings { time_zone, report }
    }

    fn report(
        &mut self,
        doc: &YamlDoc,
        raw: &raw::Report,
        channels: &BTreeMap<String, ChannelConfig>,
    ) -> ReportSettings {
        let text = raw.at.as_deref().unwrap_or(DEFAULT_REPORT_AT).trim();
        let minute = parse_clock(text).unwrap_or_else(|| {
            self.err(
                doc,
                "report.at",
                format!("report.at: `{text}` is not a time of day like 09:00"),
            );
            0
        });
        for (i, name) in raw.channels.iter().enumerate() {
            if name != "log" && !channels.contains_key(name) {
                let known: Vec<String> = channels.keys().cloned().collect();
                let hint = did_you_mean(name, &known)
                    .map(|k| format!(", did you mean `{k}`?"))
                    .unwrap_or_default();
                self.err(
                    doc,
                    &format!("report.channels.{i}"),
                    format!(
                        "report.channels: no channel named `{name}`{hint} (declare it under channels:, or use log)"
                    ),
                );
            }
        }
        ReportSettings {
            minute_of_day: minute,
            channels: raw.channels.clone(),
        }
    }
}

/// `report.at` when only `report: {}` is written.
const DEFAULT_REPORT_AT: &str = "09:00";

/// `09:00` → 540 (minutes after midnight).
fn parse_clock(text: &str) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60 && text.len() <= 5).then_some(h * 60 + m)
}

#[cfg(test)]
mod tests {
    use super::parse_clock;

    #[test]
    fn times_of_day() {
        assert_eq!(parse_clock("09:00"), Some(540));
        assert_eq!(parse_clock("23:59"), Some(1439));
        assert_eq!(parse_clock("24:00"), None);
        assert_eq!(parse_clock("9"), None);
        assert_eq!(parse_clock("9:5x"), None);
    }
}
