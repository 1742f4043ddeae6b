//! Durable state: one redb file under the state directory.
//!
//! Every state change the pipeline makes is one write transaction here: the order status and
//! its log row, the delivery-ledger step, the card-key reservation, the stock change, the next
//! durable job and the notification outbox rows it causes commit together or not at all.
//! Stages never open redb themselves; they call the domain methods of [`Store`].
//!
//! The database is opened in redb's multi-writer mode so that `cards import`, `orders` and
//! `backup` work while the daemon runs (they do not take the daemon lock); the "one daemon per
//! state dir" rule is a separate OS lock on the state directory ([`DaemonLock`]). Methods are
//! blocking, except the pipeline's hot write requests (`*_async`, see [`Store::write_async`]);
//! async callers use [`Store::run_here`] for point reads and other write requests and
//! [`Store::call`] for long scans.

mod aftersale;
mod audit;
mod backup;
mod cards;
mod chat;
mod chat_orders;
pub mod chat_records;
mod chat_send;
mod closeout;
mod codec;
#[cfg(test)]
mod codec_golden;
mod coded;
mod commit;
pub mod compact;
mod file_check;
mod handle;
mod images;
mod jobs;
mod ledger;
mod lock;
mod order_rows;
mod orders;
mod outbox;
mod readback;
pub mod records;
mod rollup;
pub mod rollup_facts;
mod sending;
mod stock;
mod supplier;
pub mod timeline;
pub mod views;
mod write_tx;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::clock::SharedClock;
use handle::Handle;
use write_tx::WriteTx;

pub use aftersale::{
    AccountGuard, ActionKind, ActionRecord, ActionResult, ActionState, ActionTarget, BeginAction,
    BreakerTrip, PolishPlan, TaskKey, TaskKind,
};
pub use cards::{ImportReport, PoolCounts};
pub use chat::{
    ChatSnapshot, HISTORY_KEEP, InboundOutcome, OwnMessage, TakeoverRule, next_takeover,
};
pub use chat_orders::BuyerOrder;
pub use chat_records::*;
pub use chat_send::{BeginSend, PlanOutcome, SendResult};
pub use closeout::{INTERNAL_ERROR_REASON, NotReceived, ReceiptEvidence, ShipResume};
pub use handle::RETRY_EVERY as REOPEN_EVERY;
pub use images::UploadedImage;
pub use jobs::{JobDone, NextRun};
pub use ledger::{BeginStep, ReserveOutcome, ReserveRequest, ShipStep, StepResult};
pub use lock::DaemonLock;
pub use orders::{EarlyReserve, IngestOutcome, OrderDetail, Reservation};
pub use outbox::{OutboxAttempt, OutboxCounts, problem_quiet_key};
pub use readback::{ReadBackArm, ReadBackResult};
pub use records::*;
pub use rollup::{ALL_ITEMS, RebuildReport, RollupRow};
pub use rollup_facts::{Counters, Day};
pub use sending::{
    BeginDelivery, BeginFollowUp, EchoTo, PartFinish, PartNext, PartPlan, PartResult, SendClaim,
    SendThen,
};
pub use supplier::{BeginCall, CallResult, CallState, ReturnState, SupplierRecord, SupplierUnit};

pub const DB_FILE: &str = "shop.redb";
pub const LOCK_FILE: &str = "daemon.lock";
/// 4: per-order records are positional MessagePack arrays with their enums as one-byte codes
/// (`codec.rs`, `coded.rs`), the rest maps; 3: the same with enum names; 2: MessagePack maps;
/// 1: JSON. Older stores are migrated on first open.
pub const SCHEMA_VERSION: u64 = 4;

const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const ORDERS: TableDefinition<&str, &[u8]> = TableDefinition::new("orders");
const ORDER_LOG: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("order_status_log");
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen_events");
const LEDGER: TableDefinition<&str, &[u8]> = TableDefinition::new("delivery_ledger");
const CARDS: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("card_keys");
const CARDS_AVAILABLE: TableDefinition<(&str, u64), ()> =
    TableDefinition::new("card_keys_available");
