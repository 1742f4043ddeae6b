//! A write transaction whose tables are opened at most once: what every write request body and
//! the store helpers it calls receive instead of redb's `&WriteTransaction`.
//!
//! redb's `open_table` and the close when a `Table` drops cost a lookup in the transaction's
//! table tree and a root write-back each time; the helpers of one request used to open the
//! same tables again and again (about sixty opens per order, 12 % of all CPU, all of it on the
//! serial path of the write transaction, issue 15). Here a table is opened on first use and
//! stays open until the [`WriteTx`] is dropped; each accessor lends it out as a guard.
//!
//! **One guard per table at a time.** redb already refuses a second open of a table that is
//! open, so no helper holds a table while it calls another helper that uses the same table;
//! the guards keep that rule, and asking for a table whose guard is still out is
//! [`StoreError::TableInUse`], never a panic.
//!
//! **A scope is not tied to one request.** It borrows the transaction and must be dropped
//! before the transaction commits (the borrow checker sees to that); until then any number of
//! requests may run in it, one after another. The group committer (`commit.rs`) builds one per
//! batch, so a table is opened once for all the requests that share a commit; a request that
//! runs again (the redo after an abort) gets a fresh scope on its fresh transaction.

use std::cell::{RefCell, RefMut};

use redb::{Key, Table, TableDefinition, TableHandle, Value, WriteTransaction};

use super::{
    ACCOUNT_STATE, AUDIT, CARD_FINGERPRINTS, CARDS, CARDS_AVAILABLE, JOBS, JOBS_DUE, LEDGER, META,
    ORDER_JOBS, ORDER_LOG, ORDERS, OUTBOX, OUTBOX_DUE, SEEN, STOCK, STOCK_LOG,
};
use super::{Result, StoreError};
use super::{aftersale, chat, chat_send, images, outbox, rollup, supplier};

/// A table lent out by a [`WriteTx`] accessor: use it like the `Table` itself.
pub(super) type Lent<'s, 't, K, V> = RefMut<'s, Table<'t, K, V>>;

/// `tables!(accessor: DEFINITION => <Key, Value>, …)`: one field and one accessor per table.
macro_rules! tables {
    ($($field:ident: $def:expr => <$k:ty, $v:ty>),+ $(,)?) => {
        pub(crate) struct WriteTx<'t> {
            tx: &'t WriteTransaction,
            $($field: RefCell<Option<Table<'t, $k, $v>>>,)+
        }

        /// The name of every table a write scope can open (every table the store writes).
        #[cfg(test)]
        pub(super) fn table_names() -> Vec<&'static str> {
            vec![$($def.name(),)+]
        }

        impl<'t> WriteTx<'t> {
            pub(super) fn new(tx: &'t WriteTransaction) -> Self {
                Self {
                    tx,
                    $($field: RefCell::new(None),)+
                }
            }

            $(
                pub(super) fn $field(&self) -> Result<Lent<'_, 't, $k, $v>> {
                    lend(&self.$field, self.tx, $def)
                }
            )+

            /// Close every table this scope holds (an error if one is lent out).
            fn close_all(&self) -> Result<()> {
                $(close(&self.$field, $def)?;)+
                Ok(())
            }
        }
    };
}

