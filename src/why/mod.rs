//! Why a delivery or an account stands where it stands, as typed data, and its Chinese
//! rendering with the next step a seller should take.
//!
//! The store keeps [`Why`] on ledger rows and history entries and the health registry keeps a
//! [`Failure`] per account; pages, CLI output for sellers and notifications render them here,
//! once. Raw error text (English, from the OS, the platform or our own clients) is kept only for
//! developer logs: it is classified into a [`Failure`] where it is recorded, and never shown.
//! A leaf: imports nothing of this crate but [`crate::clock`] (Beijing time for due notes).

use serde::{Deserialize, Serialize};

/// What kind of failure a raw error is, as far as a seller's next step is concerned.
///
/// Built from our typed errors where they exist (`goofish::ws::WsError`, `MtopError`) and by
/// [`Failure::classify`] from the text the marketplace and supplier clients report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Failure {
    /// The account has no live IM connection.
    NotConnected,
    /// The request left but no answer came in time.
    NoAnswer,
    /// The other side refused the TCP connection (wrong address, proxy, firewall).
    Refused,
    /// A host name did not resolve.
    Dns,
    /// TLS failed (a proxy that intercepts HTTPS, a wrong clock).
    Tls,
    /// Another network error (reset, closed, unreachable).
    Network,
    /// The cookies are missing, unreadable or expired.
    LoginExpired,
    /// Xianyu asks for the slider (risk control) or paused token fetches.
    RiskControl,
    /// Too many requests.
    RateLimited,
    /// The platform refuses messages to this buyer (`CSI_FORBID`).
    Forbidden,
    /// The order carries no buyer to write to.
    BuyerUnknown,
    /// The session was taken over by another login (kick-out, session removed).
    Kicked,
    /// The server answered 5xx.
    ServerError,
    /// An answer we could not read.
    BadResponse,
    /// The delivery content could not be built (template error, missing key).
    Content,
    /// The platform refused the call for a business reason.
    Platform,
    /// Anything else.
    Other,
}

impl Failure {
    /// Every variant, for tests that render them all.
    pub const ALL: [Failure; 17] = [
        Self::NotConnected,
        Self::NoAnswer,
        Self::Refused,
        Self::Dns,
        Self::Tls,
        Self::Network,
        Self::LoginExpired,
        Self::RiskControl,
        Self::RateLimited,
        Self::Forbidden,
        Self::BuyerUnknown,
        Self::Kicked,
        Self::ServerError,
        Self::BadResponse,
        Self::Content,
        Self::Platform,
        Self::Other,
    ];

