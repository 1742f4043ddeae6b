//! The database handle behind every [`Store`](super::Store) access: opened with verification,
//! every access guarded, reopened after a failure, and never written once found damaged.
//!
//! - **Open = verify.** A file store is always opened with redb's integrity check
//!   (`set_check_integrity_on_open`): every page checksum of the committed trees is verified
//!   before anything is decoded, so damage is reported as [`StoreError::Damaged`] instead of a
//!   panic deep inside redb (a flipped byte in a table name used to abort every command).
//! - **Guarded access.** Each transaction runs under `catch_unwind`; a panic or a redb
//!   "corrupted" answer makes the handle reopen with verification at once. If that fails the
//!   store is `Damaged` for the rest of the process: every later access is refused, so nothing is
//!   ever written to a store that failed verification.
//! - **I/O failures pause, they do not spin.** After an I/O error (a full disk) redb refuses
//!   every later call on that handle, so the handle is dropped and the store is `Down`: accesses
//!   fail at once with [`StoreError::Unavailable`], naming the state directory, without touching
//!   the disk; one access every [`RETRY_EVERY`] reopens (with verification), and the first one
//!   that succeeds resumes the work. The transition is logged once each way, never per access.
//!
//! In-memory stores (dry runs, benchmarks) have nothing to reopen: their errors pass through.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, DatabaseError, StorageError};

use super::{Result, StoreError};

/// How often a store that failed with an I/O error tries to reopen.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);

/// How long a reopen waits for in-flight operations to let go of the old handle.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

pub(super) struct Handle {
    /// The database file, or `None` for an in-memory store.
    file: Option<PathBuf>,
    state: RwLock<State>,
    /// Write requests made since this handle was made (several may share one commit).
    requests: AtomicU64,
    /// `fdatasync` calls redb made on the file since this handle was made, counted where they
    /// happen ([`SyncCounter`]), across reopens. A commit in multi-writer mode is a two-phase
    /// commit (data pages, then the header that points at them), so it is two syncs, plus one
    /// whenever the file grows.
    syncs: Arc<AtomicU64>,
    /// Times an access left the async worker it was called from ([`Handle::block`],
    /// `Store::call`): each is a thread handoff, the cost issue 15 counts per order.
    handoffs: AtomicU64,
}

enum State {
    Open(Arc<Database>),
    /// The last access failed with an I/O error; `old` is closed before the next open.
    Down {
        old: Option<Arc<Database>>,
        detail: String,
        retry_at: Instant,
    },
    /// Verification failed: this process never touches the file again.
    Damaged(String),
}

/// What a failed access says about the handle.
enum Failure {
    Io(String),
    Suspect(String),
}

impl Handle {
    /// Open `path` (creating it if needed) with verification.
    pub(super) fn open_file(path: &Path) -> Result<Self> {
        let syncs = Arc::new(AtomicU64::new(0));
        let db = open_counted(path, &syncs)?;
        Ok(Self {
            file: Some(path.to_path_buf()),
            state: RwLock::new(State::Open(Arc::new(db))),
            requests: AtomicU64::new(0),
            syncs,
            handoffs: AtomicU64::new(0),
        })
    }

    pub(super) fn in_memory(db: Database) -> Self {
        Self {
            file: None,
            state: RwLock::new(State::Open(Arc::new(db))),
            requests: AtomicU64::new(0),
            syncs: Arc::default(),
            handoffs: AtomicU64::new(0),
        }
    }

    /// Run one access against the current database, guarded as the module doc says. A reopen
    /// (verification, waiting for in-flight accesses) blocks, so it leaves the async worker
    /// ([`Handle::block`]); the access itself runs where it is called.
    pub(super) fn run<T>(&self, op: impl FnOnce(&Database) -> Result<T>) -> Result<T> {
        let db = self.current()?;
        let result = match catch_unwind(AssertUnwindSafe(|| op(&db))) {
            Ok(result) => result,
            Err(panic) => Err(StoreError::Panicked(panic_message(panic.as_ref()))),
        };
        // Let go of the handle before a failover closes it.
        drop(db);
        self.settle(result)
    }

