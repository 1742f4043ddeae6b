//! Group commit: the writes of every caller that arrive together share one redb write
//! transaction and one fsync, and each caller returns only once that commit is durable.
//!
//! **The committer is a role, not a thread.** Every [`Store`](super::Store) write goes through
//! [`Committer::write`] (an async member) or [`Committer::write_blocking`] (a thread that may
//! block: the CLI, `Store::call`, a sync store method). The first member opens a write
//! transaction and runs its own request in it; members that arrive while it is open run their
//! requests in the same transaction, one after another, under one lock. The last request in,
//! when nobody else is waiting to join (or the batch has [`MAX_BATCH`] requests), ends the
//! batch: commits it (one fsync) and publishes the outcome to every member. A lone member
//! therefore commits at once: batching adds no latency when there is nothing to batch.
//! Requests run on their members' own threads, so they may borrow from their callers and need
//! not be `Send` or `'static`, and no request is ever acknowledged before the batch holding it
//! is durable: a stage still gets its answer only after its step is on disk.
//!
//! **Only the commit leaves an async worker.** A member that ran its request and waits for the
//! commit awaits its [`Slot`] (a waker, not a parked thread). The member that ends a batch
//! commits it (flush and fsync) on its own thread: an async member first hands its worker's
//! other tasks to another thread (`block_in_place`), so one thread handoff per batch, not per
//! request. redb begins no write transaction while a commit is in flight, so a member
//! that arrives then does not call `begin_write` (it would block its worker for the fsync):
//! it queues, and the commit, once returned, lets the queued members in; they run in the next
//! transaction, which waits for all of them. That is where batches come from: everything that
//! arrives during one fsync shares the next one.
//!
//! **A failing request never poisons the others: redo without it.** redb offers no way to undo
//! part of a write transaction in multi-writer mode (ephemeral savepoints and non-durable
//! commits are refused there, and a savepoint cannot be taken once a transaction is dirty),
//! and a request that fails may already have written. So when a request fails (an error or a
//! panic), the whole open transaction is aborted; the failing member gets its error, and every
//! member that had already run is told to run its request again in a fresh transaction. That
//! is why requests are `Fn`: running one again must do the same as running it once, so a
//! request computes everything from the transaction and captures only what it reads. The
//! failing request's error is the one it would get in a serial order where it ran after the
//! requests before it, which it did. A failed *commit* (a full disk, an I/O error) makes
//! nothing durable, so every member gets that error (and the handle pauses the store, see
//! `handle.rs`).
//!
//! **A member that goes away loses nothing.** An async member's future may be dropped (a
//! shutdown) while it waits. One that waited for a commit leaves its request to be committed
//! with the batch, as if the process had stopped after the commit; one that was queued gives
//! up its place, and if the batch was waiting only for it, it ends the batch on its way out.

use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use redb::{Database, WriteTransaction};

use super::write_tx::WriteTx;
use super::{Result, StoreError};

self_cell::self_cell!(
    /// A batch's write transaction and the scope of tables its requests have opened: a table
    /// is opened once for all the requests of a batch, not once per request (redb's open and
    /// close are a table-tree lookup and a root write-back each), and closed before the commit.
    struct OpenTx {
        owner: WriteTransaction,
        #[not_covariant]
        dependent: WriteTx,
    }
);

/// Most requests in one write transaction: a cap on how long the first member waits.
pub const MAX_BATCH: usize = 128;

#[derive(Default)]
pub(super) struct Committer {
    /// Members that have arrived and wait to take `open`.
    arriving: AtomicUsize,
    open: Mutex<Open>,
    /// Durable commits made (a batch is one).
    commits: AtomicU64,
    /// Commits that made an async member leave its worker (thread handoffs, counted per order
    /// by the
    /// bench).
    handed_off: AtomicU64,
}

#[derive(Default)]
struct Open {
    batch: Option<Batch>,
    /// A batch's commit is in flight: redb begins no write transaction until it returns.
    committing: bool,
    /// Members that arrived during that commit, let in when it returns.
    queued: Vec<Arc<Slot>>,
    /// Members let in from `queued` that have not run yet: the open batch waits for them.
    expected: usize,
}

