//! The chat pipeline: answering buyers before (and after) they order.
//!
//! A buyer's message becomes a [`input::ChatInput`]; the seller's `chat:` stages decide, in
//! order, whether and how to answer it (`stages/`, one file per kind, pure decisions over a
//! [`stage::ChatCtx`]). Pricing during bargaining is computed by the program
//! ([`price`]), never by a model; every generated text passes the output guard ([`guard`])
//! before it may reach a buyer. State (messages seen, replies, history, takeover, bargaining
//! rounds, our own sends) is in the store; a reply is committed with the messages it answers
//! before anything is sent, and a send whose outcome is unknown is never repeated.

pub mod amounts;
pub mod flow;
pub mod guard;
mod images;
pub mod input;
pub mod orders;
pub mod price;
pub mod runner;
pub mod stage;
pub mod stages;
pub mod view;
pub mod watch;

pub use flow::{Mode, RunReport};
pub use input::{ChatInput, InputKind};
pub use runner::{ChatPort, ChatRunner, ChatWatch, LiveItem};
