//! The one piece of mutable state every server task and the test-facing handle share, behind
//! one mutex. Critical sections are short and never span an `.await`: handlers lock, decide,
//! queue frames on unbounded channels, and unlock.

use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio_util::sync::CancellationToken;

use super::auth::Auth;
use super::book::Book;
use super::faults::Faults;
use super::hub::{Hub, Push};
use super::ids::Ids;
use super::record::Recorder;
use super::wire::now_ms;

/// Shared by the HTTP server, the WebSocket server and every [`super::FakeGoofish`] clone.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Fires when the last handle drops or on `shutdown`; every task selects on it.
    pub cancel: CancellationToken,
}

impl Shared {
    pub(crate) fn new(cancel: CancellationToken) -> Self {
        Self {
            state: Mutex::new(State::new()),
            cancel,
        }
    }

    /// Locks the state. A panic elsewhere while holding the lock (a bug) must not turn
    /// every later request into a panic too, so poisoning is ignored.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Everything the fake knows and has seen.
pub(crate) struct State {
    pub book: Book,
    pub auth: Auth,
    pub faults: Faults,
    pub record: Recorder,
    pub hub: Hub,
    pub ids: Ids,
    pub aftersale: super::aftersale::AftersaleBook,
}

impl State {
    fn new() -> Self {
        Self {
            book: Book::default(),
            auth: Auth::default(),
            faults: Faults::default(),
            record: Recorder::default(),
            hub: Hub::default(),
            ids: Ids::new(),
            aftersale: Default::default(),
        }
    }

    /// Delivers a push to the account's connections; returns how many got it.
    pub(crate) fn push(&mut self, account: &str, push: Push) -> usize {
        self.hub.deliver(account, push, now_ms(), &mut self.record)
    }
}