struct Batch {
    /// Which database the transaction belongs to (its address: a reopened handle is another
    /// one).
    db: usize,
    tx: OpenTx,
    /// Members whose requests ran in `tx` and who wait for its outcome (the one that ends the
    /// batch is not among them).
    waiting: Vec<Arc<Slot>>,
}

/// Where one waiting member receives what happened: its batch's outcome, or its turn.
#[derive(Default)]
struct Slot {
    outcome: OnceLock<Outcome>,
    waker: AtomicWaker,
}

#[derive(Clone)]
enum Outcome {
    Committed,
    /// The commit failed: nothing of the batch is durable.
    Failed(Failure),
    /// A later request failed and the transaction was aborted: run again.
    Redo,
    /// (To a queued member) the commit it waited for returned: enter now.
    Enter,
}

/// Where the member that ends a batch commits it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum CommitOn {
    /// On the member's own thread, which may block.
    Caller,
    /// On the worker thread of an async member, which first hands its other tasks to another
    /// thread (`block_in_place`; a current-thread runtime uses its blocking pool).
    Worker,
}

/// A commit error in a form every member can rebuild (`StoreError` is not `Clone`).
#[derive(Clone)]
enum Failure {
    Io(std::io::ErrorKind, String),
    Corrupted(String),
    PreviousIo,
    Closed,
    Panicked(String),
    Other(String),
}

impl Failure {
    fn of(e: &StoreError) -> Self {
        match e {
            StoreError::Db(db) => match db.as_ref() {
                redb::Error::Io(io) => Self::Io(io.kind(), io.to_string()),
                redb::Error::Corrupted(m) => Self::Corrupted(m.clone()),
                redb::Error::PreviousIo => Self::PreviousIo,
                redb::Error::DatabaseClosed => Self::Closed,
                other => Self::Other(other.to_string()),
            },
            StoreError::Panicked(m) => Self::Panicked(m.clone()),
            other => Self::Other(other.to_string()),
        }
    }

    fn error(&self) -> StoreError {
        let db = match self {
            Self::Io(kind, m) => redb::Error::Io(std::io::Error::new(*kind, m.clone())),
            Self::Corrupted(m) => redb::Error::Corrupted(m.clone()),
            Self::PreviousIo => redb::Error::PreviousIo,
            Self::Closed => redb::Error::DatabaseClosed,
            Self::Panicked(m) => return StoreError::Panicked(m.clone()),
            Self::Other(m) => return StoreError::Rejected(format!("the batch commit failed: {m}")),
        };
        StoreError::Db(Box::new(db))
    }
}

/// What entering the open batch came to.
enum Entered<T> {
    /// Over: the request failed, or no transaction could begin.
    Done(Result<T>),
    /// Ran; the slot will say how the batch ended.
    Ran(T, Arc<Slot>),
    /// Ran and ends the batch: commit it.
    Ends(T, Batch),
    /// A commit is in flight: wait in the slot for it, then enter.
    Queued(Arc<Slot>),
}

impl Committer {
    /// Run `request` in a shared write transaction and return once that transaction is
    /// committed (see the module doc). Requests that fail abort their own batch, never the
    /// commit of an earlier one.
    pub(super) async fn write<T>(
        self: &Arc<Self>,
        db: &Database,
        on: CommitOn,
        request: impl Fn(&WriteTx) -> Result<T>,
    ) -> Result<T> {
        let mut let_in = false;
        loop {
            let entered = self.enter(db, &request, let_in, on);
            let_in = false;
            match entered {
                Entered::Done(result) => return result,
                Entered::Ends(out, batch) => return self.end(batch, on).await.map(|()| out),
                Entered::Ran(out, slot) => match outcome(&slot).await {
                    Outcome::Committed => return Ok(out),
                    Outcome::Failed(f) => return Err(f.error()),
                    Outcome::Redo | Outcome::Enter => continue,
                },
                Entered::Queued(slot) => {
                    let place = Place {
                        committer: self,
                        slot: &slot,
                    };
                    outcome(&slot).await;
                    std::mem::forget(place);
                    // Only the commit it waited for answers a queued member: its turn.
                    let_in = true;
                }
            }
        }
    }

