//! Who gets a connection to the status page, and for how long (issue 10 D6).
//!
//! One misbehaving client used to take the page down: 300 sockets that pipelined requests and
//! never read the answers held every slot of a fixed semaphore for as long as they stayed open,
//! `/healthz` included. Now:
//!
//! - **Per-peer caps.** One address holds at most [`PER_PEER`] ordinary connections; the whole
//!   server at most [`MAX_CONNECTIONS`]. A connection over a cap is closed at once instead of
//!   waiting in the kernel's queue, so it never delays anyone else.
//! - **Reserved capacity for `/healthz`.** Past the caps, a connection gets one of
//!   [`HEALTH_LANE`] reserved slots (at most [`PER_PEER_HEALTH`] per address) that answer
//!   `/healthz` and nothing else, once, with a short header timeout: a container's health
//!   check keeps working while the page is flooded.
//! - **Timeouts.** A write that makes no progress for [`WRITE_TIMEOUT`] ends the connection
//!   ([`WriteDeadline`]), so a client that never reads frees its slot; hyper's header timeout
//!   is also the idle timeout between keep-alive requests.
//! - **Request budgets.** An authorized connection answers at most [`MAX_REQUESTS`] requests
//!   (pipelined or not) and then closes; an unauthenticated one gets the smallest budget: its
//!   first 401 closes it.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Ordinary connections served at once, all peers together.
pub(super) const MAX_CONNECTIONS: usize = 256;
/// Ordinary connections one address may hold (a browser opens about six).
pub(super) const PER_PEER: usize = 32;
/// Reserved `/healthz`-only connections, all peers together.
pub(super) const HEALTH_LANE: usize = 16;
/// Reserved connections one address may hold.
pub(super) const PER_PEER_HEALTH: usize = 4;
/// A write that has made no progress for this long ends the connection.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Requests one authorized connection answers before it is closed (keep-alive or pipelined).
pub(super) const MAX_REQUESTS: u32 = 100;

/// Which capacity a connection was admitted to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// Any route, within the request budget.
    Ordinary,
    /// Reserved capacity: `/healthz` once, nothing else.
    HealthOnly,
}

#[derive(Debug, Default)]
struct Counts {
    ordinary: usize,
    health: usize,
    peers: HashMap<IpAddr, (usize, usize)>,
}

/// The live connections per lane and per peer.
#[derive(Debug, Default)]
pub(super) struct Admission {
    counts: Mutex<Counts>,
}

/// A connection's place; dropping it gives the place back.
#[derive(Debug)]
pub(super) struct Slot {
    admission: Arc<Admission>,
    peer: IpAddr,
    pub lane: Lane,
}

impl Admission {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// A slot for a new connection from `peer`, or `None` when it must be closed at once.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<Slot> {
        let mut c = self.lock();
        let (ordinary, health) = c.peers.get(&peer).copied().unwrap_or((0, 0));
        let lane = if ordinary < PER_PEER && c.ordinary < MAX_CONNECTIONS {
            c.ordinary += 1;
            Lane::Ordinary
        } else if health < PER_PEER_HEALTH && c.health < HEALTH_LANE {
            c.health += 1;
            Lane::HealthOnly
        } else {
            return None;
        };
        let entry = c.peers.entry(peer).or_default();
        match lane {
            Lane::Ordinary => entry.0 += 1,
            Lane::HealthOnly => entry.1 += 1,
        }
        Some(Slot {
            admission: self.clone(),
            peer,
            lane,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut c = self.admission.lock();
        match self.lane {
            Lane::Ordinary => c.ordinary = c.ordinary.saturating_sub(1),
            Lane::HealthOnly => c.health = c.health.saturating_sub(1),
        }
        if let Some(entry) = c.peers.get_mut(&self.peer) {
            match self.lane {
                Lane::Ordinary => entry.0 = entry.0.saturating_sub(1),
                Lane::HealthOnly => entry.1 = entry.1.saturating_sub(1),
            }
            if *entry == (0, 0) {
                c.peers.remove(&self.peer);
            }
        }
    }
}

/// A socket whose writes fail with `TimedOut` once one has been pending for `timeout`.
///
/// hyper has a header (read) timeout but none for writes: a client that pipelines requests and
/// never reads the answers would otherwise hold its connection for ever.
pub(super) struct WriteDeadline<T> {
    inner: T,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteDeadline<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// Called when the inner write is pending: arm the deadline once, fail when it passes.
    fn stall<R>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<R>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progressed<R>(
        &mut self,
        r: Poll<io::Result<R>>,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => self.stall(cx),
            ready => {
                self.stalled = None;
                ready
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteDeadline<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteDeadline<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.progressed(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.progressed(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.progressed(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.progressed(r, cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_peer_cannot_take_every_slot_and_health_has_its_own() {
        let a = Admission::new();
        let hostile: IpAddr = "10.0.0.2".parse().unwrap();
        let slots: Vec<Slot> = (0..1000).filter_map(|_| a.admit(hostile)).collect();
        let lanes = |l: Lane| slots.iter().filter(|s| s.lane == l).count();
        assert_eq!(lanes(Lane::Ordinary), PER_PEER);
        assert_eq!(lanes(Lane::HealthOnly), PER_PEER_HEALTH);
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        assert_eq!(a.admit(other).map(|s| s.lane), Some(Lane::Ordinary));
        drop(slots);
        let counts = a.lock();
        assert!(counts.peers.is_empty(), "every place was given back");
        assert_eq!((counts.ordinary, counts.health), (0, 0));
    }

    #[test]
    fn past_the_global_cap_only_health_checks_get_in() {
        let a = Admission::new();
        let peers = (0..MAX_CONNECTIONS / PER_PEER).map(|i| IpAddr::from([10, 1, 0, i as u8]));
        let _held: Vec<Slot> = peers
            .flat_map(|p| (0..PER_PEER).filter_map(move |_| Some(p)))
            .filter_map(|p| a.admit(p))
            .collect();
        let late = a.admit("10.2.0.1".parse().unwrap()).unwrap();
        assert_eq!(late.lane, Lane::HealthOnly);
    }
}
