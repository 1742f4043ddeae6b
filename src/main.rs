//! The `xianyu-shopd` binary: parse arguments, set up logging and TLS, hand over to `commands`.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use xianyu_shopd::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    // One process-wide rustls provider, chosen explicitly (see ARCHITECTURE.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(xianyu_shopd::commands::execute(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,xianyu_shopd=info"));
    // The status page's 日志 tab shows the last warnings and errors from this layer.
    let registry = tracing_subscriber::registry()
        .with(filter)
        .with(clamp())
        .with(xianyu_shopd::status::logs::layer());
    let stderr = std::io::stderr;
    if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_timer(BeijingTime)
                    .with_writer(stderr),
            )
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .compact()
                    .with_timer(BeijingTime)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(stderr),
            )
            .init();
    }
}

/// Log timestamps in Beijing time with the offset shown (`2026-11-24 21:09:58.123+08:00`), like
/// every time on the status page and in notifications; tracing's default is UTC.
struct BeijingTime;

impl tracing_subscriber::fmt::time::FormatTime for BeijingTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        let ms = xianyu_shopd::clock::now_ms();
        let millis = ms % 1000;
        write!(
            w,
            "{}.{millis:03}+08:00",
            xianyu_shopd::clock::format_beijing(ms)
        )
    }
}

/// Libraries whose TRACE output carries request headers and bodies: the Cookie header of the
/// IM handshake, mtop tokens, chat frames with card keys (issue 10 D11).
const CLAMPED_TO_DEBUG: &[&str] = &[
    "tungstenite",
    "tokio_tungstenite",
    "hyper",
    "hyper_util",
    "reqwest",
    "rustls",
    "h2",
];

/// Holds [`CLAMPED_TO_DEBUG`] at DEBUG whatever `RUST_LOG` says. A separate filter rather than
/// directives added to the env filter, so a more specific `RUST_LOG=hyper::proto=trace` is
/// clamped too (a target matches its most specific prefix here).
fn clamp() -> Targets {
    CLAMPED_TO_DEBUG.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, name| targets.with_target(*name, LevelFilter::DEBUG),
    )
}