    /// [`Committer::write`] on a thread that may block (the commit runs on it).
    #[cfg(test)]
    pub(super) fn write_blocking<T>(
        self: &Arc<Self>,
        db: &Database,
        request: impl Fn(&WriteTx) -> Result<T>,
    ) -> Result<T> {
        futures_executor::block_on(self.write(db, CommitOn::Caller, request))
    }

    /// Durable commits made through this committer.
    pub(super) fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits that made an async member leave its worker.
    pub(super) fn handoffs(&self) -> u64 {
        self.handed_off.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, Open> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take the lock and run `request` in the open batch (opening one if none is), or queue
    /// behind a commit in flight. `let_in`: the member was let in from the queue.
    fn enter<T>(
        &self,
        db: &Database,
        request: &impl Fn(&WriteTx) -> Result<T>,
        let_in: bool,
        on: CommitOn,
    ) -> Entered<T> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut open = self.lock();
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        if let_in {
            open.expected = open.expected.saturating_sub(1);
        }
        if open.batch.as_ref().is_some_and(|b| b.db != address(db)) {
            // The handle was reopened under an open batch: its members run again.
            let stale = open.batch.take().expect("checked above");
            publish(&stale.waiting, &Outcome::Redo);
        }
        if open.batch.is_none() {
            if open.committing {
                let slot = Arc::new(Slot::default());
                open.queued.push(slot.clone());
                return Entered::Queued(slot);
            }
            match catch_unwind(AssertUnwindSafe(|| db.begin_write())) {
                Ok(Ok(tx)) => {
                    open.batch = Some(Batch {
                        db: address(db),
                        tx: OpenTx::new(tx, |tx| WriteTx::new(tx)),
                        waiting: Vec::new(),
                    })
                }
                Ok(Err(e)) => return Entered::Done(Err(e.into())),
                Err(panic) => return Entered::Done(Err(panicked(panic.as_ref()))),
            }
        }
        let tx = &open.batch.as_ref().expect("opened above").tx;
        let ran = catch_unwind(AssertUnwindSafe(|| tx.with_dependent(|_, tx| request(tx))));
        let out = match ran {
            Ok(Ok(out)) => out,
            Ok(Err(e)) => return Entered::Done(Err(abort(&mut open, e))),
            Err(panic) => return Entered::Done(Err(abort(&mut open, panicked(panic.as_ref())))),
        };
        // A member that blocks never waits for let-in members: they may be tasks of the very
        // thread it would block (a current-thread runtime); they run in the next batch.
        let let_ins_done = open.expected == 0 || on == CommitOn::Caller;
        let alone = self.arriving.load(Ordering::SeqCst) == 0 && let_ins_done;
        let batch = open.batch.as_mut().expect("still open");
        if alone || batch.waiting.len() + 1 >= MAX_BATCH {
            let batch = open.batch.take().expect("still open");
            open.committing = true;
            return Entered::Ends(out, batch);
        }
        let slot = Arc::new(Slot::default());
        batch.waiting.push(slot.clone());
        Entered::Ran(out, slot)
    }

    /// Commit `batch` where `on` says, and answer its members. An async member on a
    /// multi-threaded runtime commits on its own thread after handing its worker's other
    /// tasks to another thread (`block_in_place`): the commit starts at once, where a blocking
    /// pool thread would first have to be woken and scheduled (on a busy machine, milliseconds
    /// on every batch's critical path). A current-thread runtime, which refuses
    /// `block_in_place`, commits on its blocking pool; with no runtime, inline.
    async fn end(self: &Arc<Self>, batch: Batch, on: CommitOn) -> Result<()> {
        if on == CommitOn::Caller {
            return self.finish(batch);
        }
        if super::handle::on_multi_thread_runtime() {
            self.handed_off.fetch_add(1, Ordering::Relaxed);
            return tokio::task::block_in_place(|| self.finish(batch));
        }
        let Ok(pool) = tokio::runtime::Handle::try_current() else {
            return self.finish(batch);
        };
        self.handed_off.fetch_add(1, Ordering::Relaxed);
        let committer = self.clone();
        pool.spawn_blocking(move || committer.finish(batch))
            .await
            .map_err(|e| StoreError::Join(e.to_string()))?
    }