    /// What an access that ended with `result` means for the handle: an error that concerns
    /// the file (I/O, a panic, a corruption report) fails the handle over (see the module
    /// doc). For accesses that hold the database themselves ([`Handle::current`]) and have let
    /// go of it: an async write request.
    pub(super) fn settle<T>(&self, result: Result<T>) -> Result<T> {
        let Err(e) = result else { return result };
        match (classify(&e), &self.file) {
            (Some(failure), Some(path)) => Err(self.block(|| self.fail(path, failure, e))),
            _ => Err(e),
        }
    }

    /// Run `f`, which may block (wait for a commit and its fsync, reopen the file), without
    /// stalling the async runtime: on a multi-threaded runtime's worker the worker hands its
    /// other tasks to another thread first (`block_in_place`, one counted handoff); on a thread
    /// that may block anyway (a `Store::call` thread, no runtime, a current-thread runtime,
    /// where `block_in_place` is not allowed) it simply runs.
    pub(super) fn block<T>(&self, f: impl FnOnce() -> T) -> T {
        if OFF_WORKER.get() || !on_multi_thread_runtime() {
            return off_worker(f);
        }
        self.count_handoff();
        tokio::task::block_in_place(|| off_worker(f))
    }

    /// Count one thread handoff (see [`Handle::handoffs`]).
    pub(super) fn count_handoff(&self) {
        self.handoffs.fetch_add(1, Ordering::Relaxed);
    }

    /// Thread handoffs made by accesses through this handle.
    pub(super) fn handoffs(&self) -> u64 {
        self.handoffs.load(Ordering::Relaxed)
    }

    /// Count one write request (see [`Handle::requests`]).
    pub(super) fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Write requests this process made through this handle.
    pub(super) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// `fdatasync` calls on the file this process made through this handle (0 in memory).
    pub(super) fn syncs(&self) -> u64 {
        self.syncs.load(Ordering::Relaxed)
    }

    /// The database to access now (reopening it first after a failure, when that is due).
    pub(super) fn current(&self) -> Result<Arc<Database>> {
        {
            let state = self.read_state();
            match &*state {
                State::Open(db) => return Ok(db.clone()),
                State::Damaged(detail) => return Err(self.damaged(detail)),
                State::Down {
                    detail, retry_at, ..
                } if Instant::now() < *retry_at => return Err(self.unavailable(detail)),
                State::Down { .. } => {}
            }
        }
        self.block(|| self.reopen())
    }

    /// Close the failed handle and open again with verification.
    fn reopen(&self) -> Result<Arc<Database>> {
        let Some(path) = &self.file else {
            return Err(self.unavailable("in-memory store"));
        };
        let mut state = self.write_state();
        let detail = match &mut *state {
            State::Open(db) => return Ok(db.clone()),
            State::Damaged(detail) => return Err(self.damaged(detail)),
            State::Down {
                old,
                detail,
                retry_at,
            } => {
                if let Some(db) = old.take() {
                    if let Err(db) = close_when_free(db) {
                        *old = Some(db);
                        *retry_at = Instant::now() + RETRY_EVERY;
                        return Err(self.unavailable(detail));
                    }
                }
                detail.clone()
            }
        };
        match open_counted(path, &self.syncs) {
            Ok(db) => {
                let db = Arc::new(db);
                *state = State::Open(db.clone());
                tracing::warn!(store = %path.display(), "The store opened and verified again; work resumes.");
                Ok(db)
            }
            Err(StoreError::Damaged { detail, .. }) => {
                tracing::error!(store = %path.display(), detail = %detail, "The store failed verification; nothing more is written to it. Restore a backup.");
                *state = State::Damaged(detail.clone());
                Err(self.damaged(&detail))
            }
            Err(e) => {
                *state = State::Down {
                    old: None,
                    detail,
                    retry_at: Instant::now() + RETRY_EVERY,
                };
                Err(e)
            }
        }
    }

