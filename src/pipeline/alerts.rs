//! The alerts the pipeline raises, worded once: every fact, label and suggested command a
//! seller reads about an order comes from a builder here, so stages never borrow each other's
//! wording. Builders are pure; stages route the result and commit it with their own effect.

use crate::alert::{Alert, EventKind};
use crate::config::{Category, Config};
use crate::order::{chat_link, ship_deadline};
use crate::store::OrderRecord;
use crate::why::Why;

/// `manual_ship`: everything the seller needs to ship an order by hand: why, and what to do.
pub(crate) fn manual_ship(config: &Config, order: &OrderRecord, why: &Why) -> Alert {
    let product = order.item_id.as_deref().and_then(|id| config.product(id));
    let company = product
        .and_then(|p| p.logistics_company.clone())
        .or_else(|| config.ship().map(|s| s.logistics_company.clone()))
        .unwrap_or_default();
    order_facts(Alert::new(EventKind::ManualShip), config, order)
        .fact("原因", why.label())
        .fact("建议物流", if product.is_some_and(|p| p.category == Category::Physical) { company } else { String::new() })
        .action(why.next_step(&order.order_id).unwrap_or_else(|| format!(
            "请在闲鱼App中尽快发货；实物商品发货后执行 `xianyu-shopd orders ship {} --company 快递公司 --tracking 快递单号` 记录单号",
            order.order_id
        )))
}

/// `manual_ship` for an order no product rule applies to, with what its title suggests.
pub(crate) fn unclassified(
    config: &Config,
    order: &OrderRecord,
    why: &Why,
    guess: Category,
) -> Alert {
    let label = match guess {
        Category::Virtual => "虚拟商品",
        Category::Physical => "实物商品",
    };
    manual_ship(config, order, why).fact("商品类型(按标题推测)", label)
}

/// `needs_human`: a send whose outcome nobody can prove; never resent automatically. Names the
/// conversation to check and both ways to close the order out.
pub(crate) fn needs_human(config: &Config, order: &OrderRecord, reason: &str) -> Alert {
    let link = chat_link(order.item_id.as_deref(), order.buyer_id.as_deref());
    order_facts(Alert::new(EventKind::NeedsHuman), config, order)
        .fact("原因", reason)
        .fact("聊天", link)
        .action(format!(
            "发货内容可能已经送达买家，系统不会自动重发，卡密仍为此订单保留。请打开上面的聊天核实：买家已收到 → `xianyu-shopd orders resolve {id} --received`；买家未收到 → `xianyu-shopd orders resolve {id} --not-received --retry`（卡密退回卡池并重新自动发货）或 `--not-received --manual`（卡密退回卡池，你自己处理）",
            id = order.order_id
        ))
}

/// `ship_failed`: retries are used up. The reason's next step says whether the message had
/// already reached the buyer (then only the platform's confirmation is missing and the seller
/// must not deliver the content a second time).
pub(crate) fn ship_failed(order: &OrderRecord, product: &str, attempts: u32, why: &Why) -> Alert {
    let id = &order.order_id;
    let action = why.next_step(id).unwrap_or_else(|| {
        format!("请检查后执行 `xianyu-shopd orders retry {id}` 重新发货，或在闲鱼App中手动处理")
    });
    Alert::new(EventKind::ShipFailed)
        .order(id)
        .fact("账号", order.account.clone())
        .fact("商品", product)
        .fact("尝试次数", attempts.to_string())
        .fact("失败原因", why.label())
        .action(action)
}

/// `out_of_stock`: the order needs more than `stock` (a pool or a counted item) holds.
pub(crate) fn out_of_stock(order: &OrderRecord, product: &str, stock: &str, why: &Why) -> Alert {
    Alert::new(EventKind::OutOfStock)
        .order(&order.order_id)
        .fact("商品", product)
        .fact("库存", stock)
        .fact("原因", why.label())
        .action(
            why.next_step(&order.order_id)
                .unwrap_or_else(|| "请补充库存后手动发货，或退款给买家".into()),
        )
}

/// `low_stock`: `stock` fell to its threshold.
pub(crate) fn low_stock(product: &str, stock: &str, remaining: i64) -> Alert {
    Alert::new(EventKind::LowStock)
        .fact("商品", product)
        .fact("库存", stock)
        .fact("剩余", remaining.to_string())
        .action("请尽快补充库存（cards import 或修改 products.yaml 的 stock）")
}

/// `delivered`: an automatic delivery finished.
pub(crate) fn delivered(order: &OrderRecord) -> Alert {
    Alert::new(EventKind::Delivered)
        .order(&order.order_id)
        .fact("账号", order.account.clone())
        .fact("商品", order.item_title.clone().unwrap_or_default())
        .fact("数量", order.quantity.to_string())
}

fn order_facts(alert: Alert, config: &Config, order: &OrderRecord) -> Alert {
    let account = config
        .account(&order.account)
        .map_or(order.account.clone(), |a| format!("{} ({})", a.name, a.id));
    let deadline = order
        .payment_time
        .map(|p| crate::clock::format_beijing(ship_deadline(p)));
    alert
        .order(&order.order_id)
        .fact("账号", account)
        .fact("商品", order.item_title.clone().unwrap_or_default())
        .fact("商品ID", order.item_id.clone().unwrap_or_default())
        .fact("规格", order.sku.clone().unwrap_or_default())
        .fact("数量", order.quantity.to_string())
        .fact(
            "金额",
            order
                .amount
                .clone()
                .map(|a| format!("¥{a}"))
                .unwrap_or_default(),
        )
        .fact(
            "买家",
            order
                .buyer_nick
                .clone()
                .or(order.buyer_id.clone())
                .unwrap_or_default(),
        )
        .fact(
            "付款时间",
            order
                .payment_time
                .map(crate::clock::format_beijing)
                .unwrap_or_default(),
        )
        .fact("发货截止(参考)", deadline.unwrap_or_default())
}