    /// Classify an error text. The patterns are the wordings of our own clients
    /// (`goofish/market.rs`, `goofish/mtop`, `goofish/ws`, `supplier/http.rs`), of the OS
    /// (`ECONNREFUSED`, `ETIMEDOUT`) and of the platform's `ret` codes.
    pub fn classify(raw: &str) -> Self {
        let t = raw.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| t.contains(w));
        if has(&["csi_forbid", "forbid"]) {
            Self::Forbidden
        } else if has(&[
            "rgv587",
            "user_validate",
            "risk control",
            "token fetches paused",
        ]) {
            Self::RiskControl
        } else if has(&[
            "session_expired",
            "login expired",
            "no usable cookies",
            "cookie",
        ]) {
            Self::LoginExpired
        } else if has(&["no goofish connection", "not connected", "no connection"]) {
            Self::NotConnected
        } else if has(&["buyer id unknown", "buyer unknown", "no buyer"]) {
            Self::BuyerUnknown
        } else if has(&["kickout", "kicked", "session removed"]) {
            Self::Kicked
        } else if has(&["rate limit", "flow_limit", "too many", "429"]) {
            Self::RateLimited
        } else if has(&["refused"]) {
            Self::Refused
        } else if has(&["no answer", "timed out", "timeout", "deadline"]) {
            Self::NoAnswer
        } else if has(&["dns", "lookup", "resolve host", "name or service"]) {
            Self::Dns
        } else if has(&["tls", "certificate", "handshake"]) {
            Self::Tls
        } else if has(&["template", "render", "content"]) {
            Self::Content
        } else if server_error(&t) {
            Self::ServerError
        } else if has(&[
            "network",
            "reset",
            "closed",
            "unreachable",
            "broken pipe",
            "connect",
        ]) {
            Self::Network
        } else if has(&["unexpected response", "invalid", "decode", "parse", "json"]) {
            Self::BadResponse
        } else if has(&["fail_biz", "fail_sys", "failed:"]) {
            Self::Platform
        } else {
            Self::Other
        }
    }

    /// What happened, in a few Chinese words.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotConnected => "账号的闲鱼消息连接未建立",
            Self::NoAnswer => "闲鱼没有及时回应（超时）",
            Self::Refused => "连接被拒绝",
            Self::Dns => "域名解析失败",
            Self::Tls => "加密连接（TLS）建立失败",
            Self::Network => "网络中断",
            Self::LoginExpired => "Cookie 已失效或无法读取",
            Self::RiskControl => "触发闲鱼风控（需要滑块验证）",
            Self::RateLimited => "请求过于频繁，被限流",
            Self::Forbidden => "闲鱼禁止向该买家发消息",
            Self::BuyerUnknown => "订单缺少买家信息，无法发消息",
            Self::Kicked => "账号在别处登录，连接被挤下线",
            Self::ServerError => "闲鱼服务器出错",
            Self::BadResponse => "收到无法识别的回应",
            Self::Content => "发货内容无法生成（模板或卡密有误）",
            Self::Platform => "闲鱼拒绝了这次操作",
            Self::Other => "未知错误",
        }
    }

    /// What the seller can do about it.
    pub fn advice(self) -> &'static str {
        match self {
            Self::NotConnected | Self::Network => {
                "检查本机网络和代理，守护进程会自动重连；连上后再重试"
            }
            Self::NoAnswer => "多半是网络慢或闲鱼繁忙，稍后重试；持续出现请检查网络和代理",
            Self::Refused => "检查网络和代理设置（HTTPS_PROXY 等）以及防火墙，守护进程会自动重连",
            Self::Dns => "检查本机 DNS 设置和网络连接",
            Self::Tls => "检查代理是否拦截了 HTTPS，以及系统时间是否正确",
            Self::LoginExpired => {
                "在浏览器重新登录闲鱼网页版，重新导出 Cookie 写入 cookies_file 指定的文件"
            }
            Self::RiskControl => "在浏览器打开闲鱼网页版完成滑块验证，然后更新 Cookie",
            Self::RateLimited => "稍等一段时间再试，不要频繁重启",
            Self::Forbidden => "在闲鱼App中打开与买家的聊天查看原因，必要时人工联系买家",
            Self::BuyerUnknown => "在闲鱼App中找到该订单，人工联系买家发货",
            Self::Kicked => "确认没有其他程序或设备在登录这个账号，然后更新 Cookie",
            Self::ServerError => "闲鱼那边出错，稍后重试",
            Self::BadResponse => "稍后重试；反复出现请附上开发日志反馈问题",
            Self::Content => "检查 products.yaml 和模板文件（运行 `xianyu-shopd check`）",
            Self::Platform => "在闲鱼App中查看该订单的状态，再决定重试或人工处理",
            Self::Other => "查看开发日志了解详情，然后重试或人工处理",
        }
    }
}

/// An error text as a seller may read it: Chinese text (written for sellers) as it is, raw
/// (English) text as its [`Failure`] label.
pub fn shown_error(raw: &str) -> String {
    if raw.chars().any(|c| !c.is_ascii()) {
        raw.to_string()
    } else {
        Failure::classify(raw).label().to_string()
    }
}

/// `HTTP status 5xx`, `status: 503`, `code 500`.
fn server_error(t: &str) -> bool {
    ["status 5", "status: 5", "http 5", "code 5"]
        .iter()
        .any(|p| t.contains(p))
}

