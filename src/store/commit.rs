//! Group commit: the writes of every caller that arrive together share one redb write
//! transaction and one fsync, and each caller returns only once that commit is durable.
//!
//! **The committer is a role, not a thread.** Every [`Store`](super::Store) write goes through
//! [`Committer::write`]. The first caller opens a write transaction and runs its own request in
//! it; callers that arrive while a transaction is open (or while the previous batch's fsync is
//! running, which is exactly when they pile up) run their requests in the same transaction, one
//! after another. The last request in, when nobody else is waiting to join or the batch has
//! [`MAX_BATCH`] requests, takes the transaction, commits it (one fsync) and publishes the
//! outcome to every member. A lone caller therefore commits at once, as before: batching adds
//! no latency when there is nothing to batch. Requests run on their callers' threads, so they
//! may borrow from their callers and need not be `Send` or `'static`, and no request is ever
//! acknowledged before the batch holding it is durable: a stage still gets its answer only
//! after its step is on disk.
//!
//! **A failing request never poisons the others: redo without it.** redb offers no way to undo
//! part of a write transaction in multi-writer mode (ephemeral savepoints and non-durable
//! commits are refused there, and a savepoint cannot be taken once a transaction is dirty),
//! and a request that fails may already have written. So when a request fails (an error or a
//! panic), the whole open transaction is aborted; the failing caller gets its error, and every
//! member that had already run is told to run its request again in a fresh transaction. That
//! is why requests are `Fn`: running one again must do the same as running it once, so a
//! request computes everything from the transaction and captures only what it reads. The
//! failing request's error is the one it would get in a serial order where it ran after the
//! requests before it, which it did. A failed *commit* (a full disk, an I/O error) makes
//! nothing durable, so every member gets that error (and the handle pauses the store, see
//! `handle.rs`).
//!
//! Batches are numbered; a member waits for its batch's outcome under a separate lock, so the
//! committing caller never waits for the callers that are filling the next batch.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use redb::{Database, WriteTransaction};

use super::{Result, StoreError};

/// Most requests in one write transaction: a cap on how long the first member waits.
pub const MAX_BATCH: usize = 128;

#[derive(Default)]
pub(super) struct Committer {
    /// Callers that have arrived and wait to take `open`.
    arriving: AtomicUsize,
    open: Mutex<Open>,
    outcomes: Mutex<HashMap<u64, Published>>,
    published: Condvar,
}

#[derive(Default)]
struct Open {
    batch: Option<Batch>,
    next_id: u64,
}

struct Batch {
    id: u64,
    /// Which database the transaction belongs to (its address: a reopened handle is another
    /// one).
    db: usize,
    tx: WriteTransaction,
    /// Requests that ran in `tx` and wait for its outcome.
    waiting: usize,
}

/// A batch's outcome as its waiting members read it.
struct Published {
    outcome: Outcome,
    /// Members that have not read it yet; the entry goes when this reaches zero.
    unread: usize,
}

#[derive(Clone)]
enum Outcome {
    Committed,
    /// The commit failed: nothing of the batch is durable.
    Failed(Failure),
    /// A later request failed and the transaction was aborted: run again.
    Redo,
}

/// A commit error in a form every member can rebuild (`StoreError` is not `Clone`).
#[derive(Clone)]
enum Failure {
    Io(std::io::ErrorKind, String),
    Corrupted(String),
    PreviousIo,
    Closed,
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
            other => Self::Other(other.to_string()),
        }
    }

    fn error(&self) -> StoreError {
        let db = match self {
            Self::Io(kind, m) => redb::Error::Io(std::io::Error::new(*kind, m.clone())),
            Self::Corrupted(m) => redb::Error::Corrupted(m.clone()),
            Self::PreviousIo => redb::Error::PreviousIo,
            Self::Closed => redb::Error::DatabaseClosed,
            Self::Other(m) => return StoreError::Rejected(format!("the batch commit failed: {m}")),
        };
        StoreError::Db(Box::new(db))
    }
}

/// What running one request in the open batch came to.
enum Ran<T> {
    /// Durable: the caller's answer.
    Done(Result<T>),
    /// The batch was aborted by a later request: run again.
    Again,
}

impl Committer {
    /// Run `request` in a shared write transaction and return once that transaction is
    /// committed (see the module doc). Requests that fail abort their own batch, never the
    /// commit of an earlier one.
    pub(super) fn write<T>(
        &self,
        db: &Database,
        count_commit: impl Fn(),
        request: impl Fn(&WriteTransaction) -> Result<T>,
    ) -> Result<T> {
        loop {
            match self.run_once(db, &count_commit, &request) {
                Ran::Done(result) => return result,
                Ran::Again => continue,
            }
        }
    }

