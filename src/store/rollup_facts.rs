//! What an order contributes to the statistics, as a pure function of its stored records.
//!
//! The rollups (`rollup.rs`) are the sum of [`contributions`] over every order, so a change is
//! applied as "what the order contributes now minus what it contributed before" and a rebuild
//! is the same sum computed from scratch: both read the same facts, which is why they agree.
//! Days are calendar days in the seller's time zone, written `yyyymmdd` ([`Day`]).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::Serialize;

use super::records::{DeliveryRecord, DeliveryState, OrderRecord};
use crate::money::Cents;
use crate::order::OrderStatus;

/// The zone used until the seller names another one.
pub const DEFAULT_ZONE: &str = "Asia/Shanghai";

/// Upper bounds (exclusive, ms) of the payment → delivery histogram buckets; one more bucket
/// holds everything slower. Fixed, so buckets add up across days, items and accounts.
pub const LATENCY_BOUNDS_MS: [u64; 11] = [
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    3 * 3_600_000,
    12 * 3_600_000,
    24 * 3_600_000,
];
pub const LATENCY_BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;

/// A calendar day in the seller's zone as `yyyymmdd` (sorts like the dates it names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Day(pub u32);

impl Day {
    /// The day containing `ms` (unix milliseconds) in `zone`.
    pub fn of(ms: u64, zone: &TimeZone) -> Day {
        let ts = Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
            .unwrap_or(Timestamp::MAX);
        Day::from_date(ts.to_zoned(zone.clone()).date())
    }

    pub fn from_date(d: Date) -> Day {
        Day(d.year().max(0) as u32 * 10_000 + d.month() as u32 * 100 + d.day() as u32)
    }

    pub fn date(self) -> Option<Date> {
        let y = i16::try_from(self.0 / 10_000).ok()?;
        Date::new(y, (self.0 / 100 % 100) as i8, (self.0 % 100) as i8).ok()
    }

    /// `2026-11-30` or `2026-11-30` style text: accepts `yyyy-mm-dd` and `yyyymmdd`.
    pub fn parse(text: &str) -> Option<Day> {
        let t = text.trim();
        let d: Date = if t.len() == 8 && t.bytes().all(|b| b.is_ascii_digit()) {
            Day(t.parse().ok()?).date()?
        } else {
            t.parse().ok()?
        };
        Some(Day::from_date(d))
    }

    /// `days` later (earlier when negative); saturates at the calendar's ends.
    pub fn add(self, days: i32) -> Day {
        match self.date().and_then(|d| d.checked_add(days.days()).ok()) {
            Some(d) => Day::from_date(d),
            None => self,
        }
    }

    /// Unix ms of this day's first instant in `zone` (a DST gap moves it, never panics).
    pub fn start_ms(self, zone: &TimeZone) -> u64 {
        self.date()
            .and_then(|d| d.to_zoned(zone.clone()).ok())
            .map_or(0, |z| z.timestamp().as_millisecond().max(0) as u64)
    }

    pub fn label(self) -> String {
        format!(
            "{:04}-{:02}-{:02}",
            self.0 / 10_000,
            self.0 / 100 % 100,
            self.0 % 100
        )
    }
}

/// A time zone by its IANA name (`Asia/Shanghai`), from the database built into the binary.
pub fn zone(name: &str) -> Option<TimeZone> {
    TimeZone::get(name).ok()
}

/// One rollup row's numbers. Every field is a sum, so rows add and subtract.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    pub created: i64,
    pub paid: i64,
    /// Sum of the known amounts of the paid orders.
    pub paid_fen: i64,
    /// Paid orders whose amount is unknown (counted, never guessed).
    pub paid_unknown: i64,
    pub auto_delivered: i64,
    pub handed: i64,
    pub refunded: i64,
    pub closed: i64,
    /// Money given back: refunds and paid orders closed afterwards.
    pub returned_fen: i64,
    pub returned_unknown: i64,
    pub latency_count: i64,
    pub latency_sum_ms: i64,
    pub latency_hist: [i64; LATENCY_BUCKETS],
}

const SCALARS: usize = 12;
const WIDTH: usize = SCALARS + LATENCY_BUCKETS;

impl Counters {
    fn fields(&self) -> [i64; WIDTH] {
        let mut f = [0; WIDTH];
        f[..SCALARS].copy_from_slice(&[
            self.created,
            self.paid,
            self.paid_fen,
            self.paid_unknown,
            self.auto_delivered,
            self.handed,
            self.refunded,
            self.closed,
            self.returned_fen,
            self.returned_unknown,
            self.latency_count,
            self.latency_sum_ms,
        ]);
        f[SCALARS..].copy_from_slice(&self.latency_hist);
        f
    }

