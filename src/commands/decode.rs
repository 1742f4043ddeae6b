//! `decode [--account-id UID] [--raw] INPUT`: what the daemon would make of a push.

use std::io::Read;
use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::goofish::decode::decode_input;

pub fn run(input: &str, account_id: Option<&str>, raw: bool) -> anyhow::Result<ExitCode> {
    let text = if input == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .context("reading stdin")?;
        s
    } else {
        input.to_string()
    };
    let decoded = match decode_input(text.trim(), account_id) {
        Ok(d) => d,
        Err(e) => bail!(
            "cannot decode input: {e} (expected a base64 payload, a WebSocket frame as JSON, or - for stdin)"
        ),
    };
    for d in decoded {
        let mut line = serde_json::to_value(&d.event)?;
        if raw {
            if let Some(obj) = line.as_object_mut() {
                obj.insert("raw".into(), d.raw);
            }
        }
        println!("{line}");
    }
    Ok(ExitCode::SUCCESS)
}
