//! Command-line arguments (clap). Parsing only; the work lives in `commands/`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "xianyu-shopd",
    version,
    about = "Runs a Xianyu (闲鱼) shop: YAML pipeline, durable state, no telemetry."
)]
pub struct Cli {
    #[command(flatten)]
    pub dirs: Dirs,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Dirs {
    /// Directory holding pipeline.yaml, products.yaml and templates/.
    #[arg(long, global = true, default_value = ".")]
    pub config_dir: PathBuf,
    /// Runtime state (the redb store); defaults to CONFIG_DIR/state.
    #[arg(long, global = true)]
    pub state_dir: Option<PathBuf>,
    /// Create --state-dir if it does not exist yet (without it, a missing one is refused, so a
    /// mistyped path never shows an empty shop).
    #[arg(long, global = true)]
    pub init: bool,
}

impl Dirs {
    pub fn state_dir(&self) -> PathBuf {
        self.state_dir
            .clone()
            .unwrap_or_else(|| self.config_dir.join("state"))
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Run,
    /// Run the whole daemon against a built-in fake Xianyu that simulates a live shop;
    /// prints the status page URL. Runs this config's own files (edits are live); only the
    /// account, endpoints and channels are replaced in memory. State in CONFIG_DIR/state/demo.
    Demo {
        /// Stop after N orders reached a final state and print a summary (default: until Ctrl-C).
        #[arg(long)]
        orders: Option<u64>,
        /// New orders per minute.
        #[arg(long, default_value_t = 20.0)]
        rate: f64,
        /// Send notifications through the configured channels instead of the `log` channel.
        #[arg(long)]
        notify_real: bool,
        /// Simulated buyers act this many times faster than real time (tests: an hour of a
        /// shop in a minute); the daemon keeps real time.
        #[arg(long, default_value_t = 1.0, hide = true)]
        speed: f64,
    },
    /// Validate the config; exit 0 with a summary, or 1 with every error as file:line:col.
    Check,
    /// Feed a JSON Lines file of order events through the real pipeline.
    Replay {
        /// A JSON Lines file of order events (one event per line), or /dev/null to only run
        /// what is already due in the store.
        file: PathBuf,
        /// Print what would be sent, confirmed and notified; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// Do not wait for delayed deliveries; leave them for the daemon.
        #[arg(long)]
        no_wait: bool,
    },
    /// Card-key pools.
    #[command(subcommand)]
    Cards(CardsCommand),
    /// Orders.
    #[command(subcommand)]
    Orders(OrdersCommand),
    /// The shop's numbers per day, item or account (the table of the 统计 page and
    /// `/api/stats`); `stats rebuild` recomputes them from the order records.
    Stats {
        #[command(subcommand)]
        command: Option<StatsCommand>,
        /// First day, `2026-11-01` (default: 29 days before --to).
        #[arg(long)]
        from: Option<String>,
        /// Last day, inclusive (default: today in the statistics time zone).
        #[arg(long)]
        to: Option<String>,
        /// Group by `day`, `item` or `account`.
        #[arg(long, default_value = "day")]
        by: String,
        /// Only this account.
        #[arg(long)]
        account: Option<String>,
    },
    /// Write a consistent copy of the store to PATH (works while the daemon runs).
    Backup {
        /// Where to write the copy (a new file; restore by putting it back as state/shop.redb).
        path: PathBuf,
    },
    /// Give back the space of the store file that no record uses any more (many small commits
    /// leave it behind). Refused while the daemon runs; records are not changed.
    Compact,
    /// Render an event's notification template with sample data, send it through CHANNEL now
    /// (not through the outbox) and print how the channel answered. Exit 0 only if accepted.
    NotifyTest {
        /// A channel name from `channels:` (or `log`).
        channel: String,
        /// Which event's template to send: manual_ship, ship_failed, needs_human,
        /// out_of_stock, low_stock, login_expired, risk_control, delivered, recovered, …
        #[arg(long, default_value = "manual_ship")]
        event: String,
    },
    /// Ask a running daemon's status page whether it is healthy (`GET /healthz`): exit 0 if it
    /// answers 200, 1 otherwise. For container health checks; needs no config.
    Healthcheck {
        /// The health URL of the daemon's status page.
        #[arg(long, default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
    },
    /// Run the chat pipeline on one buyer message without sending anything: prints which stage
    /// answered and the reply. Exit 2 when the model cannot be reached.
    ChatTest {
        /// The account whose shop answers (default: the first in pipeline.yaml).
        #[arg(long)]
        account: Option<String>,
        /// The item the buyer asks about (its facts, price and bargaining apply).
        #[arg(long)]
        item: Option<String>,
        /// Earlier turns of the conversation, one per line: `买家：…` or `卖家：…`.
        #[arg(long)]
        history: Option<PathBuf>,
        /// Also print the exact request sent to the model.
        #[arg(long)]
        verbose: bool,
        /// What the buyer says.
        text: String,
    },
    /// Decode a Goofish IM push: a base64 payload, a whole WebSocket frame as JSON, or `-` for
    /// stdin. Prints one JSON object per event found.
    Decode {
        /// The payload: base64 text, a WebSocket frame as JSON, or `-` to read it from stdin.
        input: String,
        /// The account's own user id, so its echoed messages are marked `own`.
        #[arg(long)]
        account_id: Option<String>,
        /// Also print the decoded structure.
        #[arg(long)]
        raw: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CardsCommand {
    /// Import keys (one per line) into POOL; duplicates are skipped.
    Import {
        /// A pool declared under `pools:` in products.yaml.
        pool: String,
        /// A text file with one key per line (blank lines are ignored).
        file: PathBuf,
    },
    /// Key counts per pool and state (never the keys).
    List,
}

#[derive(Debug, Subcommand)]
pub enum StatsCommand {
    /// Recompute every statistic from the order and delivery records (the same numbers the
    /// daemon keeps as it goes; use after restoring an old backup or to check them).
    Rebuild,
}

#[derive(Debug, Subcommand)]
pub enum OrdersCommand {
    /// List orders, newest first.
    List {
        /// pending_payment, paid (= pending_ship), shipped, completed, closed, refunding, refunded, or the Chinese label.
        #[arg(long)]
        status: Option<String>,
    },
    /// One order with its status log, delivery ledger and notifications.
    Show {
        /// The order id (as in `orders list`).
        id: String,
    },
    /// Record that you shipped an order by hand (physical items need --company and --tracking).
    Ship {
        /// The order id (as in `orders list`).
        id: String,
        /// The courier company, e.g. 顺丰 (physical items).
        #[arg(long)]
        company: Option<String>,
        /// The tracking number (physical items).
        #[arg(long)]
        tracking: Option<String>,
    },
    /// Re-arm a failed_safe or manual delivery (needs_human only with --force).
    Retry {
        /// The order id (as in `orders list`).
        id: String,
        /// Also re-arm a needs_human delivery (the buyer may already have it: check the chat
        /// first, or use `orders resolve`).
        #[arg(long)]
        force: bool,
    },
    /// Close out a needs_human delivery (outcome unknown) once you have checked the chat:
    /// --received, or --not-received with --retry (deliver again) or --manual (you handle it).
    Resolve {
        /// The order id (as in `orders list`).
        id: String,
        /// The buyer has the content: its keys are recorded as delivered to this order.
        #[arg(long, conflicts_with_all = ["not_received", "retry", "manual"])]
        received: bool,
        /// The buyer did not get it: its keys go back to the pool.
        #[arg(long)]
        not_received: bool,
        /// With --not-received: deliver again automatically (new keys, delay, send).
        #[arg(long, requires = "not_received", conflicts_with = "manual")]
        retry: bool,
        /// With --not-received: leave the order to you (record it later with `orders ship`).
        #[arg(long, requires = "not_received")]
        manual: bool,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// `xianyu-shopd help <command>` explains every argument; a bare name leaves sellers guessing.
    #[test]
    fn every_argument_of_every_command_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), "xianyu-shopd", &mut missing);
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }
}