    fn run_once<T>(
        &self,
        db: &Database,
        count_commit: &impl Fn(),
        request: &impl Fn(&WriteTransaction) -> Result<T>,
    ) -> Ran<T> {
        self.arriving.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        self.arriving.fetch_sub(1, Ordering::SeqCst);
        if open.batch.as_ref().is_some_and(|b| b.db != address(db)) {
            // The handle was reopened under an open batch: its members run again.
            let stale = open.batch.take().expect("checked above");
            self.publish(stale.id, Outcome::Redo, stale.waiting);
        }
        if open.batch.is_none() {
            let tx = match db.begin_write() {
                Ok(tx) => tx,
                Err(e) => return Ran::Done(Err(e.into())),
            };
            let id = open.next_id;
            open.next_id += 1;
            open.batch = Some(Batch {
                id,
                db: address(db),
                tx,
                waiting: 0,
            });
        }
        let batch = open.batch.as_mut().expect("opened above");
        let id = batch.id;
        let out = match catch_unwind(AssertUnwindSafe(|| request(&batch.tx))) {
            Ok(Ok(out)) => out,
            failed => {
                let aborted = open.batch.take().expect("still open");
                drop(open);
                let waiting = aborted.waiting;
                // Its writes are undone; an abort that fails leaves nothing committed either.
                let _ = aborted.tx.abort();
                if waiting > 0 {
                    self.publish(id, Outcome::Redo, waiting);
                }
                return Ran::Done(Err(match failed {
                    Ok(Err(e)) => e,
                    Err(panic) => {
                        StoreError::Panicked(super::handle::panic_message(panic.as_ref()))
                    }
                    Ok(Ok(_)) => unreachable!("matched above"),
                }));
            }
        };
        batch.waiting += 1;
        let alone = self.arriving.load(Ordering::SeqCst) == 0;
        if alone || batch.waiting >= MAX_BATCH {
            let batch = open.batch.take().expect("still open");
            drop(open);
            return Ran::Done(self.commit(batch, count_commit).map(|()| out));
        }
        drop(open);
        match self.wait_for(id) {
            Outcome::Committed => Ran::Done(Ok(out)),
            Outcome::Failed(f) => Ran::Done(Err(f.error())),
            Outcome::Redo => Ran::Again,
        }
    }

    /// Commit `batch` (one fsync) and tell its other members how it went.
    fn commit(&self, batch: Batch, count_commit: &impl Fn()) -> Result<()> {
        let others = batch.waiting - 1;
        let result = batch.tx.commit().map_err(StoreError::from);
        let outcome = match &result {
            Ok(()) => {
                count_commit();
                Outcome::Committed
            }
            Err(e) => Outcome::Failed(Failure::of(e)),
        };
        if others > 0 {
            self.publish(batch.id, outcome, others);
        }
        result
    }

    fn publish(&self, id: u64, outcome: Outcome, unread: usize) {
        self.lock_outcomes()
            .insert(id, Published { outcome, unread });
        self.published.notify_all();
    }

    fn wait_for(&self, id: u64) -> Outcome {
        let mut outcomes = self.lock_outcomes();
        loop {
            if let Some(p) = outcomes.get_mut(&id) {
                p.unread -= 1;
                let outcome = p.outcome.clone();
                if p.unread == 0 {
                    outcomes.remove(&id);
                }
                return outcome;
            }
            outcomes = self
                .published
                .wait(outcomes)
                .unwrap_or_else(|p| p.into_inner());
        }
    }

    fn lock_outcomes(&self) -> MutexGuard<'_, HashMap<u64, Published>> {
        self.outcomes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn address(db: &Database) -> usize {
    db as *const Database as usize
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::{Duration, Instant};

    use redb::{ReadableDatabase, ReadableTable, TableDefinition};

    use super::*;

    const T: TableDefinition<&str, u64> = TableDefinition::new("t");

    fn db() -> Arc<Database> {
        let backend = redb::backends::InMemoryBackend::new();
        Arc::new(redb::Builder::new().create_with_backend(backend).unwrap())
    }

    fn insert(tx: &WriteTransaction, key: &str) -> Result<()> {
        tx.open_table(T)?.insert(key, 1)?;
        Ok(())
    }

    fn keys(db: &Database) -> Vec<String> {
        let tx = db.begin_read().unwrap();
        let Ok(t) = tx.open_table(T) else {
            return Vec::new();
        };
        t.iter()
            .unwrap()
            .map(|r| r.unwrap().0.value().to_string())
            .collect()
    }

    /// Spin until another caller waits to join the open batch.
    fn until_someone_arrives(c: &Committer) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.arriving.load(Ordering::SeqCst) == 0 {
            assert!(Instant::now() < deadline, "the second caller never arrived");
            std::thread::yield_now();
        }
    }