    /// An access failed in a way that concerns the handle: I/O pauses the store, a panic or a
    /// corruption report re-verifies it at once.
    fn fail(&self, path: &Path, failure: Failure, original: StoreError) -> StoreError {
        let mut state = self.write_state();
        let State::Open(db) = &*state else {
            // Another access already failed over; report what this one saw.
            return match failure {
                Failure::Io(detail) => self.unavailable(&detail),
                Failure::Suspect(_) => original,
            };
        };
        let old = Some(db.clone());
        match failure {
            Failure::Io(detail) => {
                tracing::error!(state_dir = %dir_of(path).display(), error = %detail, "The state directory cannot be written (disk full?). Processing pauses and resumes by itself once there is space.");
                *state = State::Down {
                    old,
                    detail: detail.clone(),
                    retry_at: Instant::now() + RETRY_EVERY,
                };
                self.unavailable(&detail)
            }
            Failure::Suspect(detail) => {
                tracing::error!(store = %path.display(), error = %detail, "A store access failed unexpectedly; verifying the store.");
                *state = State::Down {
                    old,
                    detail,
                    retry_at: Instant::now(),
                };
                drop(state);
                match self.reopen() {
                    Err(e @ StoreError::Damaged { .. }) => e,
                    _ => original,
                }
            }
        }
    }

    fn unavailable(&self, detail: &str) -> StoreError {
        StoreError::Unavailable {
            dir: self.file.as_deref().map(dir_of).unwrap_or_default(),
            detail: detail.to_string(),
        }
    }

    fn damaged(&self, detail: &str) -> StoreError {
        StoreError::Damaged {
            path: self.file.clone().unwrap_or_default(),
            detail: detail.to_string(),
        }
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }
}

thread_local! {
    /// Set while a thread runs a `Store::call` on tokio's blocking pool: blocking there needs
    /// no handoff.
    static OFF_WORKER: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Run `f` on a thread that may block as long as it likes (`Store::call`'s blocking-pool
/// thread): store accesses inside it make no further handoff.
pub(super) fn off_worker<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            OFF_WORKER.set(self.0);
        }
    }
    let _reset = Reset(OFF_WORKER.replace(true));
    f()
}

/// Whether this thread may block: it is marked so ([`off_worker`]), or it runs no tokio
/// runtime at all.
pub(super) fn may_block_here() -> bool {
    OFF_WORKER.get() || tokio::runtime::Handle::try_current().is_err()
}

/// Whether this thread runs inside a multi-threaded tokio runtime (a worker, or its
/// `block_on`), where blocking needs `block_in_place`.
pub(super) fn on_multi_thread_runtime() -> bool {
    tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
}

/// Open with redb's integrity check, turning every way a damaged file can fail (an error or a
/// panic inside redb) into [`StoreError::Damaged`].
pub(super) fn open_verified(path: &Path) -> Result<Database> {
    open_counted(path, &Arc::default())
}

/// [`open_verified`], counting the file's syncs in `syncs`.
fn open_counted(path: &Path, syncs: &Arc<AtomicU64>) -> Result<Database> {
    let opened = catch_unwind(|| {
        // What `Builder::create(path)` does, with the file backend wrapped to count syncs.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let backend = SyncCounter {
            inner: redb::backends::FileBackend::new(file)?,
            syncs: syncs.clone(),
        };
        redb::Builder::new()
            .set_concurrency_mode(redb::ConcurrencyMode::MultiWriter)
            .set_check_integrity_on_open(true)
            .create_with_backend(backend)
    });
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    match opened {
        Ok(Ok(db)) => Ok(db),
        Err(panic) => Err(damaged(panic_message(panic.as_ref()))),
        Ok(Err(DatabaseError::DatabaseAlreadyOpen)) => Err(StoreError::InUse(path.to_path_buf())),
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(detail)))) => Err(damaged(detail)),
        // redb reports a file that is not a redb database as InvalidData.
        Ok(Err(DatabaseError::Storage(StorageError::Io(e))))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            Err(damaged(e.to_string()))
        }
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) => Err(StoreError::Unavailable {
            dir: dir_of(path),
            detail: e.to_string(),
        }),
        Ok(Err(e)) => Err(e.into()),
    }
}

