//! `chat-test [--account A] [--item ID] [--history FILE] [--verbose] "买家的话"`: run the chat
//! pipeline on one buyer message without sending anything, and print which stage answered and
//! the reply (with `--verbose`, the exact model request).
//!
//! It works on an in-memory copy of the store (the buyer's orders and keys are what the real
//! store says; nothing is written) and never connects to Xianyu: item details come from
//! `products.yaml`. The model is really called. Exit status: 0 when the pipeline ran (reply or
//! a deliberate silence), 2 when the model could not be reached or failed, 1 for bad input.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};

use crate::chat::stages::ModelProblem;
use crate::chat::{ChatInput, ChatPort, ChatRunner, InputKind, LiveItem, Mode, RunReport};
use crate::cli::Dirs;
use crate::marketplace::SendOutcome;
use crate::secret::SecretRef;
use crate::store::{NewInbound, Store, Turn, TurnRole};

/// The conversation chat-test plays in.
const CID: &str = "chat-test";
const BUYER: &str = "chat-test-buyer";

pub struct ChatTestArgs {
    pub account: Option<String>,
    pub item: Option<String>,
    pub history: Option<std::path::PathBuf>,
    pub verbose: bool,
    pub text: String,
}

/// Never sends; never reads Xianyu.
struct Offline;

#[async_trait::async_trait]
impl ChatPort for Offline {
    async fn send_text(&self, _: &str, _: &str, _: &str, _: &str) -> SendOutcome {
        SendOutcome::NotDelivered {
            reason: "chat-test never sends".into(),
        }
    }

    async fn item_detail(&self, _: &str, _: &str) -> Option<LiveItem> {
        None
    }
}

pub async fn run(dirs: &Dirs, args: ChatTestArgs) -> anyhow::Result<ExitCode> {
    let config = super::load_config(dirs)?;
    if !config.chat.is_enabled() {
        bail!("pipeline.yaml 里没有 chat: 段，不会自动回复任何消息");
    }
    let account = match &args.account {
        Some(a) if config.account(a).is_none() => {
            bail!("没有账号 `{a}`（见 pipeline.yaml 的 accounts:）")
        }
        Some(a) => a.clone(),
        None => config
            .accounts
            .first()
            .map(|a| a.id.clone())
            .context("pipeline.yaml 里没有账号")?,
    };
    if let Some(item) = &args.item {
        if config.product(item).is_none() {
            eprintln!("注意：商品 {item} 不在 products.yaml 里，回复里没有它的标题、价格和资料");
        }
    }
    let store = copy_of_store(&dirs.state_dir())?;
    if let Some(file) = &args.history {
        let turns = read_history(file)?;
        store.chat_append_history(&account, CID, BUYER, &turns)?;
    }
    let input = ChatInput {
        account: account.clone(),
        cid: CID.into(),
        message_id: "chat-test-question".into(),
        sender_id: BUYER.into(),
        sender_nick: Some("测试买家".into()),
        item_id: args.item.clone(),
        text: args.text.clone(),
        sent_at: None,
        kind: InputKind::Buyer,
    };
    store.chat_record_inbound(&NewInbound {
        account,
        cid: CID.into(),
        message_id: input.message_id.clone(),
        buyer_id: BUYER.into(),
        buyer_nick: input.sender_nick.clone(),
        item_id: args.item.clone(),
        text: args.text.clone(),
        at: store.now(),
    })?;
    let handle = crate::config::handle(config.clone());
    let runner = ChatRunner::new(store, handle, Arc::new(Offline), None);
    let report = runner.run(input, 1, Mode::DryRun).await;
    print_report(
        &report,
        args.verbose,
        config.chat.llm().and_then(|l| l.api_key.as_ref()),
    );
    Ok(match &report.model_problem {
        Some(ModelProblem::Error(e)) => {
            eprintln!("chat-test: 模型没有给出回答：{}（{e}）", e.label());
            ExitCode::from(2)
        }
        _ => ExitCode::SUCCESS,
    })
}

/// The real store's contents in memory (or an empty store if there is none yet).
fn copy_of_store(state_dir: &Path) -> anyhow::Result<Store> {
    let clock = crate::clock::system();
    if !state_dir.join(crate::store::DB_FILE).exists() {
        return Ok(Store::in_memory(clock)?);
    }
    let real = Store::open(state_dir, clock).context("打不开 state/shop.redb")?;
    Ok(real.snapshot_in_memory()?)
}

/// `买家：…` / `卖家：…` (or `buyer:` / `seller:` / `bot:`), one turn per line.
fn read_history(file: &Path) -> anyhow::Result<Vec<Turn>> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("读不了 {}", file.display()))?;
    let mut turns = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (who, said) = line.split_once(['：', ':']).with_context(|| {
            format!("{}:{}: 每行写成 买家：… 或 卖家：…", file.display(), i + 1)
        })?;
        let role = match who.trim().to_lowercase().as_str() {
            "买家" | "buyer" | "user" => TurnRole::Buyer,
            "卖家" | "seller" | "我" => TurnRole::Seller,
            "机器人" | "bot" | "assistant" | "客服" => TurnRole::Bot,
            other => bail!("{}:{}: `{other}` 不是 买家 或 卖家", file.display(), i + 1),
        };
        turns.push(Turn {
            role,
            text: said.trim().to_string(),
            at: 0,
            message_id: Some(format!("history-{i}")),
        });
    }
    Ok(turns)
}

fn print_report(report: &RunReport, verbose: bool, key: Option<&SecretRef>) {
    if verbose {
        if let (Some(endpoint), Some(body)) = (&report.model_endpoint, &report.model_request) {
            println!("模型请求：POST {endpoint}");
            if key.is_some() {
                println!("Authorization: Bearer ***");
            }
            println!(
                "{}\n",
                serde_json::to_string_pretty(body).unwrap_or_default()
            );
        }
    }
    if let Some(p) = &report.model_problem {
        println!("模型：{}", p.label());
    }
    if let Some(ms) = report.model_latency {
        println!("模型用时：{} 毫秒", ms.as_millis());
    }
    match (report.stage, report.skipped) {
        (Some(stage), _) => {
            println!("回答阶段：{stage}");
            let count = report.messages.len() + report.images.len();
            println!("回复（{count} 条，不会发送）：");
            for m in &report.messages {
                println!("  {m}");
            }
            for path in &report.images {
                println!("  [图片] {path}");
            }
        }
        (None, Some(why)) => println!("不回复：{}", why.label()),
        (None, None) => println!("不回复"),
    }
}
