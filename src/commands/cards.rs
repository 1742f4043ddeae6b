//! `cards import` and `cards list`.

use std::process::ExitCode;

use anyhow::{Context, bail};

use super::table::{Align, Table};
use crate::cli::{CardsCommand, Dirs};
use crate::event::shown;
use crate::store::CardState;

pub fn run(dirs: &Dirs, cmd: CardsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CardsCommand::Import { pool, file } => {
            let config = super::load_config(dirs)?;
            let Some(pool_cfg) = config.pools.get(&pool) else {
                let known: Vec<_> = config.pools.keys().cloned().collect();
                bail!(
                    "pool `{pool}` is not declared under `pools:` in products.yaml (declared: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                );
            };
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("reading {}", file.display()))?;
            let store = super::open_store(dirs)?;
            let report = store.import_cards(&pool, &text, pool_cfg.reusable, &super::operator())?;
            let available = store.available_cards(&pool)?;
            println!(
                "pool {}: {} added, {} skipped (duplicates); {available} available",
                shown(&pool),
                report.added,
                report.skipped_duplicates
            );
        }
        CardsCommand::List => {
            let store = super::open_store(dirs)?;
            let counts = store.card_counts()?;
            let mut table = Table::new(&[
                ("pool", Align::Left),
                ("available", Align::Right),
                ("reserved", Align::Right),
                ("delivered", Align::Right),
                ("revoked", Align::Right),
                ("", Align::Left),
            ]);
            for (pool, c) in &counts {
                table.row(vec![
                    shown(pool).to_string(),
                    c.get(CardState::Available).to_string(),
                    c.get(CardState::Reserved).to_string(),
                    c.get(CardState::Delivered).to_string(),
                    c.get(CardState::Revoked).to_string(),
                    if c.reusable > 0 {
                        "(reusable)".into()
                    } else {
                        String::new()
                    },
                ]);
            }
            table.print();
            if counts.is_empty() {
                println!("(no card keys imported yet: xianyu-shopd cards import POOL FILE)");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