/// redb's own file backend, counting `sync_data` (one `fdatasync` each): the `/metrics` fsync
/// counter is read here, not estimated from commits. Everything else is passed through.
#[derive(Debug)]
struct SyncCounter {
    inner: redb::backends::FileBackend,
    syncs: Arc<AtomicU64>,
}

// redb 4 without `experimental-api-5`: the data methods report `std::io::Error`.
type IoResult<T> = std::io::Result<T>;
type LockResult<T> = std::result::Result<T, redb::BackendError>;
type Bounds = std::ops::Bound<u64>;

impl redb::StorageBackend for SyncCounter {
    fn len(&self) -> IoResult<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> IoResult<()> {
        self.inner.read(offset, out)
    }

    fn set_len(&self, len: u64) -> IoResult<()> {
        self.inner.set_len(len)
    }

    fn sync_data(&self) -> IoResult<()> {
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.inner.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> IoResult<()> {
        self.inner.write(offset, data)
    }

    fn close(&self) -> IoResult<()> {
        self.inner.close()
    }

    fn try_lock_range(&self, start: Bounds, end: Bounds) -> LockResult<bool> {
        self.inner.try_lock_range(start, end)
    }

    fn try_lock_shared_range(&self, start: Bounds, end: Bounds) -> LockResult<bool> {
        self.inner.try_lock_shared_range(start, end)
    }

    fn lock_range(&self, start: Bounds, end: Bounds) -> LockResult<()> {
        self.inner.lock_range(start, end)
    }

    fn lock_shared_range(&self, start: Bounds, end: Bounds) -> LockResult<()> {
        self.inner.lock_shared_range(start, end)
    }

    fn unlock_range(&self, start: Bounds, end: Bounds) -> LockResult<()> {
        self.inner.unlock_range(start, end)
    }

    fn query_lock_range(&self, start: Bounds, end: Bounds) -> LockResult<bool> {
        self.inner.query_lock_range(start, end)
    }
}

fn classify(e: &StoreError) -> Option<Failure> {
    match e {
        StoreError::Panicked(msg) => Some(Failure::Suspect(format!("panicked: {msg}"))),
        StoreError::Db(db) => match db.as_ref() {
            redb::Error::Corrupted(msg) => Some(Failure::Suspect(msg.clone())),
            redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
                Some(Failure::Suspect(io.to_string()))
            }
            redb::Error::Io(io) => Some(Failure::Io(io.to_string())),
            redb::Error::PreviousIo | redb::Error::DatabaseClosed => {
                Some(Failure::Io(db.to_string()))
            }
            _ => None,
        },
        _ => None,
    }
}

/// Drop the last reference and close the database; give the handle back if in-flight accesses
/// still hold it after [`RELEASE_WAIT`].
fn close_when_free(mut db: Arc<Database>) -> std::result::Result<(), Arc<Database>> {
    let deadline = Instant::now() + RELEASE_WAIT;
    loop {
        match Arc::try_unwrap(db) {
            Ok(db) => {
                // A handle that failed may refuse a clean close; dropping it releases the file.
                let _ = db.close();
                return Ok(());
            }
            Err(shared) if Instant::now() >= deadline => return Err(shared),
            Err(shared) => {
                db = shared;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn dir_of(path: &Path) -> PathBuf {
    path.parent().map(Path::to_path_buf).unwrap_or_default()
}

pub(super) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".to_string())
}
