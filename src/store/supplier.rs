//! Supplier cards: one record per order with one entry per unit, each claimed before the
//! supplier is called and holding the fetched card afterwards.
//!
//! [`Store::begin_supplier_call`] claims the next unit (`pending → calling`) in the same
//! transaction that checks the delivery may still go ahead; [`Store::finish_supplier_call`]
//! stores the card (`fetched`) or puts the unit back (`pending`, provably nothing bought) or
//! hands the delivery to the seller (`uncertain`). A unit found `calling` after a crash may
//! have been bought: it becomes `uncertain` and is never bought again. The send step reads the
//! fetched cards like reserved pool keys ([`cards_of`]), so a retry or a restart resends the
//! stored card instead of buying another.

use redb::TableDefinition;
use serde::{Deserialize, Serialize};

use super::records::*;
use super::write_tx::WriteTx;
use super::{Result, Store, StoreError, encode, get_json, ledger, outbox, sending};
use crate::why::{Failure, Why};

pub(super) const SUPPLIER_CALLS: TableDefinition<&str, &[u8]> =
    TableDefinition::new("supplier_calls");

/// Where one unit's supplier call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Not bought yet (or provably not bought: a retry calls again with the same key).
    Pending,
    /// Claimed; the request may be on its way. Found after a crash: uncertain.
    Calling,
    /// The card is stored; it is never bought again.
    Fetched,
    /// The supplier may have sold a card we do not have: the seller checks.
    Uncertain,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Calling => "calling",
            Self::Fetched => "fetched",
            Self::Uncertain => "uncertain",
        }
    }

    /// The seller's word for it.
    pub fn label(self) -> &'static str {
        match self {
            Self::Pending => "待获取",
            Self::Calling => "请求中",
            Self::Fetched => "已取得",
            Self::Uncertain => "结果未知（待核对）",
        }
    }
}

/// The return call made for a fetched card when the order is refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReturnState {
    Due,
    Calling,
    Returned,
    Failed,
}

/// One order unit's supplier call.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierUnit {
    /// 1-based.
    pub unit: u32,
    /// Sent as the `Idempotency-Key` header and in the body: `<order_id>-<unit>`.
    pub key: String,
    pub state: CallState,
    pub attempts: u32,
    /// The card. Never shown, logged or printed unmasked.
    #[serde(default)]
    pub card: Option<String>,
    #[serde(default)]
    pub http_status: Option<u16>,
    /// When it was last claimed or settled (unix ms).
    #[serde(default)]
    pub at: u64,
    /// Why the last call did not give a card (Chinese, for the seller).
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub returned: Option<ReturnState>,
}

impl std::fmt::Debug for SupplierUnit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupplierUnit")
            .field("unit", &self.unit)
            .field("key", &self.key)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("card", &self.card.as_deref().map(mask_secret))
            .field("http_status", &self.http_status)
            .field("last_error", &self.last_error)
            .finish()
    }
}

impl SupplierUnit {
    /// This unit with its card masked: what the status page and the CLI may show.
    pub fn masked(&self) -> Self {
        Self {
            card: self.card.as_deref().map(mask_secret),
            ..self.clone()
        }
    }
}

/// Every supplier call of one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SupplierRecord {
    pub order_id: String,
    pub units: Vec<SupplierUnit>,
}

/// May the ship stage call the supplier now, and for which unit?
#[derive(Debug, Clone)]
pub enum BeginCall {
    /// Call for `unit` (claimed): send `key` as the idempotency key.
    Go {
        order: Box<OrderRecord>,
        unit: u32,
        units: u32,
        key: String,
        attempt: u32,
    },
    /// Every unit has its card (or the content already went out): go on with the send.
    AllFetched,
    /// A call's outcome is unknown; the delivery is `needs_human`.
    Uncertain,
    NotShippable(String),
}

/// How one supplier call ended.
#[derive(Clone, PartialEq, Eq)]
pub enum CallResult {
    Fetched {
        card: String,
        status: u16,
    },
    /// Provably nothing bought; `retryable` when trying again may give a card.
    NotBought {
        reason: String,
        status: Option<u16>,
        retryable: bool,
    },
    /// The request may have been received and acted on.
    Uncertain {
        reason: String,
        status: Option<u16>,
    },
}

impl std::fmt::Debug for CallResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fetched { card, status } => write!(f, "Fetched({}, {status})", mask_secret(card)),
            Self::NotBought { reason, status, .. } => write!(f, "NotBought({reason}, {status:?})"),
            Self::Uncertain { reason, status } => write!(f, "Uncertain({reason}, {status:?})"),
        }
    }
}

