//! The IM WebSocket ("LWP" over DingTalk IMPaaS): register, sync, heartbeat, ACK, decode,
//! reconnect — and sending chat messages over the live connection.
//!
//! [`ImClient::run`] keeps one connection per account alive until shutdown. A connection is
//! a session: fetch (or reuse) the IM token through mtop, dial with browser headers, `/reg`,
//! `getState` + `ackDiff`, then serve pushes (ACK every push, decode **every** item of
//! `syncPushPackage.data`) while a heartbeat is sent every `heartbeat` and its reply checked.
//! A session ends on a lost heartbeat, a closed socket, `/push/kickout`,
//! `/s/session/remove`, business silence (after a token change: `watchdog`; otherwise
//! `idle_reconnect`, hours), a due token refresh or new cookies; the next one starts after an
//! exponential, jittered backoff, reusing the token unless `/reg` refused it. While mtop says
//! the login is dead, or token fetching is paused by its hourly cap, no connection is
//! attempted at all.
//!
//! [`ImHandle`] is the sending side used by the marketplace: a send that never left or was
//! explicitly refused is [`NotDelivered`](crate::marketplace::SendOutcome::NotDelivered); one whose answer never came (or came
//! as a server error) is [`Unknown`](crate::marketplace::SendOutcome::Unknown), never resent.
//!
//! Layout: this file holds the shared types; `session` runs the connection loop (dial,
//! `/reg`, sync, serve pushes, heartbeat, reconnect); `conn` is one live socket (writes,
//! requests waiting for their answer, the reader task); `send` is the sending side the
//! marketplace uses; `history` reads a conversation's messages (the read-back); `frames` builds and reads the frames themselves (pure, unit-tested).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::decode::DecodedEvent;
use super::mtop::MtopError;
use crate::config::MarketplaceConfig;

mod conn;
mod frames;
mod history;
mod send;
mod session;

pub use history::HistoryMessage;
pub use send::ImHandle;
pub use session::ImClient;

use conn::Conn;

/// Suffix of IM user and conversation handles.
const HANDLE: &str = "@goofish";

/// Capacity of the channel from a connection to its account's event handler, in decoded push
/// items. A full channel makes the connection wait (and, behind it, the reader and TCP), so no
/// push is ever dropped. The handler only falls behind while it reads order details (one mtop
/// call per new paid order, a second after a transient failure), and a busy shop sees a few
/// pushes a minute, so 1024 items hold hours of traffic and any reconnect backlog. The bound
/// only matters when the handler is stuck; then memory stays small, and heartbeats stall until
/// it resumes, which reconnects rather than grows without end.
pub const IM_EVENTS_CAPACITY: usize = 1024;

/// What a connection reports to its account supervisor.
#[derive(Debug, Clone)]
pub enum ImEvent {
    /// Registered and synced: a good moment to reconcile (pushes may have been missed).
    Connected,
    /// What one push item means.
    Push(DecodedEvent),
}

/// Why a session ended badly.
#[derive(Debug, thiserror::Error)]
pub enum WsError {
    #[error(transparent)]
    Mtop(#[from] MtopError),
    #[error("cannot connect: {0}")]
    Connect(String),
    #[error("/reg refused (code {code}): {reason}")]
    RegRefused { code: i64, reason: String },
    #[error("no answer to {0}")]
    NoAnswer(&'static str),
    #[error("connection closed: {0}")]
    Closed(String),
    #[error("heartbeat not answered within {0:?}")]
    HeartbeatLost(Duration),
    #[error("zombie connection: heartbeats answered but no push for {0:?}")]
    Zombie(Duration),
    #[error("kicked out by the server (/push/kickout)")]
    Kickout,
    #[error("session removed by the server (/s/session/remove)")]
    SessionRemoved,
}

impl WsError {
    /// What the seller reads about this error (`crate::why`): the typed kinds map one to
    /// one; a dial error carries the OS's words (`Connection refused`, `timed out`, a DNS or
    /// TLS failure), which are classified.
    pub fn failure(&self) -> crate::why::Failure {
        use crate::why::Failure;
        match self {
            Self::Mtop(e) => e.failure(),
            Self::Connect(io) => match Failure::classify(io) {
                Failure::Other => Failure::Network,
                f => f,
            },
            Self::RegRefused { code, .. } if (400..500).contains(code) => Failure::LoginExpired,
            Self::RegRefused { .. } => Failure::Platform,
            Self::NoAnswer(_) | Self::HeartbeatLost(_) | Self::Zombie(_) => Failure::NoAnswer,
            Self::Closed(_) => Failure::Network,
            Self::Kickout | Self::SessionRemoved => Failure::Kicked,
        }
    }

    /// The token may be the problem: fetch a new one before the next attempt.
    fn distrusts_token(&self) -> bool {
        match self {
            Self::RegRefused { code, .. } => (400..500).contains(code),
            // A kick-out (another login, a server move) says nothing against the token, and
            // refetching on every one is how a kick-out loop becomes a token-API storm.
            _ => false,
        }
    }
}

/// A session that ended without an error.
enum SessionEnd {
    Shutdown,
    TokenRefresh,
    CookiesChanged,
}

/// Timings of the IM connection, from `marketplace:`.
#[derive(Debug, Clone)]
pub struct ImSettings {
    pub ws_url: String,
    pub heartbeat: Duration,
    pub watchdog: Duration,
    pub idle_reconnect: Duration,
    pub send_timeout: Duration,
    pub reconnect_max: Duration,
}

impl ImSettings {
    pub fn from_config(m: &MarketplaceConfig) -> Self {
        Self {
            ws_url: m.ws_url.clone(),
            heartbeat: m.heartbeat,
            watchdog: m.watchdog,
            idle_reconnect: m.idle_reconnect,
            send_timeout: m.send_timeout,
            reconnect_max: m.reconnect_max,
        }
    }
}

/// State shared between the connection loop and senders.
struct Shared {
    account: String,
    live: watch::Sender<Option<Arc<Conn>>>,
}