const CARD_FINGERPRINTS: TableDefinition<(&str, &str), u64> =
    TableDefinition::new("card_key_fingerprints");
const STOCK: TableDefinition<&str, &[u8]> = TableDefinition::new("stock");
const STOCK_LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("stock_log");
const JOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("jobs");
const JOBS_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("jobs_due");
const ORDER_JOBS: TableDefinition<&str, u64> = TableDefinition::new("order_jobs");
const OUTBOX: TableDefinition<u64, &[u8]> = TableDefinition::new("outbox");
const OUTBOX_DUE: TableDefinition<(u64, u64), ()> = TableDefinition::new("outbox_due");
const AUDIT: TableDefinition<u64, &[u8]> = TableDefinition::new("audit_log");
/// Per-account values the Goofish client keeps (device id, token age).
const ACCOUNT_STATE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("account_state");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create state directory {0}: {1}")]
    StateDir(PathBuf, std::io::Error),
    #[error("the store {0} is locked by another process that opened it exclusively")]
    InUse(PathBuf),
    #[error(
        "另一个 xianyu-shopd 守护进程正在使用状态目录 {dir}（{holder}）；请先停掉它，或换一个 --state-dir (another xianyu-shopd daemon is already running on state directory {dir}; stop it first or use another --state-dir)"
    )]
    DaemonRunning { dir: PathBuf, holder: String },
    #[error(
        "store {path} has schema version {found}, this build understands {SCHEMA_VERSION}; use a matching xianyu-shopd version or restore a backup"
    )]
    Schema { path: PathBuf, found: u64 },
    /// The store file exists but cannot be a database (empty, cut short, something else).
    #[error(
        "数据库文件 {path} 不能用：{detail}。xianyu-shopd 不会把它当成一个新的空数据库（那样会丢掉所有订单和卡密）。请从备份恢复：停止 xianyu-shopd，把这个文件改名留存（例如加上 .damaged），把最近一次 `xianyu-shopd backup` 生成的文件复制为 {path}，再启动。如果这是一个还没有任何数据的新店，删掉这个文件即可 (the store file {path} is unusable: {detail}; restore a backup: stop xianyu-shopd, move the file aside, copy your latest backup to {path}, start again)"
    )]
    Unusable { path: PathBuf, detail: String },
    #[error("store error: {0}")]
    Db(Box<redb::Error>),
    #[error("corrupt record in table {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
    #[error("{0}")]
    Rejected(String),
    #[error("background task failed: {0}")]
    Join(String),
    /// The state directory cannot be written (a full disk, an I/O error). Work pauses and
    /// resumes by itself once the store can be reopened; see `handle.rs`.
    #[error(
        "状态目录 {dir} 无法写入（{detail}）：磁盘满了吗？腾出空间后重新运行即可继续，已经处理的不会重复；守护进程会自己恢复 (the state directory {dir} cannot be written: {detail})"
    )]
    Unavailable { dir: PathBuf, detail: String },
    /// The store failed verification: nothing more is written to it.
    #[error(
        "数据库 {path} 已损坏（{detail}），xianyu-shopd 不会再写入它。请从备份恢复：停止 xianyu-shopd，把 {path} 改名留存（例如加上 .damaged），再把最近一次 `xianyu-shopd backup` 生成的文件复制为 {path}，然后启动 (the store is damaged ({detail}); restore a backup: stop xianyu-shopd, move {path} aside, copy your latest backup to {path})"
    )]
    Damaged { path: PathBuf, detail: String },
    /// A store helper asked for a table that a helper of the same transaction still holds
    /// (`write_tx.rs`): a bug in this program, refused rather than a panic.
    #[error("table {0} is already in use in this write transaction")]
    TableInUse(String),
    /// A store access panicked; the store was verified again right after.
    #[error("a store operation panicked: {0}")]
    Panicked(String),
}