    fn from_fields(f: &[i64; WIDTH]) -> Counters {
        let mut latency_hist = [0; LATENCY_BUCKETS];
        latency_hist.copy_from_slice(&f[SCALARS..]);
        Counters {
            created: f[0],
            paid: f[1],
            paid_fen: f[2],
            paid_unknown: f[3],
            auto_delivered: f[4],
            handed: f[5],
            refunded: f[6],
            closed: f[7],
            returned_fen: f[8],
            returned_unknown: f[9],
            latency_count: f[10],
            latency_sum_ms: f[11],
            latency_hist,
        }
    }

    /// Little-endian i64s, trailing zeros dropped: a row of a day with one order is a few
    /// dozen bytes, and a field added later reads as 0 from an older row.
    pub fn to_bytes(&self) -> Vec<u8> {
        let f = self.fields();
        let used = f.iter().rposition(|&v| v != 0).map_or(0, |i| i + 1);
        f[..used].iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    pub fn from_bytes(bytes: &[u8]) -> Counters {
        let mut f = [0; WIDTH];
        for (slot, chunk) in f.iter_mut().zip(bytes.chunks_exact(8)) {
            *slot = i64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        }
        Counters::from_fields(&f)
    }

    pub fn add(&mut self, other: &Counters) {
        self.combine(other, 1);
    }

    pub fn sub(&mut self, other: &Counters) {
        self.combine(other, -1);
    }

    fn combine(&mut self, other: &Counters, sign: i64) {
        let mut f = self.fields();
        for (a, b) in f.iter_mut().zip(other.fields()) {
            *a = a.saturating_add(sign.saturating_mul(b));
        }
        *self = Counters::from_fields(&f);
    }

    pub fn is_zero(&self) -> bool {
        self.fields().iter().all(|&v| v == 0)
    }

    /// Paid minus given back, in fen.
    pub fn revenue_fen(&self) -> i64 {
        self.paid_fen - self.returned_fen
    }

    /// Share of finished deliveries that needed no human; none when nothing finished.
    pub fn auto_rate(&self) -> Option<f64> {
        let done = self.auto_delivered + self.handed;
        (done > 0).then(|| self.auto_delivered as f64 / done as f64)
    }

    /// The `q`-quantile (0..1) of payment → delivery time, as the upper bound of the bucket
    /// it falls in; none without samples or when it falls in the open-ended last bucket.
    pub fn latency_quantile_ms(&self, q: f64) -> Option<u64> {
        let total: i64 = self.latency_hist.iter().sum();
        if total <= 0 {
            return None;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (i, n) in self.latency_hist.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return LATENCY_BOUNDS_MS.get(i).copied();
            }
        }
        None
    }
}

fn bucket(latency_ms: u64) -> usize {
    LATENCY_BOUNDS_MS
        .iter()
        .position(|&b| latency_ms < b)
        .unwrap_or(LATENCY_BOUNDS_MS.len())
}

/// How an order's delivery ended, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Auto { at: u64 },
    Handed { at: u64 },
}

/// The first of "delivered" or "handed to a human" in the ledger's history decides, so an
/// outcome never changes once reached (the history is append-only).
fn outcome(ledger: Option<&DeliveryRecord>) -> Option<Outcome> {
    ledger?.history.iter().find_map(|ev| match ev.state {
        DeliveryState::Delivered => Some(Outcome::Auto { at: ev.at }),
        DeliveryState::NeedsHuman | DeliveryState::Manual | DeliveryState::ShippedManually => {
            Some(Outcome::Handed { at: ev.at })
        }
        _ => None,
    })
}

/// Whether the delivery has reached its outcome for the statistics (delivered or handed over).
pub(super) fn has_outcome(ledger: &DeliveryRecord) -> bool {
    outcome(Some(ledger)).is_some()
}

/// Whether two versions of a delivery count the same for the statistics: with one order, the
/// only fact a ledger row adds is its outcome.
pub(super) fn same_outcome(before: Option<&DeliveryRecord>, after: &DeliveryRecord) -> bool {
    outcome(before) == outcome(Some(after))
}

/// What the statistics read of one order and its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub account: String,
    pub item: String,
    created: u64,
    paid: Option<u64>,
    amount_fen: Option<i64>,
    refunded: Option<u64>,
    closed: Option<u64>,
    outcome: Option<Outcome>,
}

impl Facts {
    pub fn of(order: &OrderRecord, ledger: Option<&DeliveryRecord>) -> Facts {
        let mut facts = Facts::of_order(order);
        facts.outcome = outcome(ledger);
        facts
    }

    /// The order's part alone (the outcome is filled by [`Facts::of`]).
    pub fn of_order(order: &OrderRecord) -> Facts {
        // Orders stored before these marks existed fall back to what they have.
        let ended = |status: OrderStatus, mark: Option<u64>| {
            mark.or((order.status == status).then_some(order.updated_time))
        };
        Facts {
            account: order.account.clone(),
            item: order.item_id.clone().unwrap_or_default(),
            created: order.created_time,
            paid: order.paid_at.or(order.payment_time),
            amount_fen: order
                .amount
                .as_deref()
                .and_then(|a| Cents::parse(a).ok())
                .and_then(|c| i64::try_from(c.0).ok()),
            refunded: ended(OrderStatus::Refunded, order.refunded_at),
            closed: ended(OrderStatus::Closed, order.closed_at),
            outcome: None,
        }
    }

