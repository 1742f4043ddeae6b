//! The marketplace as the ship stage sees it: send a chat message, confirm a shipment.
//!
//! The Goofish client implements this against Xianyu; [`memory::MemoryMarketplace`] implements
//! it in memory for replay, dry runs, tests and benchmarks. Outcomes are three-valued on
//! purpose: a send either provably reached the platform, provably did not, or we cannot know;
//! only the second may be retried automatically. The third may be settled by reading the
//! conversation back ([`ReadBack`]).

pub mod aftersale;
pub mod memory;

pub use aftersale::{ActionOutcome, AftersalePort, ListOutcome};

/// Whom a chat message of an order goes to: the selling account, the order, and what is known
/// of its conversation (a missing conversation or buyer is looked up by the marketplace).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChatAddress {
    pub account: String,
    pub order_id: String,
    pub cid: Option<String>,
    pub buyer_id: Option<String>,
    pub item_id: Option<String>,
}

/// One delivery message for one order. Its `Debug` shows `text` (which holds the card keys) as
/// its length only.
#[derive(Clone, PartialEq)]
pub struct DeliveryMessage {
    pub to: ChatAddress,
    pub text: String,
    /// The delivery rendered over masked keys (issue 10 D5), for anything that stores, logs or
    /// prints it.
    pub masked_text: String,
}

impl std::fmt::Debug for DeliveryMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryMessage")
            .field("to", &self.to)
            .field(
                "text",
                &format_args!("<{} chars>", self.text.chars().count()),
            )
            .field("masked_text", &self.masked_text)
            .finish()
    }
}

/// One image message of a delivery: an image already on the platform's CDN
/// ([`Marketplace::upload_image`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageMessage {
    pub to: ChatAddress,
    pub url: String,
    pub width: u32,
    pub height: u32,
}

/// An image file to put on the platform's CDN.
#[derive(Debug, Clone, Copy)]
pub struct ImageUpload<'a> {
    pub account: &'a str,
    pub file_name: &'a str,
    pub mime: &'a str,
    pub bytes: &'a [u8],
}

/// How an upload ended. An upload shows nothing to a buyer, so every failure may be retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UploadOutcome {
    Uploaded {
        url: String,
        width: u32,
        height: u32,
    },
    Failed {
        reason: String,
        retryable: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum SendOutcome {
    /// The platform accepted the message.
    Accepted { message_id: Option<String> },
    /// Provably not delivered: refused before or by the platform (not connected, `CSI_FORBID`).
    NotDelivered { reason: String },
    /// The request left but no answer came back; the buyer may have it.
    Unknown { reason: String },
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConsignRequest {
    pub account: String,
    pub order_id: String,
    /// Proof of delivery for the platform's 无需寄件 form (`tradeText`), if the product asks
    /// for one (`delivery.proof`); keys already masked unless the seller opted in.
    pub trade_text: Option<String>,
    /// CDN URLs of delivered images for the same form (`picList`, `delivery.proof_images`).
    pub pic_list: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ConsignOutcome {
    Confirmed,
    /// The platform says the order is already shipped: as good as confirmed.
    AlreadyShipped,
    Failed {
        reason: String,
        retryable: bool,
    },
}

/// What the conversation itself says about a delivery whose send outcome was unknown (the
/// read-back of an uncertain send).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadBack {
    /// The delivery message is in the conversation, sent by the shop: evidence.
    Found {
        message_id: Option<String>,
        sent_at_ms: u64,
    },
    /// The conversation was read and the message is not in it.
    Absent,
    /// The conversation could not be read (not connected, refused, no answer).
    Unreadable { reason: String },
}

#[async_trait::async_trait]
pub trait Marketplace: Send + Sync {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome;
    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome;

    /// Put an image on the platform's CDN (for [`Self::send_image`] and the proof form).
    async fn upload_image(&self, _image: &ImageUpload<'_>) -> UploadOutcome {
        UploadOutcome::Failed {
            reason: "this marketplace cannot upload images".into(),
            retryable: false,
        }
    }

    /// Send an uploaded image in chat; judged like a text send (an unknown outcome is never
    /// resent).
    async fn send_image(&self, _msg: &ImageMessage) -> SendOutcome {
        SendOutcome::NotDelivered {
            reason: "this marketplace cannot send images".into(),
        }
    }

    /// Whether [`Self::read_back`] can read conversations. Without it an uncertain send goes
    /// to the seller at once, as before read-back existed.
    fn reads_back(&self) -> bool {
        false
    }

    /// Look for `msg` in its conversation among the shop's messages sent at or after
    /// `since_ms`. Reading only: never sends anything.
    async fn read_back(&self, _msg: &DeliveryMessage, _since_ms: u64) -> ReadBack {
        ReadBack::Unreadable {
            reason: "this marketplace cannot read conversations".into(),
        }
    }

    /// Rating, pending ratings and polishing, when this marketplace can do them.
    fn aftersale(&self) -> Option<&dyn AftersalePort> {
        None
    }
}
