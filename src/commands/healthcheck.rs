//! `healthcheck [--url URL]`: one `GET /healthz` against a running daemon, for container
//! runtimes (Docker `HEALTHCHECK`, compose `healthcheck:`) whose images carry no HTTP client.

use std::process::ExitCode;
use std::time::Duration;

/// Long enough for a busy daemon on a slow NAS, short enough that a wedged one is reported.
const TIMEOUT: Duration = Duration::from_secs(5);

pub(super) async fn run(url: &str) -> anyhow::Result<ExitCode> {
    let client = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    match client.get(url).send().await {
        Ok(resp) if resp.status().is_success() => {
            println!("healthy: {url} answered {}", resp.status());
            Ok(ExitCode::SUCCESS)
        }
        Ok(resp) => {
            eprintln!("unhealthy: {url} answered {}", resp.status());
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {url} did not answer: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}