impl Store {
    /// Claim the next unit to buy for `order_id` (`units` in all, fixed on the first call).
    /// A unit found `calling` (the process stopped mid-call) becomes uncertain and the
    /// delivery goes to the seller with `on_uncertain`.
    pub fn begin_supplier_call(
        &self,
        order_id: &str,
        units: u32,
        on_uncertain: &[OutboxDraft],
    ) -> Result<BeginCall> {
        let now = self.now();
        self.write(|tx| {
            let mut rec = ledger::load(tx, order_id)?;
            let order: OrderRecord = get_json(&*tx.orders()?, "orders", order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no order {order_id}")))?;
            if rec.anything_sent() {
                return Ok(BeginCall::AllFetched);
            }
            if let Some(why) = sending::not_shippable(&rec, &order) {
                return Ok(BeginCall::NotShippable(why));
            }
            let mut calls = load(tx, order_id)?.unwrap_or_else(|| SupplierRecord {
                order_id: order_id.to_string(),
                units: (1..=units.max(1)).map(|u| new_unit(order_id, u)).collect(),
            });
            if let Some(u) = calls
                .units
                .iter_mut()
                .find(|u| u.state == CallState::Calling)
            {
                u.state = CallState::Uncertain;
                u.at = now;
                u.last_error = Some("请求供应商途中进程停止，无法确定是否已购买".into());
                let note = Why::SupplierUncertain {
                    unit: u.unit,
                    failure: None,
                };
                save(tx, &calls)?;
                ledger::hand_over_state(
                    tx,
                    &mut rec,
                    DeliveryState::NeedsHuman,
                    note,
                    on_uncertain,
                    now,
                )?;
                ledger::save(tx, &rec)?;
                return Ok(BeginCall::Uncertain);
            }
            for u in &mut calls.units {
                // A card given back on a refund that was later withdrawn is the supplier's
                // again: this unit is bought anew (with a fresh key, the old one is spent).
                if u.returned == Some(ReturnState::Returned) {
                    u.state = CallState::Pending;
                    u.card = None;
                    u.returned = None;
                    u.key = format!("{}-r{}", u.key, u.attempts);
                }
            }
            if calls.units.iter().any(|u| u.state == CallState::Uncertain) {
                return Ok(BeginCall::Uncertain);
            }
            let total = u32::try_from(calls.units.len()).unwrap_or(u32::MAX);
            let Some(u) = calls
                .units
                .iter_mut()
                .find(|u| u.state == CallState::Pending)
            else {
                return Ok(BeginCall::AllFetched);
            };
            u.state = CallState::Calling;
            u.attempts += 1;
            u.at = now;
            let go = BeginCall::Go {
                order: Box::new(order),
                unit: u.unit,
                units: total,
                key: u.key.clone(),
                attempt: u.attempts,
            };
            save(tx, &calls)?;
            Ok(go)
        })
    }

    /// Record how the call for `unit` went. `alerts` go out with an uncertain result, which
    /// also makes the delivery `needs_human`.
    pub fn finish_supplier_call(
        &self,
        order_id: &str,
        unit: u32,
        result: &CallResult,
        alerts: &[OutboxDraft],
    ) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let mut calls = load(tx, order_id)?
                .ok_or_else(|| StoreError::Rejected(format!("no supplier call for {order_id}")))?;
            let Some(u) = calls.units.iter_mut().find(|u| u.unit == unit) else {
                return Err(StoreError::Rejected(format!(
                    "order {order_id} has no supplier unit {unit}"
                )));
            };
            u.at = now;
            let mut rec = ledger::load(tx, order_id)?;
            match result {
                CallResult::Fetched { card, status } => {
                    u.state = CallState::Fetched;
                    u.card = Some(card.clone());
                    u.http_status = Some(*status);
                    u.last_error = None;
                    rec.note(now, Why::SupplierFetched { unit });
                }
                CallResult::NotBought { reason, status, .. } => {
                    u.state = CallState::Pending;
                    u.http_status = *status;
                    u.last_error = Some(reason.clone());
                    let failure = Failure::classify(reason);
                    rec.note(now, Why::SupplierNotBought { unit, failure });
                }
                CallResult::Uncertain { reason, status } => {
                    u.state = CallState::Uncertain;
                    u.http_status = *status;
                    u.last_error = Some(reason.clone());
                    let note = Why::SupplierUncertain {
                        unit,
                        failure: Some(Failure::classify(reason)),
                    };
                    rec.last_error = Some(reason.clone());
                    ledger::hand_over_state(
                        tx,
                        &mut rec,
                        DeliveryState::NeedsHuman,
                        note,
                        &[],
                        now,
                    )?;
                }
            }
            save(tx, &calls)?;
            ledger::save(tx, &rec)?;
            outbox::enqueue(tx, alerts, now)
        })
    }

    /// Claim the return call of every fetched card of a delivery that was cancelled before
    /// anything reached the buyer (refund, close). Each card is returned at most once: a claim
    /// is never made again, whatever its outcome. Returns (unit, key, card) to return.
    pub fn begin_supplier_returns(&self, order_id: &str) -> Result<Vec<(u32, String, String)>> {
        let now = self.now();
        self.write(|tx| {
            let Some(rec) = ledger::find(tx, order_id)? else {
                return Ok(Vec::new());
            };
            if rec.state != DeliveryState::Cancelled || rec.anything_sent() {
                return Ok(Vec::new());
            }
            let Some(mut calls) = load(tx, order_id)? else {
                return Ok(Vec::new());
            };
            let mut claimed = Vec::new();
            for u in &mut calls.units {
                if u.state == CallState::Fetched && u.returned.is_none() {
                    u.returned = Some(ReturnState::Calling);
                    u.at = now;
                    if let Some(card) = &u.card {
                        claimed.push((u.unit, u.key.clone(), card.clone()));
                    }
                }
            }
            if !claimed.is_empty() {
                save(tx, &calls)?;
            }
            Ok(claimed)
        })
    }

    /// Record how the return call of `unit` went (`failure`: why it did not).
    pub fn finish_supplier_return(
        &self,
        order_id: &str,
        unit: u32,
        failure: Option<&str>,
    ) -> Result<()> {
        let now = self.now();
        self.write(|tx| {
            let Some(mut calls) = load(tx, order_id)? else {
                return Ok(());
            };
            let Some(u) = calls.units.iter_mut().find(|u| u.unit == unit) else {
                return Ok(());
            };
            u.at = now;
            let note = match failure {
                None => {
                    u.returned = Some(ReturnState::Returned);
                    Why::SupplierReturned { unit }
                }
                Some(reason) => {
                    u.returned = Some(ReturnState::Failed);
                    u.last_error = Some(reason.to_string());
                    Why::SupplierReturnFailed {
                        unit,
                        failure: Failure::classify(reason),
                    }
                }
            };
            save(tx, &calls)?;
            if let Some(mut rec) = ledger::find(tx, order_id)? {
                rec.note(now, note);
                ledger::save(tx, &rec)?;
            }
            Ok(())
        })
    }

    /// The supplier calls of an order, cards masked (status page, CLI).
    pub fn supplier_calls(&self, order_id: &str) -> Result<Option<SupplierRecord>> {
        self.read(|tx| {
            let table = match tx.open_table(SUPPLIER_CALLS) {
                Ok(t) => t,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
                Err(e) => return Err(e.into()),
            };
            let rec: Option<SupplierRecord> = get_json(&table, "supplier_calls", order_id)?;
            Ok(rec.map(|mut r| {
                r.units = r.units.iter().map(SupplierUnit::masked).collect();
                r
            }))
        })
    }
}

