//! `notify-test CHANNEL [--event E]`: render the event's template with sample data, send it
//! through one configured channel right now (bypassing the outbox, its de-duplication and
//! rate limits) and print the classified answer. Exit 0 only if the channel accepted it.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;

use crate::alert::EventKind;
use crate::channels::{Notification, SendResult, build_channel};
use crate::cli::Dirs;
use crate::config::yaml::did_you_mean;

pub async fn run(dirs: &Dirs, channel: &str, event: &str) -> anyhow::Result<ExitCode> {
    let config = super::load_config(dirs)?;
    let Some(kind) = EventKind::parse(event) else {
        let names: Vec<String> = EventKind::ALL
            .iter()
            .map(|k| k.as_str().to_string())
            .collect();
        bail!("unknown event `{event}`; {}", hint(event, &names, "events"));
    };
    let Some(cfg) = config.channels.get(channel) else {
        let names: Vec<String> = config.channels.keys().cloned().collect();
        bail!(
            "unknown channel `{channel}`; {}",
            hint(channel, &names, "channels")
        );
    };
    let now = crate::clock::system().now_ms();
    // The id doubles as the idempotency key (DingTalk msgUuid, webhook-id): unique per run.
    let n = Notification::sample(kind, config.notify(), now, now);
    println!("{}\n{}\n", n.title, n.text);
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()?;
    let result = match build_channel(cfg, &http) {
        Ok(ch) => ch.send(&n).await,
        Err(e) => SendResult::permanent(format!("channel cannot be built: {e}")),
    };
    println!(
        "notify-test {channel} ({}) {kind}: {result}",
        cfg.spec.kind()
    );
    Ok(if result == SendResult::Accepted {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn hint(name: &str, names: &[String], what: &str) -> String {
    did_you_mean(name, names).map_or_else(
        || format!("known {what}: {}", names.join(", ")),
        |b| format!("did you mean `{b}`?"),
    )
}
