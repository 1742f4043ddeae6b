//! The Xianyu (Goofish) marketplace client: the live source of order events and the
//! [`crate::marketplace::Marketplace`] the ship stage uses.
//!
//! * Pure wire code: signing, ids and cookies (`sign`); what the user agent says (`agent`); push decoding (`decode/`: `msgpack`,
//!   payload `shapes`, order `signals`).
//! * Network code: the mtop HTTP API (`mtop/`: `client`, `api`, `interpret`) and the IM
//!   WebSocket (`ws/`: `session`, `conn`, `send`, `frames`).
//! * Daemon code: one supervisor per account (`account`) feeding the pipeline, the sold-order
//!   poll that catches what the socket missed (`reconcile`), how both complete a paid event
//!   (`paid`), and the marketplace implementation (`market`).
//!
//! Depends on the pipeline, store, config, notify and health; nothing but `app`, `commands`
//! and the fake depends on it. Wire facts come from `shared/reference/goofish-protocol.md`;
//! nothing here may panic on input from the network, and no cookie or token value ever
//! reaches a log.

pub mod account;
pub mod agent;
#[cfg(test)]
pub(crate) mod captures;
pub mod decode;
pub mod market;
pub mod mtop;
pub mod paid;
pub mod reconcile;
pub mod sign;
mod values;
pub mod ws;
