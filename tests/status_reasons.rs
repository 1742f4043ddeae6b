//! Every reason an order can wait for the seller, as the seller reads it over a real socket:
//! 待人工发货, 异常, the order list and each order's page show the Chinese reason and the next
//! step, and no English sentence or raw error reaches any of them.
//!
//! The orders are real (ingested through the store, one per reason variant in
//! `why::catalog::every_why`) and handed over through `Store::hand_to_human`, the call the
//! pipeline makes; the pages come from the real status server.

mod status_common;
mod support;

use std::collections::BTreeSet;

use status_common::serve;
use support::html::{html_escape, html_unescape};
use support::{CARD_ITEM, Harness};
use xianyu_shopd::event::EventStatus;
use xianyu_shopd::health::Health;
use xianyu_shopd::status::logs::LogBuffer;
use xianyu_shopd::store::{DeliveryState, NextRun};
use xianyu_shopd::why::Why;
use xianyu_shopd::why::catalog::{VARIANTS, english_sentence, every_why, variant_index};

/// The page text a seller reads: tags dropped, `<code>` (commands, ids) dropped, entities kept
/// as text. One entry per text node.
fn seller_text(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = html;
    let mut in_code = 0usize;
    let mut in_style = false;
    while let Some(lt) = rest.find('<') {
        let text = &rest[..lt];
        if in_code == 0 && !in_style && !text.trim().is_empty() {
            out.push(html_unescape(text.trim()));
        }
        let Some(gt) = rest[lt..].find('>') else {
            break;
        };
        let tag = &rest[lt + 1..lt + gt];
        let name = tag
            .trim_start_matches('/')
            .split([' ', '>'])
            .next()
            .unwrap_or("");
        match (tag.starts_with('/'), name) {
            (false, "code") => in_code += 1,
            (true, "code") => in_code = in_code.saturating_sub(1),
            (false, "style" | "title") => in_style = true,
            (true, "style" | "title") => in_style = false,
            _ => {}
        }
        rest = &rest[lt + gt + 1..];
    }
    out
}

fn assert_chinese_only(path: &str, html: &str) {
    for text in seller_text(html) {
        // Paths and links are addresses, not sentences.
        let text: Vec<&str> = text
            .split(' ')
            .filter(|w| !w.starts_with('/') && !w.contains("://"))
            .collect();
        let text = text.join(" ");
        assert_eq!(
            english_sentence(&text),
            None,
            "{path}: English reaches the seller: {text:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_handover_reason_shows_in_chinese_with_its_next_step() {
    let h = Harness::default_shop();
    let config = h.shop.config.load_full();
    let start = NextRun {
        stage: 0,
        stage_name: config.stages[0].name().to_string(),
        config_version: config.version.clone(),
    };
    let problems: Vec<Why> = every_why().into_iter().filter(Why::is_problem).collect();
    let kinds: BTreeSet<usize> = problems.iter().map(variant_index).collect();
    let progress: BTreeSet<usize> = every_why()
        .iter()
        .filter(|w| !w.is_problem())
        .map(variant_index)
        .collect();
    assert_eq!(
        kinds.len() + progress.len(),
        VARIANTS,
        "every variant is either a hand-over reason or a progress note"
    );
    let mut orders = Vec::new();
    for (i, why) in problems.iter().enumerate() {
        let id = format!("R{i:03}");
        let mut ev = support::event(&id, EventStatus::Paid, CARD_ITEM);
        ev.item_title = Some(format!("商品-{id}"));
        ev.amount = Some("9.90".into());
        h.store.ingest(&ev, &start).unwrap();
        assert!(h.store.hand_to_human(&id, why, &[]).unwrap(), "{id}");
        let d = h.store.delivery(&id).unwrap().unwrap();
        assert_eq!(d.state, DeliveryState::Manual);
        assert_eq!(d.why.as_ref(), Some(why), "the typed reason is stored");
        orders.push((id, why.clone()));
    }
    let s = serve(h, Health::new(), LogBuffer::new(10), "127.0.0.1:0").await;

    let manual = s.get("/manual").await;
    assert_eq!(manual.status, 200);
    assert_chinese_only("/manual", &manual.body);
    for (id, why) in &orders {
        let label = html_escape(&why.label());
        assert!(manual.body.contains(&label), "/manual shows {label}");
        let page = s.get(&format!("/orders/{id}")).await;
        assert_eq!(page.status, 200, "{id}");
        assert_chinese_only(&format!("/orders/{id}"), &page.body);
        assert!(page.body.contains(&label), "{id} shows {label}");
        let next = why
            .next_step(id)
            .expect("a hand-over reason has a next step");
        // The first command of the next step is on the page, as code.
        if let Some(cmd) = next.split('`').nth(1) {
            assert!(
                page.body
                    .contains(&format!("<code>{}</code>", html_escape(cmd))),
                "{id}: next step command {cmd} on the page"
            );
        }
        assert!(page.body.contains("下一步"), "{id}");
    }
    // Out of stock: the pool and the command to refill it, in the manual queue itself.
    assert!(
        manual
            .body
            .contains("库存不足：卡池 office-2021 需要 1 个，只剩 0")
    );
    assert!(
        manual
            .body
            .contains("<code>xianyu-shopd cards import office-2021 卡密文件</code>")
    );
    for path in ["/problems", "/orders", "/", "/logs"] {
        let r = s.get(path).await;
        assert_eq!(r.status, 200, "{path}");
        assert_chinese_only(path, &r.body);
    }
    s.stop().await;
}

#[test]
fn the_page_text_extractor_drops_code_and_keeps_text() {
    let html = "<td>库存不足<br><code>xianyu-shopd orders retry 1</code> out of stock now</td>";
    let text = seller_text(html);
    assert_eq!(text, vec!["库存不足", "out of stock now"]);
    assert!(english_sentence(&text[1]).is_some());
}
