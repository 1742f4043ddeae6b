//! xianyu-shopd runs a Xianyu (闲鱼 / Goofish) shop.
//!
//! Bird's-eye view: the Goofish wing ([`goofish`]: IM socket, mtop API, sold-order poll) and
//! replay files ([`replay`]) turn the outside world into [`event::OrderEvent`]s;
//! the pipeline (`pipeline/`) runs the seller's YAML-declared stages on each order
//! (ingest → classify → stock-check → delay → ship → notify); every state change is one redb
//! transaction in [`store`]; delays are durable jobs fired by [`scheduler`]; effects on the
//! marketplace go through the [`marketplace::Marketplace`] trait and notifications through the
//! outbox drained by [`notify`]. [`config`] loads and validates the YAML, [`app`] wires the
//! daemon together, [`commands`] implements the CLI. See ARCHITECTURE.md for the code map.

pub mod aftersale;
pub mod alert;
pub mod app;
pub mod channels;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod event;
pub mod fake;
pub mod files;
pub mod goofish;
pub mod health;
pub mod llm;
pub mod marketplace;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod order;
pub mod pipeline;
pub mod replay;
pub mod scheduler;
pub mod secret;
pub mod stats;
pub mod status;
pub mod store;
pub mod supplier;
pub mod why;