    /// `first` runs its request, waits inside it until `second` is queued, and so shares its
    /// batch with `second`: returns both answers, the commits made and how often `first`'s
    /// request ran.
    fn two_in_one_batch(
        second: impl Fn(&WriteTransaction) -> Result<()> + Send + Sync + 'static,
    ) -> (Result<()>, Result<()>, u64, usize, Arc<Database>) {
        let db = db();
        let c = Arc::new(Committer::default());
        let commits = Arc::new(AtomicU64::new(0));
        let runs = Arc::new(AtomicUsize::new(0));
        let second_started = Arc::new(AtomicUsize::new(0));
        let first = {
            let (db, c, commits, runs) = (db.clone(), c.clone(), commits.clone(), runs.clone());
            let started = second_started.clone();
            std::thread::spawn(move || {
                let count = || {
                    commits.fetch_add(1, Ordering::SeqCst);
                };
                c.write(&db, count, |tx| {
                    insert(tx, "first")?;
                    if runs.fetch_add(1, Ordering::SeqCst) == 0 {
                        started.store(1, Ordering::SeqCst);
                        until_someone_arrives(&c);
                    }
                    Ok(())
                })
            })
        };
        while second_started.load(Ordering::SeqCst) == 0 {
            std::thread::yield_now();
        }
        let count = || {
            commits.fetch_add(1, Ordering::SeqCst);
        };
        let b = c.write(&db, count, second);
        let a = first.join().unwrap();
        let n = commits.load(Ordering::SeqCst);
        (a, b, n, runs.load(Ordering::SeqCst), db)
    }

    #[test]
    fn requests_that_arrive_together_share_one_commit() {
        let (a, b, commits, runs, db) = two_in_one_batch(|tx| insert(tx, "second"));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(commits, 1, "two requests, one commit (one fsync)");
        assert_eq!(runs, 1);
        assert_eq!(keys(&db), vec!["first", "second"]);
    }

    #[test]
    fn a_failing_request_is_undone_and_the_others_commit_without_it() {
        let (a, b, commits, runs, db) = two_in_one_batch(|tx| {
            insert(tx, "second")?;
            Err(StoreError::Rejected("refused after writing".into()))
        });
        assert!(a.is_ok(), "{a:?}");
        assert!(matches!(b, Err(StoreError::Rejected(_))), "{b:?}");
        assert_eq!(
            runs, 2,
            "the first request ran again in a fresh transaction"
        );
        assert_eq!(commits, 1);
        assert_eq!(
            keys(&db),
            vec!["first"],
            "nothing of the failed request stays"
        );
    }

    #[test]
    fn a_panicking_request_is_an_error_and_the_others_commit() {
        let (a, b, commits, _, db) = two_in_one_batch(|tx| {
            insert(tx, "second")?;
            panic!("a bug in a request");
        });
        assert!(a.is_ok(), "{a:?}");
        assert!(matches!(b, Err(StoreError::Panicked(_))), "{b:?}");
        assert_eq!(commits, 1);
        assert_eq!(keys(&db), vec!["first"]);
    }

    #[test]
    fn a_lone_request_commits_at_once() {
        let db = db();
        let c = Committer::default();
        let commits = AtomicU64::new(0);
        for key in ["a", "b", "c"] {
            c.write(
                &db,
                || {
                    commits.fetch_add(1, Ordering::SeqCst);
                },
                |tx| insert(tx, key),
            )
            .unwrap();
            assert!(keys(&db).contains(&key.to_string()), "durable on return");
        }
        assert_eq!(commits.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn many_threads_lose_no_write_and_share_commits() {
        let db = db();
        let c = Arc::new(Committer::default());
        let commits = Arc::new(AtomicU64::new(0));
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let (db, c, commits) = (db.clone(), c.clone(), commits.clone());
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let key = format!("{t}-{i:03}");
                        let count = || {
                            commits.fetch_add(1, Ordering::SeqCst);
                        };
                        let fail = i % 10 == 0;
                        let r = c.write(&db, count, |tx| {
                            insert(tx, &key)?;
                            if fail {
                                return Err(StoreError::Rejected("no".into()));
                            }
                            Ok(())
                        });
                        assert_eq!(r.is_err(), fail);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let stored = keys(&db);
        assert_eq!(stored.len(), 8 * 180);
        assert!(stored.iter().all(|k| !k.ends_with('0')));
        assert!(commits.load(Ordering::SeqCst) <= 8 * 180);
    }
}
