//! Sources turn the outside world into [`crate::event::OrderEvent`]s: the Goofish IM socket
//! and the sold-order reconciliation poll (`goofish/`), and replay files (`replay`).

pub mod goofish;
pub mod replay;