/// Which message of a delivery of several a note is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRef {
    /// 1-based.
    pub index: usize,
    pub of: usize,
    pub image: bool,
}

impl PartRef {
    fn label(&self) -> String {
        let kind = if self.image { "图片" } else { "文字" };
        format!("第 {}/{} 条消息（{kind}）", self.index, self.of)
    }
}

/// Why a delivery stands where it stands: stored on the ledger row and in its history,
/// rendered here in Chinese. Variants that put an order in front of the seller
/// ([`Why::is_problem`]) also say what to do next ([`Why::next_step`]).
///
/// Stored inside positional records (`store/codec.rs`): a variant's new field goes last with
/// `#[serde(default)]`, never `skip_serializing_if`; variants are stored by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "why")]
pub enum Why {
    // ---- handed to the seller ----
    /// A card pool or a counted stock holds fewer units than the order needs.
    OutOfStock {
        #[serde(default)]
        pool: Option<String>,
        #[serde(default)]
        item_id: Option<String>,
        needed: u64,
        available: i64,
    },
    /// The buyer is on `blacklist.buyers`.
    Blacklisted { buyer: String },
    /// The order names no item.
    NoItemId,
    /// No rule in products.yaml for the item.
    NoRule { item_id: String },
    /// The rule is `status: inactive`.
    RuleInactive { item_id: String },
    /// The rule belongs to another account.
    OtherAccount {
        item_id: String,
        owner: String,
        account: String,
    },
    /// A physical item: shipped by the seller.
    Physical,
    /// The product has `auto_ship: false`.
    AutoShipOff,
    /// `ship.enabled: false`.
    ShippingOff,
    /// The SKU has no pool under `sku_cards`.
    NoPoolForSku { sku: String },
    /// The pipeline has no ship stage.
    NoShipStage,
    /// Retries are used up and nothing reached the buyer.
    SendFailed { failure: Failure, attempts: u32 },
    /// The platform's shipment confirmation failed after its retries; `message_sent` says the
    /// buyer already has the delivery message.
    ConfirmFailed {
        failure: Failure,
        attempts: u32,
        message_sent: bool,
    },
    /// The card supplier did not sell a card, retries used up.
    SupplierFailed { failure: Failure },
    /// A delivery image could not be put on the platform's CDN: nothing was sent and the
    /// order was not confirmed (retried while `attempts` is within the budget).
    UploadFailed {
        failure: Failure,
        attempts: u32,
        /// The config-relative path of the image.
        image: String,
    },
    /// The supplier call for `unit` has no known result (no answer, or a crash mid-call).
    SupplierUncertain {
        unit: u32,
        #[serde(default)]
        failure: Option<Failure>,
    },
    /// A send got no answer: the buyer may have the message.
    OutcomeUnknown {
        failure: Failure,
        #[serde(default)]
        part: Option<PartRef>,
    },
    /// The process stopped while a send was in flight.
    Interrupted {
        #[serde(default)]
        part: Option<PartRef>,
    },
    /// The delivery content cannot be built.
    Unbuildable,
    /// A job failed or panicked and was quarantined.
    InternalError,
    /// The seller chose to handle the order (`orders resolve --not-received --manual`).
    SellerTakesOver { operator: String },
    // ---- progress ----
    /// A send attempt failed safely (nothing reached the buyer); it may be retried.
    AttemptFailed {
        failure: Failure,
        #[serde(default)]
        part: Option<PartRef>,
    },
    /// The delay stage drew this send time.
    Due { at_ms: u64 },
    /// Attempt `n` of a step began.
    Attempt { n: u32 },
    /// The platform accepted the delivery message.
    Accepted,
    /// The shipment was confirmed on the platform.
    Confirmed,
    /// `orders retry` re-armed the delivery.
    Rearmed { operator: String },
    /// A cancelled order became payable again.
    Replanned,
    /// Refunded or closed before anything reached the buyer.
    CancelledBeforeDelivery,
    /// A refund completed after delivery: the keys were marked revoked.
    KeysRevoked,
    /// The supplier sold the card for `unit`.
    SupplierFetched { unit: u32 },
    /// The supplier did not sell a card for `unit` this time.
    SupplierNotBought { unit: u32, failure: Failure },
    /// The card for `unit` went back to the supplier.
    SupplierReturned { unit: u32 },
    /// Giving the card for `unit` back to the supplier failed.
    SupplierReturnFailed { unit: u32, failure: Failure },
    /// The follow-up message went out.
    FollowUpSent,
    /// The follow-up message may or may not have gone out; never resent.
    FollowUpUnknown {
        #[serde(default)]
        failure: Option<Failure>,
    },
    /// The follow-up message failed; `gave_up` when it will not be tried again.
    FollowUpFailed { failure: Failure, gave_up: bool },
    /// The follow-up message cannot be built.
    FollowUpUnbuildable,
}