    /// True when the order's part differs in a way that may move a number. Field by field,
    /// without copies (a new fact must be added here: the pattern names every field).
    pub fn same_order_part(&self, other: &Facts) -> bool {
        let Facts {
            account,
            item,
            created,
            paid,
            amount_fen,
            refunded,
            closed,
            outcome: _,
        } = self;
        (account, item, created, paid, amount_fen, refunded, closed)
            == (
                &other.account,
                &other.item,
                &other.created,
                &other.paid,
                &other.amount_fen,
                &other.refunded,
                &other.closed,
            )
    }

    /// These facts of an order with its delivery's outcome (as [`Facts::of`] computes them).
    pub fn with_ledger(mut self, ledger: Option<&DeliveryRecord>) -> Facts {
        self.outcome = outcome(ledger);
        self
    }
}

/// Per-day numbers one order adds, for its account and item.
pub fn contributions(f: &Facts, zone: &TimeZone) -> Vec<(Day, Counters)> {
    let mut out: Vec<(Day, Counters)> = Vec::with_capacity(4);
    let mut at = |ms: u64, apply: &dyn Fn(&mut Counters)| {
        let day = Day::of(ms, zone);
        let idx = match out.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                out.push((day, Counters::default()));
                out.len() - 1
            }
        };
        apply(&mut out[idx].1);
    };
    at(f.created, &|c| c.created += 1);
    if let Some(paid) = f.paid {
        at(paid, &|c| {
            c.paid += 1;
            match f.amount_fen {
                Some(fen) => c.paid_fen += fen,
                None => c.paid_unknown += 1,
            }
        });
    }
    for (mark, is_refund) in [(f.refunded, true), (f.closed, false)] {
        let Some(ms) = mark else { continue };
        at(ms, &|c| {
            if is_refund {
                c.refunded += 1;
            } else {
                c.closed += 1;
            }
            if f.paid.is_some() {
                match f.amount_fen {
                    Some(fen) => c.returned_fen += fen,
                    None => c.returned_unknown += 1,
                }
            }
        });
    }
    match f.outcome {
        Some(Outcome::Auto { at: ms }) => at(ms, &|c| {
            c.auto_delivered += 1;
            if let Some(paid) = f.paid {
                let latency = ms.saturating_sub(paid);
                c.latency_count += 1;
                c.latency_sum_ms += i64::try_from(latency).unwrap_or(i64::MAX);
                c.latency_hist[bucket(latency)] += 1;
            }
        }),
        Some(Outcome::Handed { at: ms }) => at(ms, &|c| c.handed += 1),
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shanghai() -> TimeZone {
        zone(DEFAULT_ZONE).unwrap()
    }

    #[test]
    fn beijing_midnight_is_sixteen_hundred_utc() {
        let z = shanghai();
        // 2026-11-29T15:59:59Z is 23:59:59 in Beijing, one second later is the next day.
        let before = 1_795_967_999_000u64;
        assert_eq!(Day::of(before, &z), Day(20261129));
        assert_eq!(Day::of(before + 1_000, &z), Day(20261130));
        assert_eq!(Day(20261130).start_ms(&z), before + 1_000);
        assert_eq!(Day(20261130).add(-30), Day(20261031));
        assert_eq!(Day::parse("2026-11-30"), Some(Day(20261130)));
        assert_eq!(Day::parse("20261130"), Some(Day(20261130)));
        assert_eq!(Day::parse("2026-13-01"), None);
    }

    #[test]
    fn counters_round_trip_and_drop_trailing_zeros() {
        let mut c = Counters {
            created: 3,
            paid_fen: -7,
            ..Counters::default()
        };
        assert_eq!(c.to_bytes().len(), 3 * 8);
        c.latency_hist[LATENCY_BUCKETS - 1] = 2;
        assert_eq!(Counters::from_bytes(&c.to_bytes()), c);
        assert_eq!(Counters::from_bytes(&[]), Counters::default());
        let mut d = c;
        d.sub(&c);
        assert!(d.is_zero());
    }

    #[test]
    fn quantiles_read_the_bucket_bounds() {
        let mut c = Counters::default();
        c.latency_hist[bucket(5_000)] += 9;
        c.latency_hist[bucket(90_000)] += 1;
        assert_eq!(c.latency_quantile_ms(0.5), Some(10_000));
        assert_eq!(c.latency_quantile_ms(0.9), Some(10_000));
        assert_eq!(c.latency_quantile_ms(0.95), Some(120_000));
        assert_eq!(Counters::default().latency_quantile_ms(0.5), None);
    }
}
