//! `orders list | show | ship | retry | resolve`. Card keys are always shown masked; `show`
//! prints the proof of delivery (发货凭证) through the status page's own view of it.
//!
//! `orders ship` never releases the keys of a possibly-sent (`needs_human`) delivery: it refuses
//! and points to `orders resolve`, where the seller states what the buyer received.
//! `orders retry` hands `Store::rearm` two resume points, the ship stage (a delivery whose keys
//! are held) and the first stage after `ingest` (one that must start over).

use std::process::ExitCode;

use anyhow::{anyhow, bail};

use super::table::{Align, Table};
use crate::cli::{Dirs, OrdersCommand};
use crate::clock::format_beijing;
use crate::config::{Category, StageKind};
use crate::event::shown;
use crate::order::OrderStatus;
use crate::status::proof::ProofView;
use crate::store::{NotReceived, OrderDetail, OrderRecord, ReceiptEvidence};

pub fn run(dirs: &Dirs, cmd: OrdersCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        OrdersCommand::List { status } => list(dirs, status.as_deref()),
        OrdersCommand::Show { id } => show(dirs, &id),
        OrdersCommand::Ship {
            id,
            company,
            tracking,
        } => ship(dirs, &id, company, tracking),
        OrdersCommand::Retry { id, force } => {
            let config = super::load_config(dirs)?;
            if config.stage_index(StageKind::Ship).is_none() {
                bail!("the pipeline has no ship stage, so there is nothing to retry");
            }
            let ship = crate::pipeline::run_from(&config, StageKind::Ship);
            let from_start = crate::pipeline::first_run(&config);
            let store = super::open_store(dirs)?;
            let rec = store.rearm(&id, force, &from_start, &ship, &super::operator())?;
            println!(
                "order {}: delivery re-armed ({}); the running daemon picks it up within a second",
                shown(&id),
                rec.state.as_str()
            );
            Ok(ExitCode::SUCCESS)
        }
        OrdersCommand::Resolve {
            id,
            received,
            not_received,
            retry,
            manual,
        } => {
            let choice = match (received, not_received, retry, manual) {
                (true, _, _, _) => None,
                (_, true, true, _) => Some(NotReceived::Retry),
                (_, true, _, true) => Some(NotReceived::Manual),
                (_, true, _, _) => bail!(
                    "请选择买家未收到时怎么办：--retry（卡密退回卡池，重新自动发货）或 --manual（卡密退回卡池，由你自己处理）\n(choose --retry or --manual)"
                ),
                _ => bail!(
                    "请说明核实结果：--received（买家已收到）或 --not-received --retry|--manual（买家未收到）\n(choose --received or --not-received)"
                ),
            };
            resolve(dirs, &id, choice)
        }
    }
}

/// Close out an uncertain delivery with what the seller found in the chat.
fn resolve(dirs: &Dirs, id: &str, choice: Option<NotReceived>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(dirs)?;
    let store = super::open_store(dirs)?;
    let order = store
        .order(id)?
        .ok_or_else(|| anyhow!("没有订单 {0} (no order {0})", shown(id)))?;
    let operator = super::operator();
    let rec = match choice {
        None => {
            // Confirm on the platform afterwards if the ship mode does and it has not happened.
            let confirms =
                crate::pipeline::plan::plan_for(&config, &order).is_ok_and(|p| p.mode.confirms());
            let ship = config
                .stage_index(StageKind::Ship)
                .map(|_| crate::store::ShipResume {
                    at: crate::pipeline::run_from(&config, StageKind::Ship),
                    confirms,
                });
            let evidence = ReceiptEvidence::Seller { operator };
            store.mark_uncertain_delivery_received(id, &evidence, ship.as_ref())?
        }
        Some(c) => {
            let from_start = crate::pipeline::first_run(&config);
            store.resolve_not_received(id, c, &operator, &from_start)?
        }
    };
    let sid = shown(id);
    let keys = match &rec.holding {
        crate::store::Holding::Cards { ids, .. } => {
            format!("（卡密 {} 个记为已发给此订单）", ids.len())
        }
        _ => String::new(),
    };
    let msg = match (choice, rec.state) {
        (None, crate::store::DeliveryState::Sent) => format!(
            "订单 {sid}：已记为买家已收到{keys}；守护进程会在一秒内到闲鱼上确认发货（没有守护进程时由下一次 replay 执行）"
        ),
        (None, _) => format!("订单 {sid}：已记为买家已收到{keys}，发货完成"),
        (Some(NotReceived::Retry), _) => format!(
            "订单 {sid}：卡密已退回卡池，重新自动发货；守护进程会在一秒内接手（没有守护进程时由下一次 replay 执行）"
        ),
        (Some(NotReceived::Manual), crate::store::DeliveryState::Cancelled) => {
            format!(
                "订单 {sid}：卡密已退回卡池；订单已「{}」，不再发货",
                order.status.label()
            )
        }
        (Some(NotReceived::Manual), _) => format!(
            "订单 {sid}：卡密已退回卡池，订单交给你处理；处理后用 `xianyu-shopd orders ship {sid}` 记录"
        ),
    };
    println!("{msg} (delivery: {})", rec.state.as_str());
    Ok(ExitCode::SUCCESS)
}

