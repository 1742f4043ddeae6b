//! Identifiers in the shapes the real service uses (reference §1.1, §4.3, §5.4): 19-digit
//! order ids, 11-digit conversation ids, `<13 digits>.PNM` message ids, 32-hex card ids,
//! 44-hex session ids and `<8 hex> 0` server mids. Uniqueness is guaranteed per fake.

use std::collections::HashSet;

use rand::random_range;

/// Generators with the memory needed to never hand out the same id twice.
pub(crate) struct Ids {
    /// Server message ids grow monotonically, like the captures (`3416565274542.PNM`).
    next_message: u64,
    used: HashSet<String>,
}

impl Ids {
    pub(crate) fn new() -> Self {
        Self {
            next_message: random_range(3_400_000_000_000..3_500_000_000_000),
            used: HashSet::new(),
        }
    }

    /// A fresh 19-digit order id (samples start with 2 or 3).
    pub(crate) fn order_id(&mut self) -> String {
        self.unique(|| digits(random_range(2..=3), 19))
    }

    /// A fresh 11-digit conversation id (samples: `47983389096`, `51204613184`).
    pub(crate) fn cid(&mut self) -> String {
        self.unique(|| digits(random_range(4..=5), 11))
    }

    /// A fresh 12-character task id as in `bizTag` (`3exQJHOTmPU1`).
    pub(crate) fn task_id(&mut self) -> String {
        self.unique(|| alnum(12))
    }

    /// The next server message id, `<13 digits>.PNM`.
    pub(crate) fn message_id(&mut self) -> String {
        self.next_message += random_range(1..40u64);
        format!("{}.PNM", self.next_message)
    }

    /// A fresh CDN URL for an image `account` uploaded as `file_name` (the alicdn shape the
    /// bots log: `https://img.alicdn.com/imgextra/i<n>/<user>/O1CN01<id>_!!<user>-2-xy_chat.<ext>`).
    pub(crate) fn cdn_url(&mut self, account: &str, file_name: &str) -> String {
        let ext = file_name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .filter(|e| e.len() <= 4 && e.chars().all(|c| c.is_ascii_alphanumeric()))
            .unwrap_or_else(|| "jpg".into());
        let id = self.unique(|| alnum(20));
        format!(
            "https://img.alicdn.com/imgextra/i{}/{account}/O1CN01{id}_!!{account}-2-xy_chat.{ext}",
            random_range(1..=4u8)
        )
    }

    fn unique(&mut self, make: impl Fn() -> String) -> String {
        loop {
            let id = make();
            if self.used.insert(id.clone()) {
                return id;
            }
        }
    }
}

/// `len` decimal digits starting with `lead`.
fn digits(lead: u8, len: usize) -> String {
    let mut s = lead.to_string();
    while s.len() < len {
        s.push(char::from(b'0' + random_range(0..10u8)));
    }
    s
}

/// Random lowercase hex of `len` characters (card ids, session ids, mtop tokens).
pub(crate) fn hex(len: usize) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    (0..len)
        .map(|_| char::from(HEX[random_range(0..16usize)]))
        .collect()
}

/// Random ASCII letters and digits (task ids, opaque tokens).
pub(crate) fn alnum(len: usize) -> String {
    const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..len)
        .map(|_| char::from(ALNUM[random_range(0..62usize)]))
        .collect()
}

/// A server-originated mid: 8 hex digits then ` 0` (`a3e20004 0`). The high half is a
/// per-connection prefix, the low half a counter, as the captures suggest.
pub(crate) fn server_mid(prefix: u16, counter: u16) -> String {
    format!("{prefix:04x}{counter:04x} 0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let mut ids = Ids::new();
        let order = ids.order_id();
        assert_eq!(order.len(), 19);
        assert!(order.bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(ids.cid().len(), 11);
        assert_eq!(ids.task_id().len(), 12);
        let (a, b) = (ids.message_id(), ids.message_id());
        assert!(a.ends_with(".PNM") && a.len() == 17 && a < b);
        assert_eq!(hex(44).len(), 44);
        assert_eq!(server_mid(0xa3e2, 4), "a3e20004 0");
    }
}