tables! {
    meta: META => <&'static str, u64>,
    orders: ORDERS => <&'static str, &'static [u8]>,
    order_log: ORDER_LOG => <(&'static str, u64), &'static [u8]>,
    seen: SEEN => <&'static str, u64>,
    ledger: LEDGER => <&'static str, &'static [u8]>,
    cards: CARDS => <(&'static str, u64), &'static [u8]>,
    cards_available: CARDS_AVAILABLE => <(&'static str, u64), ()>,
    card_fingerprints: CARD_FINGERPRINTS => <(&'static str, &'static str), u64>,
    stock: STOCK => <&'static str, &'static [u8]>,
    stock_log: STOCK_LOG => <u64, &'static [u8]>,
    jobs: JOBS => <u64, &'static [u8]>,
    jobs_due: JOBS_DUE => <(u64, u64), ()>,
    order_jobs: ORDER_JOBS => <&'static str, u64>,
    outbox: OUTBOX => <u64, &'static [u8]>,
    outbox_due: OUTBOX_DUE => <(u64, u64), ()>,
    outbox_groups: outbox::OUTBOX_GROUPS => <(u64, u64), ()>,
    notify_quiet: outbox::NOTIFY_QUIET => <&'static str, (u64, u64)>,
    notify_problems: outbox::NOTIFY_PROBLEMS => <&'static str, u64>,
    audit: AUDIT => <u64, &'static [u8]>,
    account_state: ACCOUNT_STATE => <(&'static str, &'static str), &'static [u8]>,
    image_uploads: images::IMAGE_UPLOADS => <&'static str, &'static [u8]>,
    supplier_calls: supplier::SUPPLIER_CALLS => <&'static str, &'static [u8]>,
    chat_inbound: chat::INBOUND => <(&'static str, &'static str), &'static [u8]>,
    chat_pending: chat::PENDING => <(&'static str, &'static str, u64, &'static str), ()>,
    conversations: chat::CONVERSATIONS => <(&'static str, &'static str), &'static [u8]>,
    chat_history: chat::HISTORY => <(&'static str, &'static str, u64), &'static [u8]>,
    chat_once: chat::ONCE => <(&'static str, &'static str, &'static str), u64>,
    bargain: chat::BARGAIN => <(&'static str, &'static str, &'static str), &'static [u8]>,
    replies: chat_send::REPLIES => <u64, &'static [u8]>,
    replies_open: chat_send::REPLIES_OPEN => <u64, ()>,
    outgoing: chat_send::OUTGOING => <(&'static str, &'static str, &'static str), &'static [u8]>,
    aftersale_actions: aftersale::ACTIONS => <(&'static str, &'static str), &'static [u8]>,
    aftersale_guards: aftersale::GUARDS => <&'static str, &'static [u8]>,
    polish_plans: aftersale::PLANS => <&'static str, &'static [u8]>,
    rollup: rollup::ROLLUP => <(u32, &'static str, &'static str), &'static [u8]>,
    rollup_totals: rollup::ROLLUP_TOTALS => <(u32, &'static str), &'static [u8]>,
    reply_rollup: rollup::REPLY_ROLLUP => <(u32, &'static str, &'static str), u64>,
    stats_meta: rollup::STATS_META => <&'static str, &'static [u8]>,
}

impl<'t> WriteTx<'t> {
    /// The transaction itself, for code that works on tables by their definitions (a copy of
    /// every table into a fresh store, tests' own tables). Every table this scope holds is
    /// closed first, since redb refuses to open a table twice and a scope may have served
    /// earlier requests of the same batch; use none of the scope's accessors meanwhile.
    pub(super) fn transaction(&self) -> Result<&'t WriteTransaction> {
        self.close_all()?;
        Ok(self.tx)
    }

    /// Empty the statistics rollups for a rebuild: the tables are closed, deleted and created
    /// again on their next use (a delete frees their pages at once, row by row would not).
    pub(super) fn delete_rollups(&self) -> Result<()> {
        delete(&self.rollup, self.tx, rollup::ROLLUP)?;
        delete(&self.rollup_totals, self.tx, rollup::ROLLUP_TOTALS)
    }
}

/// The table in `slot`, opened now if this scope has not opened it yet.
fn lend<'s, 't, K: Key + 'static, V: Value + 'static>(
    slot: &'s RefCell<Option<Table<'t, K, V>>>,
    tx: &'t WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<Lent<'s, 't, K, V>> {
    let mut open = slot.try_borrow_mut().map_err(|_| in_use(def))?;
    #[cfg(test)]
    opens::note_use(def.name());
    let table = match open.take() {
        Some(table) => table,
        None => {
            #[cfg(test)]
            opens::note_open(def.name());
            tx.open_table(def)?
        }
    };
    Ok(RefMut::map(open, |open| open.insert(table)))
}

fn close<K: Key + 'static, V: Value + 'static>(
    slot: &RefCell<Option<Table<'_, K, V>>>,
    def: TableDefinition<'static, K, V>,
) -> Result<()> {
    drop(slot.try_borrow_mut().map_err(|_| in_use(def))?.take());
    Ok(())
}

fn delete<K: Key + 'static, V: Value + 'static>(
    slot: &RefCell<Option<Table<'_, K, V>>>,
    tx: &WriteTransaction,
    def: TableDefinition<'static, K, V>,
) -> Result<()> {
    close(slot, def)?;
    tx.delete_table(def)?;
    Ok(())
}

fn in_use<K: Key + 'static, V: Value + 'static>(def: TableDefinition<'static, K, V>) -> StoreError {
    StoreError::TableInUse(def.name().to_string())
}

/// Test builds count, per table, the opens (`tx.open_table`) and the uses (accessor calls, as
/// many as there were opens before this scope existed) on this thread.
#[cfg(test)]
pub(super) mod opens {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    #[derive(Default)]
    struct Counts {
        opens: BTreeMap<String, u32>,
        uses: u32,
    }

    thread_local! {
        static COUNTS: RefCell<Counts> = RefCell::default();
    }

    pub fn note_open(table: &str) {
        COUNTS.with(|c| *c.borrow_mut().opens.entry(table.to_string()).or_default() += 1);
    }

    pub fn note_use(_table: &str) {
        COUNTS.with(|c| c.borrow_mut().uses += 1);
    }

    /// The opens per table and the uses since the last call, and start again from zero.
    pub fn take() -> (BTreeMap<String, u32>, u32) {
        COUNTS.with(|c| {
            let c = std::mem::take(&mut *c.borrow_mut());
            (c.opens, c.uses)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::event::{EventStatus, OrderEvent};
    use crate::store::orders::fixtures;
    use crate::store::records::OrderRecord;
    use crate::store::{
        DeliveryState, JobDone, PartFinish, PartKind, PartPlan, PartResult, SendClaim, SendThen,
        StepResult, Store, next_id,
    };

    fn counts(pairs: &[&str]) -> BTreeMap<String, u32> {
        pairs.iter().map(|t| (t.to_string(), 1)).collect()
    }

    /// The tables opened since the last call, each of which must have been opened once; and
    /// how many times the request asked for a table.
    fn opened(what: &str) -> (BTreeMap<String, u32>, u32) {
        let (opens, uses) = opens::take();
        let twice: Vec<_> = opens.iter().filter(|(_, n)| **n > 1).collect();
        assert!(twice.is_empty(), "{what} opened {twice:?} more than once");
        (opens, uses)
    }

    fn paid_order() -> OrderEvent {
        let mut ev = OrderEvent::new("main", "O1", EventStatus::Paid);
        ev.item_id = Some("900000000001".into());
        ev.amount = Some("9.90".into());
        ev
    }

    /// A virtual order delivered with `send_then_confirm`, the four write requests of
    /// ARCHITECTURE.md "Durability" (issue 15): each request opens each table it works on
    /// once, however many of its helpers use that table.
    #[test]
    fn each_request_of_a_delivery_opens_each_table_once() {
        let store = Store::in_memory(crate::clock::system()).unwrap();
        store.import_cards("keys", "K-1\n", false, "test").unwrap();
        let (start, early) = (fixtures::start(), fixtures::one_key);
        opens::take();
        let mut uses = 0;
        store
            .ingest_reserving(&paid_order(), &start, &early)
            .unwrap();
        let (ingest, n) = opened("the ingest");
        uses += n;
        let want = [
            "card_keys",
            "card_keys_available",
            "delivery_ledger",
            "jobs",
            "jobs_due",
            "meta",
            "order_jobs",
            "order_status_log",
            "orders",
            "stats_rollup",
            "stats_rollup_totals",
            "stats_meta",
            "stock_log",
        ];
        assert_eq!(ingest, counts(&want), "ingest with its reservation");

        let mut build = |_: &OrderRecord, _: &[String]| {
            Ok(vec![PartPlan {
                kind: PartKind::Text,
                summary: "卡密：***".into(),
                fingerprint: "f".into(),
                url: None,
            }])
        };
        store
            .begin_send_with("O1", &SendClaim::default(), &mut build)
            .unwrap();
        let (claim, n) = opened("the send claim");
        uses += n;
        let want = ["card_keys", "delivery_ledger", "orders"];
        assert_eq!(claim, counts(&want), "the send claim");

        let finish = PartFinish {
            then: SendThen::Confirm(&|_: &OrderRecord, _: &[String]| None),
            masked: "卡密：***",
            alerts: &[],
            echo: None,
            read_back: None,
        };
        let accepted = PartResult::Accepted {
            message_id: Some("m1".into()),
        };
        store.finish_part_with("O1", 0, &accepted, &finish).unwrap();
        let (result, n) = opened("the send result");
        uses += n;
        let want = [
            "card_keys",
            "card_keys_available",
            "delivery_ledger",
            "meta",
            "orders",
            "stock_log",
        ];
        assert_eq!(
            result,
            counts(&want),
            "the send result with the confirm claim"
        );

        let job = store.due_jobs(u64::MAX, 1).unwrap().remove(0);
        opens::take();
        let done = JobDone {
            job_id: job.id,
            announce: Vec::new(),
        };
        let state = store
            .finish_step("O1", &StepResult::Confirmed, true, &[], Some(&done))
            .unwrap();
        assert_eq!(state, DeliveryState::Delivered);
        let (confirm, n) = opened("the confirm result");
        uses += n;
        let want = [
            "delivery_ledger",
            "jobs",
            "jobs_due",
            "meta",
            "order_jobs",
            "order_status_log",
            "orders",
            "stats_meta",
            "stats_rollup",
            "stats_rollup_totals",
        ];
        assert_eq!(
            confirm,
            counts(&want),
            "the confirm result with the job's end"
        );

        let opens: u32 = [ingest, claim, result, confirm]
            .iter()
            .flat_map(|o| o.values())
            .sum();
        assert!(opens < uses, "{opens} opens for {uses} uses");
    }

    /// A helper that asks for a table its caller still holds gets an error, not a panic; and
    /// a scope that runs several requests opens a table once for all of them.
    #[test]
    fn a_table_lent_twice_is_an_error_and_a_scope_spans_requests() {
        let store = Store::in_memory(crate::clock::system()).unwrap();
        let refused = store
            .write(|tx| {
                let _held = tx.meta()?;
                Ok(next_id(tx, "n").map_err(|e| e.to_string()))
            })
            .unwrap();
        assert_eq!(
            refused,
            Err("table meta is already in use in this write transaction".to_string())
        );
        opens::take();
        let ids = store
            .write(|tx| Ok((next_id(tx, "n")?, next_id(tx, "n")?, next_id(tx, "m")?)))
            .unwrap();
        assert_eq!(ids, (1, 2, 1));
        let (opens, uses) = opened("three requests in one scope");
        assert_eq!((opens, uses), (counts(&["meta"]), 3));
    }
}
