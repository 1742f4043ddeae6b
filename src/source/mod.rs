//! Sources turn the outside world into [`crate::event::OrderEvent`]s. Today: replay files.
//! The Goofish WebSocket and sold-order poll live in `goofish/` (issue 3).

pub mod goofish;
pub mod replay;
