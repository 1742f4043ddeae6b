//! The mtop HTTP API (`h5api.m.goofish.com`): signed requests, the `ret` envelope, cookie
//! rotation and the account's login state.
//!
//! One [`MtopClient`] per account owns that account's cookie jar. Every call is signed with
//! [`mtop_sign`](crate::goofish::sign::mtop_sign) over the exact `data` string it posts (reference §2.1–2.4); every
//! `Set-Cookie` answer is merged into the jar. A token error (`FAIL_SYS_TOKEN_EMPTY` /
//! `EXOIRED`) is retried exactly once with the rotated token. The two answers that no retry can
//! fix put the client into a blocked [`LoginState`] that makes further calls fail fast without
//! touching the network: `FAIL_SYS_SESSION_EXPIRED` (fresh cookies needed) and risk control
//! (`FAIL_SYS_USER_VALIDATE` / `RGV587_ERROR`: a slider must be solved in a browser; one probe
//! after a long, doubling backoff). That is what keeps a dead account from becoming a retry
//! storm (reference §8). Cookie values and tokens never reach a log or an error message.
//!
//! Layout: this file holds the error and login-state types; `client` owns the cookie jar,
//! signing and the call machinery (headers, retries, blocked states); `api` holds one method
//! per mtop API and the typed answers (`aftersale` the rating and polishing ones, `upload` the image upload); `jar` the cookie jar and its saved copy; `interpret` turns raw answers into those answers or
//! errors (pure, unit-tested).

use crate::why::Failure;
use tokio::time::Instant;

mod aftersale;
mod api;
pub mod budget;
mod client;
mod interpret;
mod jar;
#[cfg(test)]
mod tests;
mod upload;

pub use api::{Consigned, ImToken, ItemDetail, OrderDetail, Sku, SoldOrder};
pub use client::{MtopClient, device_id_for};
pub use interpret::form_encode;
pub use upload::UploadedPic;

/// Desktop Chrome, as the bots send it (reference §2.4); overridable by `marketplace.user_agent`.
pub const DEFAULT_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";

/// Why an mtop call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MtopError {
    #[error("no usable cookies: {0}")]
    NoCookies(String),
    #[error("login expired (FAIL_SYS_SESSION_EXPIRED): fresh cookies are needed")]
    LoginExpired,
    #[error("risk control ({code}): solve the slider in a browser and paste fresh cookies")]
    RiskControl { code: String },
    #[error("token still rejected after one refresh ({0})")]
    Token(String),
    #[error("rate limited ({0})")]
    RateLimited(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("HTTP status {0}")]
    Http(u16),
    #[error("unexpected response: {0}")]
    BadResponse(String),
    #[error("{api} failed: {ret}")]
    Business { api: String, ret: String },
    /// The IM token was fetched [`budget::FETCHES_PER_HOUR`] times within an hour; no more
    /// fetches until `until` (or fresh cookies).
    #[error(
        "IM token fetches paused: too many within an hour (the token API is the risk-control hot spot)"
    )]
    TokenPaused { until: Instant },
}

impl MtopError {
    /// Whether the same call may succeed later without a human (network, 5xx, tokens).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Network(_) | Self::Token(_) | Self::RateLimited(_) => true,
            Self::Http(code) => *code >= 500 || *code == 429,
            _ => false,
        }
    }

    /// What the seller reads about this error (`crate::why`).
    pub fn failure(&self) -> Failure {
        match self {
            Self::NoCookies(_) | Self::LoginExpired | Self::Token(_) => Failure::LoginExpired,
            Self::RiskControl { .. } | Self::TokenPaused { .. } => Failure::RiskControl,
            Self::RateLimited(_) => Failure::RateLimited,
            Self::Network(io) => match Failure::classify(io) {
                Failure::Other => Failure::Network,
                f => f,
            },
            Self::Http(code) if *code >= 500 => Failure::ServerError,
            Self::Http(429) => Failure::RateLimited,
            Self::Http(_) | Self::Business { .. } => Failure::Platform,
            Self::BadResponse(_) => Failure::BadResponse,
        }
    }

    /// Whether this error blocks the account until a human acts.
    pub fn is_blocking(&self) -> bool {
        matches!(
            self,
            Self::NoCookies(_) | Self::LoginExpired | Self::RiskControl { .. }
        )
    }
}

/// The account's login state as far as the mtop API can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum LoginState {
    Ok,
    /// Fresh cookies are loaded but nothing has proven them yet: calls may go out (that is how
    /// they get proven), but the seller is not told "recovered" until the IM connection has
    /// registered with them ([`MtopClient::confirm_login`]).
    Unverified,
    /// Cookies missing, unreadable or without `unb`.
    NoCookies(String),
    /// `FAIL_SYS_SESSION_EXPIRED`: only fresh cookies help.
    LoginExpired,
    /// Risk control: calls fail fast until `retry_at`, then one probe is let through.
    RiskControl {
        retry_at: Instant,
        strikes: u32,
    },
}

impl LoginState {
    pub fn is_ok(&self) -> bool {
        *self == Self::Ok
    }

    /// Whether a call may go to the network now.
    pub fn usable_at(&self, now: Instant) -> bool {
        match self {
            Self::Ok | Self::Unverified => true,
            Self::RiskControl { retry_at, .. } => now >= *retry_at,
            _ => false,
        }
    }
}