    /// Commit `batch` (one fsync), tell its other members how it went (only after the commit
    /// returned, so no member is answered before its request is durable), and let in the
    /// members that queued meanwhile.
    fn finish(&self, batch: Batch) -> Result<()> {
        let Batch { tx, waiting, .. } = batch;
        // The tables close (the scope drops) before the commit.
        let tx = tx.into_owner();
        let result = match catch_unwind(AssertUnwindSafe(|| tx.commit())) {
            Ok(done) => done.map_err(StoreError::from),
            Err(panic) => Err(panicked(panic.as_ref())),
        };
        let outcome = match &result {
            Ok(()) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                Outcome::Committed
            }
            Err(e) => Outcome::Failed(Failure::of(e)),
        };
        publish(&waiting, &outcome);
        self.let_in_queued();
        result
    }

    /// The commit in flight returned: let in the members that queued behind it (the next
    /// batch waits for all of them).
    fn let_in_queued(&self) {
        let queued = {
            let mut open = self.lock();
            open.committing = false;
            let queued = std::mem::take(&mut open.queued);
            open.expected += queued.len();
            queued
        };
        publish(&queued, &Outcome::Enter);
    }

    /// A queued member went away (its future was dropped). If it was already let in, the open
    /// batch no longer waits for it, and if it waited for nothing else, end it here.
    fn leave(self: &Arc<Self>, slot: &Arc<Slot>) {
        let mut open = self.lock();
        if let Some(at) = open.queued.iter().position(|s| Arc::ptr_eq(s, slot)) {
            open.queued.swap_remove(at);
            return;
        }
        open.expected = open.expected.saturating_sub(1);
        let idle = self.arriving.load(Ordering::SeqCst) == 0 && open.expected == 0;
        if !idle || open.committing || open.batch.is_none() {
            return;
        }
        open.committing = true;
        let batch = open.batch.take().expect("checked above");
        drop(open);
        let committer = self.clone();
        let commit = move || {
            let _ = committer.finish(batch);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(commit)),
            Err(_) => commit(),
        }
    }
}

/// A queued member's place: given up if the member's future is dropped while it waits.
struct Place<'a> {
    committer: &'a Arc<Committer>,
    slot: &'a Arc<Slot>,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.committer.leave(self.slot);
    }
}

/// Abort the open batch after its latest request failed with `e`: the others run again.
fn abort(open: &mut Open, e: StoreError) -> StoreError {
    let aborted = open.batch.take().expect("still open");
    // Its writes are undone; an abort that fails leaves nothing committed either.
    let _ = aborted.tx.into_owner().abort();
    publish(&aborted.waiting, &Outcome::Redo);
    e
}

/// Wait until `slot` holds an outcome. The outcome is set before the wake, and a wake that
/// comes before the waker is registered is seen by the second look.
fn outcome(slot: &Slot) -> impl Future<Output = Outcome> + '_ {
    poll_fn(move |cx| {
        if let Some(outcome) = slot.outcome.get() {
            return Poll::Ready(outcome.clone());
        }
        slot.waker.register(cx.waker());
        match slot.outcome.get() {
            Some(outcome) => Poll::Ready(outcome.clone()),
            None => Poll::Pending,
        }
    })
}

/// Hand `outcome` to each slot and wake exactly those members.
fn publish(slots: &[Arc<Slot>], outcome: &Outcome) {
    for slot in slots {
        // Each slot is answered once: by its batch's end, or by the commit it queued behind.
        let _ = slot.outcome.set(outcome.clone());
        slot.waker.wake();
    }
}

fn panicked(payload: &(dyn std::any::Any + Send)) -> StoreError {
    StoreError::Panicked(super::handle::panic_message(payload))
}

fn address(db: &Database) -> usize {
    db as *const Database as usize
}

#[cfg(test)]
mod tests;
