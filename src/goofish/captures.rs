//! The golden captures under `tests/data/captures/` (see the README there), for unit tests of
//! the decoder and the fake. Read at compile time; surrounding whitespace is not part of a
//! capture.

/// A1: order created / 等待买家付款, seller copy (reference §5.5.3).
pub fn a1() -> &'static str {
    include_str!("../../tests/data/captures/a1-order-created.b64").trim()
}

/// A3: read receipt.
pub fn a3() -> &'static str {
    include_str!("../../tests/data/captures/a3-read-receipt.b64").trim()
}

/// A4: typing indicator.
pub fn a4() -> &'static str {
    include_str!("../../tests/data/captures/a4-typing.b64").trim()
}

/// A5: a buyer's text "111" (reference §5.5.1), written by our encoder from the reference's
/// exact decoded form because the real bytes are held back (see the README there).
pub fn a5() -> &'static str {
    include_str!("../../tests/data/captures/a5-buyer-text.b64").trim()
}

/// The first item of the real `/s/sync` push of reference §4.7 (a read receipt).
pub fn sync_receipt() -> &'static str {
    include_str!("../../tests/data/captures/sync-push-receipt.b64").trim()
}