impl Why {
    /// The delivery waits for the seller (or for a retry after a failure) because of this.
    pub fn is_problem(&self) -> bool {
        matches!(
            self,
            Self::OutOfStock { .. }
                | Self::Blacklisted { .. }
                | Self::NoItemId
                | Self::NoRule { .. }
                | Self::RuleInactive { .. }
                | Self::OtherAccount { .. }
                | Self::Physical
                | Self::AutoShipOff
                | Self::ShippingOff
                | Self::NoPoolForSku { .. }
                | Self::NoShipStage
                | Self::SendFailed { .. }
                | Self::ConfirmFailed { .. }
                | Self::SupplierFailed { .. }
                | Self::UploadFailed { .. }
                | Self::SupplierUncertain { .. }
                | Self::OutcomeUnknown { .. }
                | Self::Interrupted { .. }
                | Self::Unbuildable
                | Self::InternalError
                | Self::SellerTakesOver { .. }
                | Self::AttemptFailed { .. }
        )
    }

    /// What happened, in Chinese.
    pub fn label(&self) -> String {
        self.problem_label()
            .unwrap_or_else(|| self.progress_label())
    }

    /// The label of a hand-over reason ([`Why::is_problem`]).
    fn problem_label(&self) -> Option<String> {
        self.routing_label()
            .or_else(|| self.delivery_problem_label())
    }

    /// The label of an order handed over before any delivery attempt (stock, rules, kind).
    fn routing_label(&self) -> Option<String> {
        Some(match self {
            Self::OutOfStock {
                pool,
                item_id,
                needed,
                available,
            } => {
                let stock = match (pool, item_id) {
                    (Some(p), _) => format!("卡池 {p}"),
                    (None, Some(i)) => format!("商品 {i} 的库存"),
                    (None, None) => "库存".to_string(),
                };
                format!(
                    "库存不足：{stock} 需要 {needed} 个，只剩 {}",
                    (*available).max(0)
                )
            }
            Self::Blacklisted { buyer } => format!("买家 {buyer} 在黑名单中，不自动发货"),
            Self::NoItemId => "订单缺少商品ID，无法匹配商品规则".into(),
            Self::NoRule { item_id } => format!("商品 {item_id} 没有配置发货规则"),
            Self::RuleInactive { item_id } => format!("商品 {item_id} 的规则已停用"),
            Self::OtherAccount {
                item_id,
                owner,
                account,
            } => format!("商品 {item_id} 的规则属于账号 {owner}，订单来自账号 {account}"),
            Self::Physical => "实物商品，需要你亲自发货".into(),
            Self::AutoShipOff => "该商品未开启自动发货".into(),
            Self::ShippingOff => "自动发货已关闭".into(),
            Self::NoPoolForSku { sku } => format!("规格「{sku}」没有对应的卡池"),
            Self::NoShipStage => "流水线没有发货阶段".into(),
            _ => return None,
        })
    }

