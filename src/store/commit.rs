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
//! **Each member is woken once, by its own batch.** A member that ran its request leaves a
//! [`Slot`] in the batch and parks its thread; whoever ends the batch (its commit, or the abort
//! of a failing request) writes the outcome into each slot and unparks exactly those threads.
//! Nobody else wakes: members of the next batch, and members of this one, do not crowd a
//! shared lock and condition variable to find out whose outcome was published. The committing
//! caller never waits for the callers that are filling the next batch.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::Thread;

use redb::{Database, WriteTransaction};

use super::{Result, StoreError};

/// Most requests in one write transaction: a cap on how long the first member waits.
pub const MAX_BATCH: usize = 128;

#[derive(Default)]
pub(super) struct Committer {
    /// Callers that have arrived and wait to take `open`.
    arriving: AtomicUsize,
    open: Mutex<Open>,
}

#[derive(Default)]
struct Open {
    batch: Option<Batch>,
}

struct Batch {
    /// Which database the transaction belongs to (its address: a reopened handle is another
    /// one).
    db: usize,
    tx: WriteTransaction,
    /// Members whose requests ran in `tx` and who wait for its outcome (the one that ends the
    /// batch is not among them).
    waiting: Vec<Arc<Slot>>,
}

/// Where one waiting member receives its batch's outcome.
struct Slot {
    outcome: OnceLock<Outcome>,
    thread: Thread,
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
            publish(&stale.waiting, &Outcome::Redo);
        }
        if open.batch.is_none() {
            let tx = match db.begin_write() {
                Ok(tx) => tx,
                Err(e) => return Ran::Done(Err(e.into())),
            };
            open.batch = Some(Batch {
                db: address(db),
                tx,
                waiting: Vec::new(),
            });
        }
        let batch = open.batch.as_mut().expect("opened above");
        let out = match catch_unwind(AssertUnwindSafe(|| request(&batch.tx))) {
            Ok(Ok(out)) => out,
            failed => {
                let aborted = open.batch.take().expect("still open");
                drop(open);
                // Its writes are undone; an abort that fails leaves nothing committed either.
                let _ = aborted.tx.abort();
                publish(&aborted.waiting, &Outcome::Redo);
                return Ran::Done(Err(match failed {
                    Ok(Err(e)) => e,
                    Err(panic) => {
                        StoreError::Panicked(super::handle::panic_message(panic.as_ref()))
                    }
                    Ok(Ok(_)) => unreachable!("matched above"),
                }));
            }
        };
        let alone = self.arriving.load(Ordering::SeqCst) == 0;
        if alone || batch.waiting.len() + 1 >= MAX_BATCH {
            let batch = open.batch.take().expect("still open");
            drop(open);
            return Ran::Done(commit(batch, count_commit).map(|()| out));
        }
        let slot = Arc::new(Slot {
            outcome: OnceLock::new(),
            thread: std::thread::current(),
        });
        batch.waiting.push(slot.clone());
        drop(open);
        match Self::wait_for(&slot) {
            Outcome::Committed => Ran::Done(Ok(out)),
            Outcome::Failed(f) => Ran::Done(Err(f.error())),
            Outcome::Redo => Ran::Again,
        }
    }

    /// Park until whoever ends the batch has written `slot`'s outcome. The outcome is written
    /// before the unpark, and an unpark that comes before the park makes it return at once,
    /// so no wake-up is lost; a spurious return just looks again.
    fn wait_for(slot: &Slot) -> Outcome {
        loop {
            if let Some(outcome) = slot.outcome.get() {
                return outcome.clone();
            }
            std::thread::park();
        }
    }
}

/// Commit `batch` (one fsync) and tell its other members how it went: only after the commit
/// returned, so no member is answered before its request is durable.
fn commit(batch: Batch, count_commit: &impl Fn()) -> Result<()> {
    let result = batch.tx.commit().map_err(StoreError::from);
    let outcome = match &result {
        Ok(()) => {
            count_commit();
            Outcome::Committed
        }
        Err(e) => Outcome::Failed(Failure::of(e)),
    };
    publish(&batch.waiting, &outcome);
    result
}

/// Hand `outcome` to each waiting member and wake exactly those threads.
fn publish(waiting: &[Arc<Slot>], outcome: &Outcome) {
    for slot in waiting {
        // Each slot belongs to one batch, which is ended once.
        let _ = slot.outcome.set(outcome.clone());
        slot.thread.unpark();
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

    /// Every member returns only once its batch is committed (a read begun right after sees
    /// its write, or, for a failed request, not), and with many writers at once none is left
    /// parked: a wake-up given before the commit, given to the wrong member or lost fails here
    /// (a lost one as a writer that never returns).
    #[test]
    fn every_member_returns_after_its_batch_is_committed_and_none_is_left_waiting() {
        const THREADS: usize = 16;
        const WRITES: usize = 150;
        let db = db();
        let c = Arc::new(Committer::default());
        let (done, finished) = std::sync::mpsc::channel();
        for t in 0..THREADS {
            let (db, c, done) = (db.clone(), c.clone(), done.clone());
            std::thread::spawn(move || {
                let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    for i in 0..WRITES {
                        let key = format!("{t:02}-{i:03}");
                        let fail = i % 7 == 3;
                        let r = c.write(
                            &db,
                            || {},
                            |tx| {
                                insert(tx, &key)?;
                                if fail {
                                    return Err(StoreError::Rejected("no".into()));
                                }
                                Ok(())
                            },
                        );
                        assert_eq!(r.is_err(), fail, "{key}: {r:?}");
                        let read = db.begin_read().unwrap();
                        let seen = read.open_table(T).unwrap().get(key.as_str()).unwrap();
                        assert_eq!(seen.is_some(), !fail, "{key} committed before its answer");
                    }
                }));
                let _ = done.send(run);
            });
        }
        for _ in 0..THREADS {
            let run = finished
                .recv_timeout(Duration::from_secs(120))
                .expect("a writer never returned: its wake-up was lost");
            if let Err(panic) = run {
                std::panic::resume_unwind(panic);
            }
        }
        let failed_per_thread = (0..WRITES).filter(|i| i % 7 == 3).count();
        assert_eq!(keys(&db).len(), THREADS * (WRITES - failed_per_thread));
    }
}
