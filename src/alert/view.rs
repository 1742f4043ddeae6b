//! What a notification template sees: the alert's facts sorted into `order`, `product`,
//! `account` and `stock`, plus `reason`, `action` and the full fact list.
//!
//! Stages describe alerts as labelled Chinese facts (`订单号`, `规格`, …); this module is the one
//! place that knows which label feeds which template field. Every field is always present
//! (empty when unknown), so templates rendered with strict undefined can test `{% if order.sku %}`
//! and a misspelt field is an error at config load, not an empty line at 3 a.m.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Alert, EventKind};

#[derive(Debug, Clone, Default, Serialize)]
pub struct AlertView {
    /// `manual_ship`, …
    pub event: String,
    /// `待人工发货`, …
    pub event_name: String,
    /// `【待人工发货】`, …
    pub title: String,
    pub order: OrderFacts,
    pub product: ProductFacts,
    pub account: AccountFacts,
    pub stock: StockFacts,
    pub reason: String,
    pub action: String,
    pub attempts: String,
    /// For `recovered`: the name of the problem that cleared (`登录失效`).
    pub recovers: String,
    pub facts: Vec<Fact>,
    /// Facts that no named field above took.
    pub other_facts: Vec<Fact>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OrderFacts {
    pub order_id: String,
    pub item_id: String,
    pub item_title: String,
    pub sku: String,
    pub quantity: String,
    pub amount: String,
    pub buyer: String,
    pub paid_at: String,
    pub ship_deadline: String,
    pub logistics: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ProductFacts {
    pub item_id: String,
    pub title: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct AccountFacts {
    pub id: String,
    pub name: String,
    /// As shown: `主店 (main)`, or the id alone.
    pub label: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct StockFacts {
    pub subject: String,
    pub remaining: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Fact {
    pub label: String,
    pub value: String,
}

impl AlertView {
    pub fn of(alert: &Alert) -> Self {
        let mut v = AlertView {
            event: alert.kind.as_str().to_string(),
            event_name: alert.kind.name().to_string(),
            title: alert.title(),
            action: alert.action.clone(),
            recovers: alert
                .recovers
                .map(|k| k.name().to_string())
                .unwrap_or_default(),
            ..Default::default()
        };
        for (label, value) in &alert.facts {
            let fact = Fact {
                label: label.to_string(),
                value: value.clone(),
            };
            if !v.take(label, value) {
                v.other_facts.push(fact.clone());
            }
            v.facts.push(fact);
        }
        if v.order.order_id.is_empty() {
            v.order.order_id = alert.order_id.clone().unwrap_or_default();
        }
        v
    }

    /// Put a labelled fact into its named field; false when no field takes it.
    fn take(&mut self, label: &str, value: &str) -> bool {
        let value = value.to_string();
        match label {
            "订单号" => self.order.order_id = value,
            "账号" => self.account = account(&value),
            "商品" => {
                self.order.item_title = value.clone();
                self.product.title = value;
            }
            "商品ID" => {
                self.order.item_id = value.clone();
                self.product.item_id = value;
            }
            "规格" => self.order.sku = value,
            "数量" => self.order.quantity = value,
            "金额" => self.order.amount = value,
            "买家" => self.order.buyer = value,
            "付款时间" => self.order.paid_at = value,
            "发货截止(参考)" => self.order.ship_deadline = value,
            "建议物流" => self.order.logistics = value,
            "原因" | "失败原因" => self.reason = value,
            "库存" => self.stock.subject = value,
            "剩余" => self.stock.remaining = value,
            "尝试次数" => self.attempts = value,
            _ => return false,
        }
        true
    }

    /// Short values for channels that take parameters (SMS templates, webhook `data`).
    pub fn vars(&self) -> BTreeMap<String, String> {
        let mut vars = BTreeMap::new();
        let mut put = |k: &str, v: &str| {
            if !v.is_empty() {
                vars.insert(k.to_string(), v.to_string());
            }
        };
        put("event", &self.event_name);
        put("order_id", &self.order.order_id);
        put("item", &self.order.item_title);
        put("sku", &self.order.sku);
        put("quantity", &self.order.quantity);
        put("amount", &self.order.amount);
        put("buyer", &self.order.buyer);
        put("account", &self.account.label);
        put("reason", &self.reason);
        put("deadline", &self.order.ship_deadline);
        put("remaining", &self.stock.remaining);
        vars
    }
}

/// `主店 (main)` → name and id; a bare value is the id.
fn account(label: &str) -> AccountFacts {
    let parsed = label
        .strip_suffix(')')
        .and_then(|s| s.rsplit_once(" ("))
        .map(|(name, id)| (id.to_string(), name.to_string()));
    let (id, name) = parsed.unwrap_or_else(|| (label.to_string(), String::new()));
    AccountFacts {
        id,
        name,
        label: label.to_string(),
    }
}

impl Alert {
    /// Representative alert of each kind: config-load validation renders every template with
    /// it, and `notify-test` sends it.
    pub fn sample(kind: EventKind) -> Alert {
        let order = || {
            Alert::new(kind)
                .order("3000000000000000001")
                .fact("账号", "主店 (main)")
                .fact("商品", "示例商品 Office 激活码")
                .fact("商品ID", "900000000001")
                .fact("规格", "专业版")
                .fact("数量", "2")
                .fact("金额", "¥19.80")
                .fact("买家", "买家昵称")
                .fact("付款时间", "2026-01-01 12:00:00")
                .fact("发货截止(参考)", "2026-01-03 12:00:00")
        };
        match kind {
            EventKind::ManualShip => order()
                .fact("原因", "实物商品需人工发货")
                .fact("建议物流", "顺丰快递")
                .action("请在闲鱼App中尽快发货；发货后执行 `xianyu-shopd orders ship 3000000000000000001 --company 快递公司 --tracking 快递单号`"),
            EventKind::ShipFailed => order()
                .fact("尝试次数", "3")
                .fact("失败原因", "聊天消息发送失败")
                .action("买家未收到任何内容。请执行 `xianyu-shopd orders retry 3000000000000000001` 重新发货"),
            EventKind::NeedsHuman => order()
                .fact("原因", "进程在发送途中停止，无法确定买家是否收到")
                .fact("聊天", "https://www.goofish.com/im?itemId=900000000001&peerUserId=2200000000001")
                .action("请打开上面的聊天核实：买家已收到 → `xianyu-shopd orders resolve 3000000000000000001 --received`；买家未收到 → `xianyu-shopd orders resolve 3000000000000000001 --not-received --retry` 或 `--not-received --manual`"),
            EventKind::OutOfStock => order()
                .fact("库存", "卡池 office")
                .action("请补充库存后手动发货，或退款给买家"),
            EventKind::LowStock => Alert::new(kind)
                .fact("商品", "示例商品 Office 激活码")
                .fact("库存", "卡池 office")
                .fact("剩余", "3")
                .action("请尽快补充库存"),
            EventKind::LoginExpired => {
                Alert::login_expired("main", "主店", "Cookie 已失效（FAIL_SYS_SESSION_EXPIRED）")
            }
            EventKind::RiskControl => {
                Alert::risk_control("main", "主店", "触发滑块验证（RGV587_ERROR）")
            }
            EventKind::Delivered => Alert::new(kind)
                .order("3000000000000000001")
                .fact("账号", "main")
                .fact("商品", "示例商品 Office 激活码")
                .fact("数量", "2"),
            EventKind::Recovered => Alert::recovered(EventKind::LoginExpired, "main", "主店"),
            EventKind::ChatFailed => {
                Alert::chat_failed("main", "主店", "模型 20 秒内没有回答")
            }
            EventKind::DailyReport => Alert::new(kind)
                .fact("日期", "2026-01-01")
                .fact("下单", "12 单")
                .fact("付款", "10 单")
                .fact("营业额", "¥198.00")
                .fact("自动发货率", "90.0%（自动 9，转人工 1）")
                .fact("退款", "0 单")
                .fact("待人工发货", "1 单")
                .fact("库存不足的卡池", "office-2021（剩 2）")
                .action("请打开状态页的“待人工发货”处理等待中的订单"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_ship_facts_land_in_named_fields() {
        let v = AlertView::of(&Alert::sample(EventKind::ManualShip));
        assert_eq!(v.order.order_id, "3000000000000000001");
        assert_eq!(v.order.sku, "专业版");
        assert_eq!(v.account.id, "main");
        assert_eq!(v.account.name, "主店");
        assert_eq!(v.order.ship_deadline, "2026-01-03 12:00:00");
        assert!(v.other_facts.is_empty(), "{:?}", v.other_facts);
        assert_eq!(v.vars()["event"], "待人工发货");
    }
}
