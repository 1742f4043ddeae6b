//! Tests of the group commit protocol (`super`): batching, redo, queued and dropped members.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::*;

const T: TableDefinition<&str, u64> = TableDefinition::new("t");

fn db() -> Arc<Database> {
    let backend = redb::backends::InMemoryBackend::new();
    Arc::new(redb::Builder::new().create_with_backend(backend).unwrap())
}

fn insert(tx: &WriteTx, key: &str) -> Result<()> {
    tx.transaction()?.open_table(T)?.insert(key, 1)?;
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
    second: impl Fn(&WriteTx) -> Result<()> + Send + Sync + 'static,
) -> (Result<()>, Result<()>, u64, usize, Arc<Database>) {
    let db = db();
    let c = Arc::new(Committer::default());
    let runs = Arc::new(AtomicUsize::new(0));
    let second_started = Arc::new(AtomicUsize::new(0));
    let first = {
        let (db, c, runs) = (db.clone(), c.clone(), runs.clone());
        let started = second_started.clone();
        std::thread::spawn(move || {
            c.write_blocking(&db, |tx| {
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
    let b = c.write_blocking(&db, second);
    let a = first.join().unwrap();
    (a, b, c.commits(), runs.load(Ordering::SeqCst), db)
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
    let c = Arc::new(Committer::default());
    for key in ["a", "b", "c"] {
        c.write_blocking(&db, |tx| insert(tx, key)).unwrap();
        assert!(keys(&db).contains(&key.to_string()), "durable on return");
    }
    assert_eq!(c.commits(), 3);
}

#[test]
fn many_threads_lose_no_write_and_share_commits() {
    let db = db();
    let c = Arc::new(Committer::default());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (db, c) = (db.clone(), c.clone());
            std::thread::spawn(move || {
                for i in 0..200 {
                    let key = format!("{t}-{i:03}");
                    let fail = i % 10 == 0;
                    let r = c.write_blocking(&db, |tx| {
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
    assert!(c.commits() <= 8 * 180);
}

/// One writer's loop: every write is durable on return (a read begun right after sees it,
/// or, for a failed request, not).
async fn writes(c: Arc<Committer>, db: Arc<Database>, who: String, on: CommitOn) {
    const WRITES: usize = 150;
    for i in 0..WRITES {
        let key = format!("{who}-{i:03}");
        let fail = i % 7 == 3;
        let r = c
            .write(&db, on, |tx| {
                insert(tx, &key)?;
                if fail {
                    return Err(StoreError::Rejected("no".into()));
                }
                Ok(())
            })
            .await;
        assert_eq!(r.is_err(), fail, "{key}: {r:?}");
        let read = db.begin_read().unwrap();
        let seen = read.open_table(T).unwrap().get(key.as_str()).unwrap();
        assert_eq!(seen.is_some(), !fail, "{key} committed before its answer");
    }
}

/// Every member returns only once its batch is committed, and with many writers at once
/// (threads that block and async tasks on two workers, in the same batches) none is left
/// waiting: a wake-up given before the commit, given to the wrong member or lost fails
/// here (a lost one as a writer that never returns).
#[test]
fn every_member_returns_after_its_batch_is_committed_and_none_is_left_waiting() {
    const THREADS: usize = 8;
    const TASKS: usize = 16;
    let db = db();
    let c = Arc::new(Committer::default());
    let (done, finished) = std::sync::mpsc::channel();
    for t in 0..THREADS {
        let (db, c, done) = (db.clone(), c.clone(), done.clone());
        std::thread::spawn(move || {
            let run = std::panic::catch_unwind(AssertUnwindSafe(|| {
                futures_executor::block_on(writes(c, db, format!("t{t:02}"), CommitOn::Caller))
            }));
            let _ = done.send(run);
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .unwrap();
    for t in 0..TASKS {
        let (db, c, done) = (db.clone(), c.clone(), done.clone());
        runtime.spawn(async move {
            let task = tokio::spawn(writes(c, db, format!("a{t:02}"), CommitOn::Worker));
            let _ = done.send(task.await.map_err(|e| e.into_panic()));
        });
    }
    for _ in 0..THREADS + TASKS {
        let run = finished
            .recv_timeout(Duration::from_secs(120))
            .expect("a writer never returned: its wake-up was lost");
        if let Err(panic) = run {
            std::panic::resume_unwind(panic);
        }
    }
    let failed_per_writer = (0..150).filter(|i| i % 7 == 3).count();
    assert_eq!(
        keys(&db).len(),
        (THREADS + TASKS) * (150 - failed_per_writer)
    );
    assert!(c.commits() < ((THREADS + TASKS) * 150) as u64);
}

/// Members that arrive while a commit is in flight queue behind it and share the next
/// transaction; one whose future is dropped after it was let in does not leave the others
/// waiting for it: the batch is ended on its way out.
#[test]
fn queued_members_share_the_next_batch_and_a_dropped_one_leaves_nobody_waiting() {
    let db = db();
    let c = Arc::new(Committer::default());
    c.lock().committing = true;
    // Async members (the batch waits for let-in async members; see below for blocking
    // ones). No runtime here: the one commit below is made by b's departure, inline.
    let mut a = Box::pin(c.write(&db, CommitOn::Worker, |tx| insert(tx, "a")));
    let mut b = Box::pin(c.write(&db, CommitOn::Worker, |tx| insert(tx, "b")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(a.as_mut().poll(&mut cx).is_pending());
    assert!(b.as_mut().poll(&mut cx).is_pending());
    assert_eq!(
        c.lock().queued.len(),
        2,
        "both wait for the commit in flight"
    );
    // The commit in flight returns: both are let in.
    c.let_in_queued();
    assert!(
        a.as_mut().poll(&mut cx).is_pending(),
        "a ran and waits for b"
    );
    assert_eq!(c.commits(), 0);
    drop(b);
    assert!(
        matches!(a.as_mut().poll(&mut cx), Poll::Ready(Ok(()))),
        "b's departure ended the batch"
    );
    assert_eq!(c.commits(), 1);
    assert_eq!(keys(&db), vec!["a"]);
    // A member dropped while still queued just gives up its place.
    c.lock().committing = true;
    let mut d = Box::pin(c.write(&db, CommitOn::Caller, |tx| insert(tx, "d")));
    assert!(d.as_mut().poll(&mut cx).is_pending());
    drop(d);
    assert!(c.lock().queued.is_empty());
}

/// The requests of one batch share one scope of open tables: a table the first opened is
/// still open for the second (redb's open and close happen once per batch).
#[test]
fn the_requests_of_a_batch_open_a_table_once() {
    let db = db();
    let c = Arc::new(Committer::default());
    c.lock().committing = true;
    let meta = |key: &'static str| {
        move |tx: &WriteTx| -> Result<()> {
            tx.meta()?.insert(key, 1)?;
            Ok(())
        }
    };
    let mut a = Box::pin(c.write(&db, CommitOn::Worker, meta("a")));
    let mut b = Box::pin(c.write(&db, CommitOn::Worker, meta("b")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(a.as_mut().poll(&mut cx).is_pending());
    assert!(b.as_mut().poll(&mut cx).is_pending());
    c.let_in_queued();
    crate::store::write_tx::opens::take();
    assert!(a.as_mut().poll(&mut cx).is_pending(), "a waits for b");
    assert!(matches!(b.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    assert!(matches!(a.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(c.commits(), 1);
    let (opens, uses) = crate::store::write_tx::opens::take();
    assert_eq!(uses, 2);
    assert_eq!(opens.get("meta"), Some(&1), "{opens:?}");
}

/// A member that blocks its thread never waits for let-in members that have not run yet
/// (on a current-thread runtime they would be tasks of that very thread): it commits what
/// ran, and they run in the next batch.
#[test]
fn a_blocking_member_does_not_wait_for_let_in_members() {
    let db = db();
    let c = Arc::new(Committer::default());
    c.lock().committing = true;
    let mut task = Box::pin(c.write(&db, CommitOn::Worker, |tx| insert(tx, "task")));
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    assert!(task.as_mut().poll(&mut cx).is_pending());
    let mut thread = Box::pin(c.write(&db, CommitOn::Caller, |tx| insert(tx, "thread")));
    assert!(thread.as_mut().poll(&mut cx).is_pending());
    c.let_in_queued();
    assert!(
        matches!(thread.as_mut().poll(&mut cx), Poll::Ready(Ok(()))),
        "the blocking member committed without waiting for the task"
    );
    assert_eq!(keys(&db), vec!["thread"]);
    assert!(matches!(task.as_mut().poll(&mut cx), Poll::Ready(Ok(()))));
    assert_eq!(keys(&db), vec!["task", "thread"]);
    assert_eq!(c.commits(), 2);
}