    /// The label of a delivery that failed, or whose outcome is not known.
    fn delivery_problem_label(&self) -> Option<String> {
        let part = |p: &Option<PartRef>| p.map(|p| format!("{}：", p.label())).unwrap_or_default();
        Some(match self {
            Self::SendFailed { failure, attempts } => {
                format!(
                    "自动发货 {attempts} 次都失败，买家没有收到：{}",
                    failure.label()
                )
            }
            Self::ConfirmFailed {
                failure,
                attempts,
                message_sent,
            } => {
                let sent = if *message_sent {
                    "发货消息已送达买家，但"
                } else {
                    ""
                };
                format!(
                    "{sent}在闲鱼上确认发货 {attempts} 次都失败：{}",
                    failure.label()
                )
            }
            Self::SupplierFailed { failure } => {
                format!("供应商没有卖出卡密：{}", failure.label())
            }
            Self::UploadFailed {
                failure,
                attempts,
                image,
            } => format!(
                "发货图片 `{image}` 上传失败（已试 {attempts} 次），消息一条都没有发出，订单也没有确认发货：{}",
                failure.label()
            ),
            Self::SupplierUncertain { unit, failure } => format!(
                "供应商结果不确定：第 {unit} 件{}，不会重复购买",
                failure
                    .map(|f| format!("（{}）", f.label()))
                    .unwrap_or_else(|| "的请求途中进程停止".into())
            ),
            Self::OutcomeUnknown { failure, part: p } => format!(
                "{}发货结果未知（{}），买家可能已收到",
                part(p),
                failure.label()
            ),
            Self::Interrupted { part: p } => {
                format!("{}发送途中进程停止，发货结果未知，买家可能已收到", part(p))
            }
            Self::Unbuildable => "发货内容无法生成（模板或卡密有误）".into(),
            Self::InternalError => "处理时内部错误".into(),
            Self::SellerTakesOver { operator } => format!("卖家选择自己处理（{operator}）"),
            Self::AttemptFailed { failure, part: p } => {
                format!("{}发送失败，买家没有收到：{}", part(p), failure.label())
            }
            _ => return None,
        })
    }

    /// The label of a progress note.
    fn progress_label(&self) -> String {
        match self {
            Self::Due { at_ms } => {
                format!("预定 {} 发送", crate::clock::format_beijing(*at_ms))
            }
            Self::Attempt { n } => format!("第 {n} 次尝试"),
            Self::Accepted => "闲鱼已收下发货消息".into(),
            Self::Confirmed => "已在闲鱼上确认发货".into(),
            Self::Rearmed { operator } => format!("{operator} 重新安排发货"),
            Self::Replanned => "订单重新变为待发货，重新安排发货".into(),
            Self::CancelledBeforeDelivery => "发货前订单已退款或关闭，卡密/库存已退回".into(),
            Self::KeysRevoked => "退款完成：已发出的卡密记为作废".into(),
            Self::SupplierFetched { unit } => format!("第 {unit} 件的供应商卡密已取得"),
            Self::SupplierNotBought { unit, failure } => {
                format!(
                    "第 {unit} 件向供应商取卡失败（未购买）：{}",
                    failure.label()
                )
            }
            Self::SupplierReturned { unit } => format!("第 {unit} 件的供应商卡密已退回"),
            Self::SupplierReturnFailed { unit, failure } => {
                format!(
                    "第 {unit} 件的供应商卡密退回失败：{}（请到供应商后台处理）",
                    failure.label()
                )
            }
            Self::FollowUpSent => "附加消息已发送".into(),
            Self::FollowUpUnknown { failure } => format!(
                "附加消息发送结果未知，不再重发{}",
                failure
                    .map(|f| format!("（{}）", f.label()))
                    .unwrap_or_default()
            ),
            Self::FollowUpFailed { failure, gave_up } => format!(
                "附加消息发送失败，{}（{}）",
                if *gave_up {
                    "已放弃"
                } else {
                    "稍后重试"
                },
                failure.label()
            ),
            Self::FollowUpUnbuildable => "附加消息无法生成，未发送".into(),
            // Every hand-over reason has its label in `problem_label`.
            _ => String::new(),
        }
    }