/// Physical goods need a tracking number; a virtual order delivered by hand in chat does not.
fn ship(
    dirs: &Dirs,
    id: &str,
    company: Option<String>,
    tracking: Option<String>,
) -> anyhow::Result<ExitCode> {
    let config = super::load_config(dirs)?;
    let store = super::open_store(dirs)?;
    let order = store
        .order(id)?
        .ok_or_else(|| anyhow!("no order {}", shown(id)))?;
    let physical = order
        .item_id
        .as_deref()
        .and_then(|i| config.product(i))
        .is_none_or(|p| p.category == Category::Physical);
    if physical && (company.is_none() || tracking.is_none()) {
        bail!(
            "order {} is a physical (or unconfigured) item: give --company and --tracking so the buyer can follow the parcel",
            shown(id)
        );
    }
    let (company, tracking) = (company.unwrap_or_default(), tracking.unwrap_or_default());
    let order = store.ship_manually(id, &company, &tracking, &super::operator())?;
    println!(
        "order {} marked {} {} {}",
        shown(&order.order_id),
        order.status.label(),
        shown(&company),
        shown(&tracking)
    );
    Ok(ExitCode::SUCCESS)
}

fn list(dirs: &Dirs, status: Option<&str>) -> anyhow::Result<ExitCode> {
    let status = match status {
        Some(s) => Some(OrderStatus::parse(s).ok_or_else(|| {
            let names: Vec<_> = OrderStatus::ALL.iter().map(|s| s.as_str()).collect();
            anyhow!(
                "unknown status `{s}`; use one of: paid, {}",
                names.join(", ")
            )
        })?),
        None => None,
    };
    let store = super::open_store(dirs)?;
    let orders = store.list_orders(status)?;
    let mut table = Table::new(&[
        ("order", Align::Left),
        ("account", Align::Left),
        ("item", Align::Left),
        ("status", Align::Left),
        ("qty", Align::Right),
        ("updated", Align::Left),
    ]);
    for o in &orders {
        table.row(vec![
            shown(&o.order_id).to_string(),
            shown(&o.account).to_string(),
            shown(o.item_id.as_deref().unwrap_or("-")).to_string(),
            o.status.label().to_string(),
            o.quantity.to_string(),
            format_beijing(o.updated_time),
        ]);
    }
    table.print();
    println!("{} order(s)", orders.len());
    Ok(ExitCode::SUCCESS)
}

fn show(dirs: &Dirs, id: &str) -> anyhow::Result<ExitCode> {
    let store = super::open_store(dirs)?;
    let Some(detail) = store.order_detail(id)? else {
        bail!("no order {}", shown(id))
    };
    print_order(&detail.order);
    print_detail(&detail);
    Ok(ExitCode::SUCCESS)
}

fn print_order(o: &OrderRecord) {
    let opt = |v: &Option<String>| shown(v.as_deref().unwrap_or("-")).into_owned();
    println!("订单 {}  [{}]", shown(&o.order_id), o.status.label());
    println!(
        "  账号 {}  买家 {} {}  会话 {}",
        shown(&o.account),
        opt(&o.buyer_id),
        opt(&o.buyer_nick),
        opt(&o.chat_id)
    );
    println!(
        "  商品 {} {}  规格 {}  数量 {}  金额 {}",
        opt(&o.item_id),
        opt(&o.item_title),
        opt(&o.sku),
        o.quantity,
        opt(&o.amount)
    );
    println!(
        "  付款 {}  发货 {}",
        o.payment_time.map(format_beijing).unwrap_or("-".into()),
        o.ship_time.map(format_beijing).unwrap_or("-".into())
    );
    if o.tracking_number.is_some() {
        println!(
            "  物流 {} {}",
            opt(&o.logistics_company),
            opt(&o.tracking_number)
        );
    }
    if let Some(c) = &o.ship_content {
        println!("  发货内容 (已打码): {}", shown(&c.replace('\n', " / ")));
    }
}

fn print_detail(d: &OrderDetail) {
    println!("状态记录:");
    for e in &d.log {
        let from = e.from.map_or("-", |s| s.label());
        println!(
            "  {}  {} → {}  [{:?} by {}] {}",
            format_beijing(e.at),
            from,
            e.to.label(),
            e.action,
            shown(&e.operator),
            shown(
                &e.why
                    .as_ref()
                    .map_or_else(|| e.remark.clone(), |w| w.label())
            )
        );
    }
    if let Some(l) = &d.ledger {
        println!("发货记录: {}  已尝试 {} 次", l.state.as_str(), l.attempts);
        if let Some(why) = l.why.as_ref().filter(|_| l.state.waits_for_someone()) {
            println!("  原因: {}", shown(&why.label()));
            if let Some(next) = why.next_step(&d.order.order_id) {
                println!("  下一步: {}", shown(&next));
            }
        }
        for h in &l.history {
            println!(
                "  {}  {}  {}",
                format_beijing(h.at),
                h.state.as_str(),
                shown(&h.seller_text())
            );
        }
        if let Some(proof) = &l.proof {
            for line in ProofView::new(proof).terminal_lines() {
                println!("{line}");
            }
        }
    }
    for (id, masked, state) in &d.cards {
        println!("card #{id}: {} ({})", shown(masked), state.as_str());
    }
    for n in &d.notifications {
        println!(
            "notification #{} {} via {}: {:?} {}",
            n.id,
            n.event,
            shown(&n.channel),
            n.state,
            shown(
                &n.last_error
                    .as_deref()
                    .map(crate::why::shown_error)
                    .unwrap_or_default()
            )
        );
    }
}
