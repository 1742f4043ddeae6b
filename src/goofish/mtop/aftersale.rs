//! The after-sale APIs (anchors-2026 §2(c), §2(e)): rate a buyer, the pending-ratings list,
//! the seller's own item list, polish an item. Bodies as YD
//! (`Christ9038/Ydisks-Xianyu-Helper` `internal/xianyu/mtop/account_tasks.go`) and ZB
//! (`zhinianboke/xianyu-auto-reply` `common/services/rate_service.py`) send them.

use serde_json::Value;

use super::client::{Call, Page};
use super::interpret::json_str;
use super::{MtopClient, MtopError};
use crate::marketplace::{ActionOutcome, ListOutcome};

/// Pending-ratings pages read per sweep (50 rows each).
const MAX_RATE_PAGES: u32 = 10;
/// The item list serves at most 20 per page and 50 pages.
const MAX_ITEM_PAGES: u32 = 50;
/// What the gateway answers a successful call with (the `ret` we record).
const SUCCESS: &str = "SUCCESS::调用成功";

impl MtopClient {
    /// `mtop.taobao.idle.rate.create` 4.0 `{tradeId, rate:1, feedback, createOrAppend:0}`.
    pub async fn rate_buyer(&self, order_id: &str, text: &str) -> ActionOutcome {
        let data = format!(
            r#"{{"tradeId":{},"rate":1,"feedback":{},"createOrAppend":0}}"#,
            json_str(order_id),
            json_str(text)
        );
        let call = Call {
            api: "mtop.taobao.idle.rate.create",
            version: "4.0",
            data,
            page: Page::Home,
        };
        action_outcome(
            self.call(call).await,
            &["已评价", "重复评价", "RATE_DUPLICATE", "ALREADY_RATED"],
        )
    }

    /// `mtop.taobao.idle.item.polish` 2.0 `{itemId}`. ZB#328: the path must say 2.0 too.
    pub async fn polish(&self, item_id: &str) -> ActionOutcome {
        let call = Call {
            api: "mtop.taobao.idle.item.polish",
            version: "2.0",
            data: format!(r#"{{"itemId":{}}}"#, json_str(item_id)),
            page: Page::Home,
        };
        action_outcome(
            self.call(call).await,
            &["IDLEITEM_POLISH_AGAIN", "已经擦亮", "一天只能擦亮一次"],
        )
    }

    /// `mtop.taobao.idle.merchant.rate.list` 1.0 from the seller centre: order ids whose
    /// buyer the seller has not rated (`sellerRateStatus` 5).
    pub async fn pending_ratings(&self) -> ListOutcome {
        let mut out = Vec::new();
        for page in 1..=MAX_RATE_PAGES {
            let data = format!(
                r#"{{"pageNumber":{page},"rowsPerPage":50,"queryType":"ORDER","rateSearchParam":{{"sellerRateStatus":"5"}}}}"#
            );
            let call = Call::v1(
                "mtop.taobao.idle.merchant.rate.list",
                data,
                Page::SellerCentre,
            );
            let answer = match self.call(call).await {
                Ok(a) => a,
                Err(e) => return list_failure(e),
            };
            let items = answer.data["module"]["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            out.extend(
                items
                    .iter()
                    .filter_map(|i| field(i, &["tradeId", "orderId"])),
            );
            let total = field(&answer.data["module"], &["totalCount"])
                .and_then(|t| t.parse::<usize>().ok());
            if items.is_empty() || total.is_some_and(|t| out.len() >= t) {
                break;
            }
        }
        out.dedup();
        ListOutcome::Listed(out)
    }

    /// `mtop.idle.web.xyh.item.list` 1.0 for the 在售 (on shelf) group, the body YD
    /// (`internal/xianyu/mtop/items.go`) and ZB (`common/utils/item_info_manager.py`) send:
    /// the account's listings in `data.cardList[].cardData` (`itemStatus` 0 = on shelf;
    /// `auto_` ids are placeholders, skipped like both clients do).
    pub async fn on_shelf_items(&self) -> ListOutcome {
        let Some(user) = self.user_id() else {
            return ListOutcome::Failed {
                reason: "cookies not loaded".into(),
            };
        };
        let mut out = Vec::new();
        for page in 1..=MAX_ITEM_PAGES {
            let data = format!(
                r#"{{"needGroupInfo":false,"pageNumber":{page},"pageSize":20,"groupName":"在售","groupId":"58877261","defaultGroup":true,"userId":{}}}"#,
                json_str(&user)
            );
            let call = Call::v1("mtop.idle.web.xyh.item.list", data, Page::Home);
            let answer = match self.call(call).await {
                Ok(a) => a,
                Err(e) => return list_failure(e),
            };
            let cards = answer.data["cardList"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for card in &cards {
                let d = &card["cardData"];
                let on_shelf = d["itemStatus"].as_i64().unwrap_or(0) == 0;
                if let Some(id) =
                    field(d, &["id"]).or_else(|| field(&d["detailParams"], &["itemId"]))
                {
                    if on_shelf && !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
            if cards.is_empty() || answer.data["nextPage"].as_bool() != Some(true) {
                break;
            }
        }
        ListOutcome::Listed(out)
    }

    /// A fingerprint of the pasted cookies (never the cookies): it changes when fresh cookies
    /// are loaded, which is what reopens after-sale tasks after risk control.
    pub fn cookie_epoch(&self) -> Option<String> {
        self.lock()
            .source
            .as_ref()
            .map(|s| s.chars().take(16).collect())
    }
}

/// A string (or number) field, the first of `names` that is present.
fn field(v: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match &v[*n] {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A write call's answer as the after-sale tasks record it; `already` are the markers of
/// "done before" answers (kept apart: they are not a fresh success).
fn action_outcome(
    result: Result<super::client::Answer, MtopError>,
    already: &[&str],
) -> ActionOutcome {
    match result {
        Ok(_) => ActionOutcome::Done {
            code: SUCCESS.into(),
        },
        Err(MtopError::Business { ret, .. }) if already.iter().any(|m| ret.contains(m)) => {
            ActionOutcome::AlreadyDone { code: ret }
        }
        Err(MtopError::Business { ret, .. }) => ActionOutcome::Refused {
            reason: ret.clone(),
            code: ret,
        },
        Err(MtopError::RiskControl { code }) => ActionOutcome::RiskControl { code },
        Err(e @ (MtopError::NoCookies(_) | MtopError::LoginExpired)) => ActionOutcome::NoLogin {
            reason: e.to_string(),
        },
        Err(
            e @ (MtopError::Token(_) | MtopError::TokenPaused { .. } | MtopError::RateLimited(_)),
        ) => ActionOutcome::NotSent {
            reason: e.to_string(),
        },
        // The request may have reached the API before the answer was lost.
        Err(e @ (MtopError::Network(_) | MtopError::Http(_) | MtopError::BadResponse(_))) => {
            ActionOutcome::Unknown {
                reason: e.to_string(),
            }
        }
    }
}

fn list_failure(e: MtopError) -> ListOutcome {
    match e {
        MtopError::RiskControl { code } => ListOutcome::RiskControl { code },
        e => ListOutcome::Failed {
            reason: e.to_string(),
        },
    }
}