    /// What the seller should do now, commands in backticks; `None` for progress notes.
    pub fn next_step(&self, order_id: &str) -> Option<String> {
        let ship = format!("`xianyu-shopd orders ship {order_id}`");
        let retry = format!("`xianyu-shopd orders retry {order_id}`");
        let resolve = format!(
            "打开与买家的聊天核实：买家已收到 → `xianyu-shopd orders resolve {order_id} --received`；没收到 → `xianyu-shopd orders resolve {order_id} --not-received --retry`（重新自动发货）或 `--not-received --manual`（你自己处理）"
        );
        let by_hand = format!("在闲鱼App中发货后运行 {ship} 记录");
        Some(match self {
            Self::OutOfStock { pool: Some(p), .. } => format!(
                "导入卡密（`xianyu-shopd cards import {p} 卡密文件`）后运行 {retry} 自动发货；或{by_hand}"
            ),
            Self::OutOfStock { .. } => {
                format!("补货并调大 products.yaml 里的 stock 后运行 {retry}；或{by_hand}")
            }
            Self::Blacklisted { .. } => {
                format!("确认是否要卖给这位买家：要发就{by_hand}，否则在闲鱼App中退款")
            }
            Self::NoItemId | Self::OtherAccount { .. } => format!("{by_hand}"),
            Self::NoRule { .. } | Self::RuleInactive { .. } | Self::NoPoolForSku { .. } => format!(
                "在 products.yaml 中补上规则（运行 `xianyu-shopd check` 检查）后运行 {retry}；或{by_hand}"
            ),
            Self::Physical => format!(
                "在闲鱼App中发货，然后运行 `xianyu-shopd orders ship {order_id} --company 快递公司 --tracking 快递单号`"
            ),
            Self::AutoShipOff
            | Self::ShippingOff
            | Self::NoShipStage
            | Self::SellerTakesOver { .. } => by_hand,
            Self::SendFailed { failure, .. } | Self::AttemptFailed { failure, .. } => {
                format!(
                    "{}；然后运行 {retry} 重新发货，或{by_hand}",
                    failure.advice()
                )
            }
            Self::ConfirmFailed {
                failure,
                message_sent: true,
                ..
            } => format!(
                "不要再给买家发一次。{}；然后运行 {retry}（只确认发货，不重发消息），或在闲鱼App中点「发货」",
                failure.advice()
            ),
            Self::ConfirmFailed { failure, .. } => {
                format!(
                    "{}；然后运行 {retry}，或在闲鱼App中点「发货」",
                    failure.advice()
                )
            }
            Self::SupplierFailed { failure } => format!(
                "{}；确认供应商有货后运行 {retry}，或{by_hand}",
                failure.advice()
            ),
            Self::UploadFailed { failure, .. } => format!(
                "{}；也检查 products.yaml 里 delivery.images 的图片文件（运行 `xianyu-shopd check`），然后运行 {retry} 重新发货，或{by_hand}",
                failure.advice()
            ),
            Self::SupplierUncertain { .. } => format!(
                "先登录供应商后台，查这一单是否已经扣款买到卡密，再收尾：`xianyu-shopd orders resolve {order_id} --received` 或 `--not-received --retry` / `--manual`"
            ),
            Self::OutcomeUnknown { .. } | Self::Interrupted { .. } => resolve,
            Self::Unbuildable => format!(
                "检查 products.yaml 和模板（运行 `xianyu-shopd check`），改好后运行 {retry}"
            ),
            Self::InternalError => format!(
                "查看开发日志了解原因；打开聊天确认买家是否收到，再用 {retry} 或 {ship} 收尾"
            ),
            _ => return None,
        })
    }

    /// The label and, for a problem, the next step, in one line (notifications, CLI).
    pub fn sentence(&self, order_id: &str) -> String {
        match self.next_step(order_id) {
            Some(next) => format!("{}。下一步：{next}", self.label()),
            None => self.label(),
        }
    }
}

/// Every variant, for tests (here, the status page tests) that must render them all, and the
/// check they apply to what a seller reads.
#[doc(hidden)]
pub mod catalog;