impl StoreError {
    /// The state directory cannot be written right now (a full disk): wait, do not retry per
    /// item, do not quarantine anything.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

impl<E: Into<redb::Error>> From<E> for StoreError {
    fn from(e: E) -> Self {
        Self::Db(Box::new(e.into()))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A cheap, cloneable handle on the shop's database.
#[derive(Clone)]
pub struct Store {
    handle: Arc<Handle>,
    committer: Arc<commit::Committer>,
    clock: SharedClock,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Open (creating if needed) the store in `state_dir`, verifying every page first: a
    /// damaged file is [`StoreError::Damaged`], never a panic, and is not written to. An
    /// existing file that cannot be a database (empty, cut short) is [`StoreError::Unusable`],
    /// never a new empty store.
    pub fn open(state_dir: &Path, clock: SharedClock) -> Result<Self> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| StoreError::StateDir(state_dir.to_path_buf(), e))?;
        let path = state_dir.join(DB_FILE);
        file_check::refuse_unusable(&path)?;
        let handle = Handle::open_file(&path)?;
        Self::init(handle, clock, path)
    }

    /// A store that lives in memory only: dry runs and benchmarks.
    pub fn in_memory(clock: SharedClock) -> Result<Self> {
        let db = redb::Builder::new().create_with_backend(redb::backends::InMemoryBackend::new())?;
        Self::init(Handle::in_memory(db), clock, PathBuf::from(":memory:"))
    }

    fn init(handle: Handle, clock: SharedClock, path: PathBuf) -> Result<Self> {
        let store = Self {
            handle: Arc::new(handle),
            committer: Arc::default(),
            clock,
            path,
        };
        store.create_tables()?;
        Ok(store)
    }

    fn create_tables(&self) -> Result<()> {
        // Tables are created in the transaction that writes the schema version, so a matching
        // version means there is nothing to write (and a reader does not contend for the lock).
        let current = self.read(|tx| match tx.open_table(META) {
            Ok(meta) => Ok(meta.get("schema_version")?.map(|v| v.value())),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
            Err(e) => Err(e.into()),
        })?;
        if current != Some(SCHEMA_VERSION) {
            self.write(|tx| self.create_or_migrate(tx))?;
        }
        // Tables added without a format change (chat) are created on first open.
        if !self.read(chat::tables_exist)? {
            self.write(chat::create_tables)?;
        }
        if !self.read(aftersale::tables_exist)? {
            self.write(aftersale::create_tables)?;
        }
        // A store made before the statistics gets them computed from its orders once.
        if !self.read(rollup::ready)? {
            self.write(|tx| {
                rollup::create_tables(tx)?;
                rollup::rebuild(tx).map(drop)
            })?;
        }
        Ok(())
    }

