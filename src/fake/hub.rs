//! Live WebSocket connections and push delivery: which connection belongs to which account,
//! which may receive pushes (registered, synced, not a zombie), server-style mids, ACK
//! bookkeeping, and the frame envelope every push shares (reference §4.6, §4.7).

use std::collections::{HashMap, VecDeque};

use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedSender;

use super::ids::{hex, server_mid};
use super::record::Recorder;

/// Pushes awaiting an ACK per connection; older ones are forgotten (and later ACKs for
/// them count as stray) so a client that never ACKs cannot grow memory.
const MAX_AWAITING_ACK: usize = 1024;

/// What a connection task should do next.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Text(String),
    /// Close with a close frame.
    Close,
    /// Drop the TCP stream without a close frame.
    Drop,
}

/// The push paths of §4.7.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Channel {
    /// `/s/sync`: messages, read receipts, card updates.
    Sync,
    /// `/s/para`: typing indicators.
    Para,
    /// `/s/vulcan`: session cards (plain JSON payloads).
    Vulcan,
}

impl Channel {
    fn lwp(self) -> &'static str {
        match self {
            Self::Sync => "/s/sync",
            Self::Para => "/s/para",
            Self::Vulcan => "/s/vulcan",
        }
    }
}

/// One push: its path and its `syncPushPackage.data[]` items.
#[derive(Debug, Clone)]
pub(crate) struct Push {
    pub channel: Channel,
    pub items: Vec<Value>,
}

/// One WebSocket connection.
pub(crate) struct Conn {
    tx: UnboundedSender<Outgoing>,
    /// The account, once known (handshake cookie `unb` or `/reg`).
    pub account: Option<String>,
    pub registered: bool,
    /// Sent `ackDiff` since registering; only synced connections get pushes (gc: "必须调用，
    /// 否则收不到消息").
    pub synced: bool,
    pub zombie: bool,
    /// Session id given at `/reg`, echoed in push headers.
    pub sid: String,
    /// `ua` and `app-key` sent at `/reg`, echoed in push headers.
    pub ua: String,
    pub app_key: String,
    mid_prefix: u16,
    mid_counter: u16,
    awaiting_ack: VecDeque<String>,
}

impl Conn {
    /// Queues a frame for the connection task (a closed task just drops it).
    pub(crate) fn send(&self, out: Outgoing) {
        let _ = self.tx.send(out);
    }

    fn receives_pushes(&self, account: &str) -> bool {
        self.registered && self.synced && !self.zombie && self.account.as_deref() == Some(account)
    }

    fn is_live_for(&self, scope: Option<&str>) -> bool {
        self.registered && scope.is_none_or(|s| self.account.as_deref() == Some(s))
    }

    fn next_mid(&mut self) -> String {
        self.mid_counter = self.mid_counter.wrapping_add(1);
        server_mid(self.mid_prefix, self.mid_counter)
    }

    /// Headers every server-initiated frame carries (the jv capture's set).
    fn push_headers(&mut self) -> Value {
        json!({"app-key": self.app_key, "mid": self.next_mid(), "ua": self.ua, "sid": self.sid})
    }

    fn expect_ack(&mut self, mid: &str) {
        if self.awaiting_ack.len() >= MAX_AWAITING_ACK {
            self.awaiting_ack.pop_front();
        }
        self.awaiting_ack.push_back(mid.to_owned());
    }
}

/// All connections and per-account push sequencing.
#[derive(Default)]
pub(crate) struct Hub {
    conns: HashMap<u64, Conn>,
    next_id: u64,
    /// Per-account `endSeq` of the last `/s/sync` package.
    seq: HashMap<String, u64>,
    /// Per-account last business push, for re-push scenarios.
    last: HashMap<String, Push>,
}

impl Hub {
    /// Registers a new connection's outbox; returns its id.
    pub(crate) fn open(&mut self, tx: UnboundedSender<Outgoing>, account: Option<String>) -> u64 {
        self.next_id += 1;
        let conn = Conn {
            tx,
            account,
            registered: false,
            synced: false,
            zombie: false,
            sid: String::new(),
            ua: String::new(),
            app_key: String::new(),
            mid_prefix: rand::random_range(0x1000..=0xffff),
            mid_counter: 0,
            awaiting_ack: VecDeque::new(),
        };
        self.conns.insert(self.next_id, conn);
        self.next_id
    }

    pub(crate) fn remove(&mut self, id: u64) {
        self.conns.remove(&id);
    }

    pub(crate) fn get(&self, id: u64) -> Option<&Conn> {
        self.conns.get(&id)
    }

    pub(crate) fn get_mut(&mut self, id: u64) -> Option<&mut Conn> {
        self.conns.get_mut(&id)
    }

    /// A fresh 44-hex session id for a registering connection.
    pub(crate) fn new_sid() -> String {
        hex(44)
    }