/// The idempotency key of one order unit: `<order_id>-<unit>`, the same on every retry and
/// after a restart, so a supplier that honours it never sells twice.
pub fn idempotency_key(order_id: &str, unit: u32) -> String {
    format!("{order_id}-{unit}")
}

fn new_unit(order_id: &str, unit: u32) -> SupplierUnit {
    SupplierUnit {
        unit,
        key: idempotency_key(order_id, unit),
        state: CallState::Pending,
        attempts: 0,
        card: None,
        http_status: None,
        at: 0,
        last_error: None,
        returned: None,
    }
}

fn load(tx: &WriteTx, order_id: &str) -> Result<Option<SupplierRecord>> {
    get_json(&*tx.supplier_calls()?, "supplier_calls", order_id)
}

fn save(tx: &WriteTx, rec: &SupplierRecord) -> Result<()> {
    tx.supplier_calls()?
        .insert(rec.order_id.as_str(), encode(rec).as_slice())?;
    Ok(())
}

/// Every card fetched for an order (read side: the chat guard keeps them out of replies).
pub(super) fn fetched_cards(tx: &redb::ReadTransaction, order_id: &str) -> Result<Vec<String>> {
    let table = match tx.open_table(SUPPLIER_CALLS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    let rec: Option<SupplierRecord> = get_json(&table, "supplier_calls", order_id)?;
    Ok(rec
        .map(|r| r.units.into_iter().filter_map(|u| u.card).collect())
        .unwrap_or_default())
}

/// The fetched cards of an order in unit order, once every unit has one (else none): the
/// send step puts them in the message like reserved pool keys.
pub(super) fn cards_of(tx: &WriteTx, order_id: &str) -> Result<Vec<String>> {
    let Some(rec) = load(tx, order_id)? else {
        return Ok(Vec::new());
    };
    let cards: Option<Vec<String>> = rec.units.iter().map(|u| u.card.clone()).collect();
    Ok(cards.unwrap_or_default())
}
