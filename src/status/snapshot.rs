//! A cached [`ShopView`], so pages over a large store cost a filter, not a table scan.
//!
//! Building a view reads every order: 200–330 ms for 100 000 orders on the 2-core CI machine
//! (`cargo bench --bench status_page`), against well under a millisecond to answer a page from
//! it. So it is rebuilt only when the store changed ([`ChangeMark`]) or the view is old, and
//! never more often than its own build time allows:
//!
//! - younger than 4 × the last build time: used as is (caps rebuild work at ~20 % of a core);
//! - the change mark moved, or older than `max(1 s, 20 × build)` (capped at 10 s, which catches
//!   ledger-only steps the mark does not see): rebuilt;
//! - a rebuild that took under [`INLINE_BUILD`] runs inside the request (small shops always
//!   see their latest state); a slower one runs in the background while requests keep getting
//!   the previous view, so a big store never makes a page wait for a scan.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;

use crate::store::views::{ChangeMark, ShopView};
use crate::store::{Store, StoreError};

/// Rebuilds faster than this happen inside the request that noticed the change.
pub const INLINE_BUILD: Duration = Duration::from_millis(25);

struct Snap {
    view: Arc<ShopView>,
    mark: ChangeMark,
    built_at: Instant,
    build_time: Duration,
}

impl Snap {
    fn min_age(&self) -> Duration {
        (self.build_time * 4).min(Duration::from_secs(2))
    }

    fn max_age(&self) -> Duration {
        (self.build_time * 20).clamp(Duration::from_secs(1), Duration::from_secs(10))
    }
}

pub struct Snapshots {
    store: Store,
    current: ArcSwapOption<Snap>,
    /// One build at a time.
    build_lock: tokio::sync::Mutex<()>,
    background: Arc<AtomicBool>,
}

impl Snapshots {
    pub fn new(store: Store) -> Arc<Self> {
        Arc::new(Self {
            store,
            current: ArcSwapOption::empty(),
            build_lock: tokio::sync::Mutex::new(()),
            background: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The current view, rebuilt first if it is stale and cheap to rebuild.
    pub async fn view(self: &Arc<Self>) -> Result<Arc<ShopView>, StoreError> {
        let Some(snap) = self.current.load_full() else {
            return self.rebuild_inline().await;
        };
        if !self.stale(&snap)? {
            return Ok(snap.view.clone());
        }
        if snap.build_time < INLINE_BUILD {
            return self.rebuild_inline().await;
        }
        self.rebuild_in_background();
        Ok(snap.view.clone())
    }

    fn stale(&self, snap: &Snap) -> Result<bool, StoreError> {
        let age = snap.built_at.elapsed();
        if age < snap.min_age() {
            return Ok(false);
        }
        if age >= snap.max_age() {
            return Ok(true);
        }
        // A read of six counters: microseconds, fine on the async thread.
        Ok(self.store.change_mark()? != snap.mark)
    }

    /// Build now, unless another request finished a build while this one waited for the lock.
    async fn rebuild_inline(self: &Arc<Self>) -> Result<Arc<ShopView>, StoreError> {
        let _guard = self.build_lock.lock().await;
        if let Some(snap) = self.current.load_full()
            && !self.stale(&snap)?
        {
            return Ok(snap.view.clone());
        }
        self.build().await
    }

    fn rebuild_in_background(self: &Arc<Self>) {
        if self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            let _guard = this.build_lock.lock().await;
            match this.build().await {
                Err(e) if !e.is_unavailable() => {
                    tracing::warn!(error = %e, "Status view rebuild failed; serving the previous one.");
                }
                _ => {}
            }
            this.background.store(false, Ordering::Release);
        });
    }

    async fn build(&self) -> Result<Arc<ShopView>, StoreError> {
        let started = Instant::now();
        // The mark is read before the scan: a change racing the scan only causes one more build.
        let (mark, view) = self
            .store
            .call(|s| {
                let (mark, view) = (s.change_mark()?, s.shop_view()?);
                view.prepare();
                Ok((mark, view))
            })
            .await?;
        let view = Arc::new(view);
        self.current.store(Some(Arc::new(Snap {
            view: view.clone(),
            mark,
            built_at: Instant::now(),
            build_time: started.elapsed(),
        })));
        Ok(view)
    }
}