    /// Registered connections of `account`.
    pub(crate) fn live(&self, account: &str) -> u32 {
        let n = self
            .conns
            .values()
            .filter(|c| c.is_live_for(Some(account)))
            .count();
        u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Writes `push` to every connection of `account` that receives pushes. Returns how
    /// many got it; a push nobody gets is lost (counted), as the real service would not
    /// replay it (whether `ackDiff` replays a backlog is unknown, §10.5).
    pub(crate) fn deliver(
        &mut self,
        account: &str,
        push: Push,
        now_ms: u64,
        rec: &mut Recorder,
    ) -> usize {
        let seq = self.next_seq(account, &push);
        let mut delivered = 0;
        for conn in self.conns.values_mut() {
            if conn.receives_pushes(account) {
                let (mid, frame) = push_frame(conn, &push, seq, now_ms);
                conn.expect_ack(&mid);
                conn.send(Outgoing::Text(frame));
                delivered += 1;
            }
        }
        let stats = rec.stats_mut(account);
        if delivered == 0 {
            stats.pushes_lost += 1;
        }
        stats.pushes_sent += u32::try_from(delivered).unwrap_or(u32::MAX);
        self.last.insert(account.to_owned(), push);
        delivered
    }

    /// The last business push of `account`, to send again (a "re-push").
    pub(crate) fn last_push(&self, account: &str) -> Option<Push> {
        self.last.get(account).cloned()
    }

    /// (startSeq, endSeq) for a sync package; para pushes carry zeros in the capture.
    fn next_seq(&mut self, account: &str, push: &Push) -> (u64, u64) {
        if push.channel == Channel::Para {
            return (0, 0);
        }
        let end = self.seq.entry(account.to_owned()).or_default();
        let start = *end + 1;
        *end += push.items.len() as u64;
        (start, *end)
    }

    /// Sends a server-initiated frame (`/push/kickout`, `/s/session/remove`) to the live
    /// connections in scope, then closes them.
    pub(crate) fn kick(&mut self, scope: Option<&str>, lwp: &str, reason: &str) {
        for conn in self.conns.values_mut().filter(|c| c.is_live_for(scope)) {
            let frame =
                json!({"lwp": lwp, "headers": conn.push_headers(), "body": {"reason": reason}});
            conn.send(Outgoing::Text(frame.to_string()));
            conn.send(Outgoing::Close);
        }
    }

    /// Ends connections in scope (all connections of the account, registered or not).
    pub(crate) fn disconnect(&mut self, scope: Option<&str>, how: fn() -> Outgoing) {
        let in_scope = |c: &&Conn| scope.is_none_or(|s| c.account.as_deref() == Some(s));
        for conn in self.conns.values().filter(in_scope) {
            conn.send(how());
        }
    }

    /// Turns live connections in scope into zombies (or cures all of them).
    pub(crate) fn set_zombie(&mut self, scope: Option<&str>, zombie: bool) {
        for conn in self.conns.values_mut().filter(|c| c.is_live_for(scope)) {
            conn.zombie = zombie;
        }
    }

    /// Matches an ACK to an outstanding push on connection `id`.
    pub(crate) fn ack(&mut self, id: u64, mid: &str) -> bool {
        let Some(conn) = self.conns.get_mut(&id) else {
            return false;
        };
        match conn.awaiting_ack.iter().position(|m| m == mid) {
            Some(pos) => {
                conn.awaiting_ack.remove(pos);
                true
            }
            None => false,
        }
    }
}

/// The frame of one push on one connection (jv's `/s/sync` capture, §4.7); returns its mid.
fn push_frame(
    conn: &mut Conn,
    push: &Push,
    (start, end): (u64, u64),
    now_ms: u64,
) -> (String, String) {
    let headers = conn.push_headers();
    let mid = headers["mid"].as_str().unwrap_or_default().to_owned();
    let body = match push.channel {
        Channel::Para => json!({
            "syncPushPackage": {"maxHighPts": 0, "startSeq": 0, "endSeq": 0, "data": push.items,
                                "maxPts": 0, "hasMore": 0, "timestamp": 0},
            "syncExtensionModel": {}
        }),
        Channel::Sync | Channel::Vulcan => {
            let mut body = json!({
                "syncPushPackage": {"maxHighPts": 0, "startSeq": start, "endSeq": end,
                                    "minCreateTime": now_ms, "data": push.items,
                                    "maxPts": now_ms * 1000, "hasMore": 0, "timestamp": now_ms},
                "syncExtensionModel": {"reconnectType": 0, "failover": 0,
                                       "fingerprint": rand::random_range(i32::MIN..0)}
            });
            if push.channel == Channel::Vulcan {
                body["syncExtraType"] = json!({"type": 3});
            }
            body
        }
    };
    let frame = json!({"headers": headers, "lwp": push.channel.lwp(), "body": body});
    (mid, frame.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::unbounded_channel;

    fn registered(
        hub: &mut Hub,
        account: &str,
    ) -> (u64, tokio::sync::mpsc::UnboundedReceiver<Outgoing>) {
        let (tx, rx) = unbounded_channel();
        let id = hub.open(tx, Some(account.to_owned()));
        let conn = hub.get_mut(id).expect("conn");
        conn.registered = true;
        conn.synced = true;
        conn.sid = "s".repeat(44);
        (id, rx)
    }

    #[test]
    fn deliver_ack_and_zombie() {
        let mut hub = Hub::default();
        let mut rec = Recorder::default();
        let (id, mut rx) = registered(&mut hub, "1");
        let push = Push {
            channel: Channel::Sync,
            items: vec![json!({"bizType": 40})],
        };
        assert_eq!(hub.deliver("1", push.clone(), 5, &mut rec), 1);
        let Ok(Outgoing::Text(frame)) = rx.try_recv() else {
            panic!("no frame");
        };
        let frame: Value = serde_json::from_str(&frame).expect("json");
        assert_eq!(frame["lwp"], "/s/sync");
        assert_eq!(frame["body"]["syncPushPackage"]["startSeq"], 1);
        let mid = frame["headers"]["mid"].as_str().expect("mid");
        assert!(mid.ends_with(" 0") && mid.len() == 10);
        assert!(hub.ack(id, mid));
        assert!(!hub.ack(id, mid));
        hub.set_zombie(Some("1"), true);
        assert_eq!(hub.deliver("1", push, 5, &mut rec), 0);
        assert_eq!(rec.stats("1").pushes_lost, 1);
        assert_eq!(
            hub.deliver("2", hub.last_push("1").expect("last"), 5, &mut rec),
            0
        );
    }
}
