//! The orders export (`/export/orders.csv`): one line per order created in a range of days,
//! Chinese column titles, a UTF-8 byte order mark so Excel opens it as UTF-8, written in
//! chunks so a large shop streams instead of building the file in memory.
//!
//! Never a card key or anything sent in chat: the columns are picked one by one below and
//! `ship_content` is not among them.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::money::Cents;
use crate::store::OrderRecord;

/// Excel reads a CSV as the system code page unless it starts with this.
pub const BOM: &[u8] = "\u{feff}".as_bytes();

pub const HEADER: [&str; 15] = [
    "订单号",
    "账号",
    "商品ID",
    "商品",
    "规格",
    "数量",
    "金额(元)",
    "状态",
    "下单时间",
    "付款时间",
    "发货时间",
    "发货方式",
    "退款时间",
    "关闭时间",
    "买家",
];

/// Appends CSV lines to a buffer the caller drains.
pub struct CsvChunks {
    writer: csv::Writer<Vec<u8>>,
    zone: TimeZone,
}

impl CsvChunks {
    /// A writer whose first chunk holds the BOM and the header.
    pub fn new(zone: TimeZone) -> CsvChunks {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(BOM);
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(buf);
        // Writing to a Vec cannot fail.
        let _ = writer.write_record(HEADER);
        CsvChunks { writer, zone }
    }

    pub fn push(&mut self, o: &OrderRecord, title: Option<&str>) {
        let time = |ms: Option<u64>| ms.map_or_else(String::new, |ms| local(ms, &self.zone));
        let amount = o
            .amount
            .as_deref()
            .and_then(|a| Cents::parse(a).ok())
            .map_or_else(
                || "金额未知".to_string(),
                |c| format!("{}.{:02}", c.0 / 100, c.0 % 100),
            );
        let method = match o.ship_method {
            Some(crate::store::ShipMethod::Auto) => "自动",
            Some(crate::store::ShipMethod::Manual) => "手动",
            None => "",
        };
        let record = [
            o.order_id.clone(),
            o.account.clone(),
            o.item_id.clone().unwrap_or_default(),
            o.item_title
                .clone()
                .or_else(|| title.map(String::from))
                .unwrap_or_default(),
            o.sku.clone().unwrap_or_default(),
            o.quantity.to_string(),
            amount,
            o.status.label().to_string(),
            time(Some(o.created_time)),
            time(o.paid_at.or(o.payment_time)),
            time(o.ship_time),
            method.to_string(),
            time(o.refunded_at),
            time(o.closed_at),
            o.buyer_nick.clone().unwrap_or_default(),
        ];
        let _ = self.writer.write_record(&record);
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.writer.get_ref().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Everything written since the last take.
    pub fn take(&mut self) -> Vec<u8> {
        let fresh = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::with_capacity(64 * 1024));
        std::mem::replace(&mut self.writer, fresh)
            .into_inner()
            .unwrap_or_default()
    }
}

/// `2026-11-30 12:00:05` in `zone`.
pub fn local(ms: u64, zone: &TimeZone) -> String {
    Timestamp::from_millisecond(i64::try_from(ms).unwrap_or(i64::MAX))
        .map(|t| {
            t.to_zoned(zone.clone())
                .strftime("%Y-%m-%d %H:%M:%S")
                .to_string()
        })
        .unwrap_or_default()
}
