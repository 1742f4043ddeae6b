//! The Xianyu (Goofish) marketplace: signing and cookies (`sign`), push decoding (`decode`).
//!
//! Wire facts come from `shared/reference/goofish-protocol.md`; every function here is pure
//! and must never panic on input from the network.

pub mod decode;
pub mod sign;