    /// A new store gets every table; an older store (JSON, maps, or arrays with enum names) is
    /// migrated in the same transaction that writes the new version, so a crash leaves it as
    /// it was.
    fn create_or_migrate(&self, tx: &WriteTx) -> Result<()> {
        let mut meta = tx.meta()?;
        let found = meta.get("schema_version")?.map(|v| v.value());
        match found {
            None => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
                drop(meta);
                open_all_tables(tx)
            }
            Some(SCHEMA_VERSION) => Ok(()),
            Some(1..=3) => {
                meta.insert("schema_version", SCHEMA_VERSION)?;
                drop(meta);
                codec::migrate(tx).map(drop)
            }
            Some(other) => Err(StoreError::Schema {
                path: self.path.clone(),
                found: other,
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn now(&self) -> u64 {
        self.clock.now_ms()
    }

    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// Run blocking store work off the async runtime, on tokio's blocking pool: one thread
    /// handoff there and one back. For work that may take long even when nothing blocks
    /// (scans of many rows: status pages, statistics, exports); the pipeline's point reads and
    /// single write requests use [`Store::run_here`].
    pub async fn call<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        let store = self.clone();
        self.handle.count_handoff();
        tokio::task::spawn_blocking(move || handle::off_worker(|| f(&store)))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Run short store work on the calling task's own thread: a point read costs no thread
    /// handoff. A read is served from redb's page cache (a cache miss is one `pread` of a page)
    /// and never waits for a commit: redb holds its header lock for one header write at a
    /// time, not across an fsync. A blocking write request in `f` leaves the async worker for
    /// its wait (`block_in_place`, [`Store::write`]); the pipeline's hot writes await instead
    /// ([`Store::write_async`]).
    ///
    /// Only for work that is short when it does not block: point reads and write requests.
    /// On a current-thread runtime (where `block_in_place` is not allowed) this is
    /// [`Store::call`].
    pub async fn run_here<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T> + Send + 'static,
    {
        if handle::on_multi_thread_runtime() {
            f(self)
        } else {
            self.call(f).await
        }
    }

    /// Thread handoffs store accesses through this handle have made (`Store::call`'s
    /// blocking-pool hops and the `block_in_place` sections around writes and reopens):
    /// counted in tests so that a cut handoff stays cut, and printed per order by
    /// `benches/replay_throughput`.
    pub fn handoff_count(&self) -> u64 {
        self.handle.handoffs() + self.committer.handoffs()
    }

    /// One write request: `f` runs in a write transaction, and this returns once that
    /// transaction is committed (durable); an error from `f` undoes everything `f` wrote.
    /// Requests arriving together share one transaction and one fsync (`commit.rs`, which
    /// also says why `f` is `Fn`: it may run again). Guarded like every access (`handle.rs`).
    /// This waits for the commit by blocking, so called on an async worker it leaves the
    /// worker first (`Handle::block`): a thread handoff. The pipeline's hot requests use
    /// [`Store::write_async`] instead. `f` gets its tables from a [`WriteTx`] of its own run,
    /// which opens each table once however many helpers use it.
    fn write<T>(&self, f: impl Fn(&WriteTx) -> Result<T>) -> Result<T> {
        self.wait(self.write_async(f))
    }

    /// Run a store future to its end on this thread, blocking (a sync store method that
    /// shares its body with an async one): leaves an async worker first, as [`Store::write`].
    fn wait<T>(&self, request: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.handle.block(|| futures_executor::block_on(request))
    }

    /// [`Store::write`] for async callers: the request runs on the caller's worker, the wait
    /// for the commit is an `await` (no thread leaves the runtime), and the commit of a batch
    /// this request ends runs on this thread after the worker's other tasks were handed away
    /// (`commit.rs`). Called from a thread that may block
    /// (inside [`Store::write`], a `Store::call`, no runtime) it commits on that thread.
    pub(super) async fn write_async<T>(&self, f: impl Fn(&WriteTx) -> Result<T>) -> Result<T> {
        self.handle.count_request();
        let on = if handle::may_block_here() {
            commit::CommitOn::Caller
        } else {
            commit::CommitOn::Worker
        };
        let db = self.handle.current()?;
        let result = self.committer.write(&db, on, f).await;
        // Let go of the handle before a failover closes it.
        drop(db);
        self.handle.settle(result)
    }

    /// Write requests this process has made since it opened the store (requests that arrive
    /// together share a commit, so this is at least [`Store::commit_count`]): what a merge of
    /// durable points saves, counted in tests.
    pub fn write_request_count(&self) -> u64 {
        self.handle.requests()
    }

    /// Durable commits this process has made to the store since it opened it: `/metrics`
    /// exports it as `xianyu_shopd_store_commits_total` and `benches/replay_throughput`
    /// divides it by orders.
    pub fn commit_count(&self) -> u64 {
        self.committer.commits()
    }

    /// `fdatasync` calls this process has made on the store file since it opened it, counted
    /// at redb's file backend (`handle.rs`), not estimated: a commit is two (redb's two-phase
    /// commit, which its multi-writer mode always uses) plus one when the file grows.
    /// `/metrics` exports it as `xianyu_shopd_store_fsyncs_total`; 0 for an in-memory store.
    pub fn fsync_count(&self) -> u64 {
        self.handle.syncs()
    }

    fn read<T>(&self, f: impl FnOnce(&redb::ReadTransaction) -> Result<T>) -> Result<T> {
        self.handle.run(|db| {
            let tx = db.begin_read()?;
            f(&tx)
        })
    }

    /// Size of the database file in bytes (0 for an in-memory store).
    pub fn file_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }
}

/// Create every table (a new store) or make sure it exists (after a migration), and compute
/// the statistics from the orders.
fn open_all_tables(tx: &WriteTx) -> Result<()> {
    tx.orders()?;
    tx.order_log()?;
    tx.seen()?;
    tx.ledger()?;
    tx.cards()?;
    tx.cards_available()?;
    tx.card_fingerprints()?;
    tx.stock()?;
    tx.stock_log()?;
    tx.jobs()?;
    tx.jobs_due()?;
    tx.order_jobs()?;
    tx.outbox()?;
    tx.outbox_due()?;
    tx.audit()?;
    tx.account_state()?;
    tx.image_uploads()?;
    chat::create_tables(tx)?;
    aftersale::create_tables(tx)?;
    rollup::create_tables(tx)?;
    rollup::rebuild(tx).map(drop)
}

/// Run blocking store work from async code: on a multi-threaded runtime the worker hands its
/// other tasks away first (`block_in_place`); elsewhere it simply runs.
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Next value of a named counter, in the caller's transaction.
fn next_id(tx: &WriteTx, name: &str) -> Result<u64> {
    let mut meta = tx.meta()?;
    let next = meta.get(name)?.map(|v| v.value()).unwrap_or(0) + 1;
    meta.insert(name, next)?;
    Ok(next)
}

/// Records other than the per-order ones are MessagePack maps with field names (`codec.rs`).
fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    codec::encode(v)
}

/// The per-order records are positional MessagePack arrays (schema 4, `codec.rs`).
fn encode_row<T: codec::Positional>(v: &T) -> Vec<u8> {
    codec::encode_row(v)
}

/// A MessagePack record (array or map), or a JSON one of schema 1 (`codec.rs`).
fn decode<T: DeserializeOwned>(table: &'static str, bytes: &[u8]) -> Result<T> {
    #[cfg(test)]
    codec::decodes::note(table);
    codec::decode(bytes).map_err(|detail| StoreError::Corrupt { table, detail })
}

/// Get and decode a JSON row by `&str` key.
fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
    key: &str,
) -> Result<Option<T>> {
    match table.get(key)? {
        Some(v) => decode(name, v.value()).map(Some),
        None => Ok(None),
    }
}

impl Store {
    /// A per-account value kept by the marketplace client (device id, token times).
    pub fn account_value(&self, account: &str, key: &str) -> Result<Option<Vec<u8>>> {
        self.read(|tx| {
            Ok(tx
                .open_table(ACCOUNT_STATE)?
                .get((account, key))?
                .map(|v| v.value().to_vec()))
        })
    }

    pub fn set_account_value(&self, account: &str, key: &str, value: &[u8]) -> Result<()> {
        self.write(|tx| {
            tx.account_state()?.insert((account, key), value)?;
            Ok(())
        })
    }

    /// The stored value, or `make()` stored atomically if there is none yet (a device id is
    /// generated once per account and then reused forever).
    pub fn account_value_or_insert(
        &self,
        account: &str,
        key: &str,
        make: impl FnOnce() -> Vec<u8>,
    ) -> Result<Vec<u8>> {
        // Made up front: a write request may run more than once (group commit).
        let made = make();
        self.write(|tx| {
            let mut t = tx.account_state()?;
            if let Some(v) = t.get((account, key))? {
                return Ok(v.value().to_vec());
            }
            t.insert((account, key), made.as_slice())?;
            Ok(made.clone())
        })
    }
}
