//! The Xianyu (Goofish) marketplace client.
//!
//! Pure wire code: signing and cookies (`sign`), push decoding (`decode`). Network code: the
//! mtop HTTP API (`mtop`), the IM WebSocket (`ws`). Daemon code: one supervisor per account
//! (`account`) feeding the pipeline, the sold-order poll that catches what the socket missed
//! (`reconcile`), and the [`crate::marketplace::Marketplace`] the ship stage uses (`market`).
//!
//! Wire facts come from `shared/reference/goofish-protocol.md`; nothing here may panic on
//! input from the network, and no cookie or token value ever reaches a log.

pub mod account;
#[cfg(test)]
pub(crate) mod captures;
pub mod decode;
pub mod market;
pub mod mtop;
pub mod reconcile;
pub mod sign;
pub mod ws;
