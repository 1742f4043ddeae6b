//! [`GoofishMarketplace`]: the [`Marketplace`] the ship stage uses in the daemon, routing each
//! request to the account that sold the order.
//!
//! Sending goes over the account's IM connection ([`ImHandle`]); confirming goes through mtop
//! (`consign.dummy`). Outcomes are mapped so the ledger stays honest: a send that never left
//! (no connection, no buyer id, conversation not created) or that the server rejected is
//! `NotDelivered` and may be retried; a send whose answer never came is `Unknown` and never
//! repeated automatically, but can be read back from the conversation history. Delivery texts
//! carry card keys and are never logged.

use std::collections::HashMap;
use std::sync::Arc;

use super::mtop::{Consigned, MtopClient, MtopError};
use super::ws::ImHandle;
use crate::chat::{ChatPort, LiveItem};
use crate::marketplace::{
    ActionOutcome, AftersalePort, ChatAddress, ConsignOutcome, ConsignRequest, DeliveryMessage,
    ImageMessage, ImageUpload, ListOutcome, Marketplace, ReadBack, SendOutcome, UploadOutcome,
};
use crate::money::Cents;
use crate::store::ReplyImage;

/// Clocks differ: a read-back also looks this far before the send attempt.
const CLOCK_SKEW_MS: u64 = 60_000;

/// What the marketplace needs of one account.
#[derive(Clone)]
pub struct AccountLink {
    pub mtop: Arc<MtopClient>,
    pub im: ImHandle,
}

/// Every configured account's clients, by account id.
#[derive(Clone, Default)]
pub struct GoofishMarketplace {
    accounts: HashMap<String, AccountLink>,
}

impl GoofishMarketplace {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, account: &str, link: AccountLink) {
        self.accounts.insert(account.to_string(), link);
    }

    pub fn link(&self, account: &str) -> Option<&AccountLink> {
        self.accounts.get(account)
    }

    /// The buyer to address: the order's, else the one the order detail names (a reconciled
    /// order may lack it; a wrong `actualReceivers` silently loses the message, §6.1).
    async fn buyer(link: &AccountLink, to: &ChatAddress) -> Result<String, String> {
        if let Some(b) = to.buyer_id.as_deref().filter(|b| !b.is_empty()) {
            return Ok(b.to_string());
        }
        match link.mtop.order_detail(&to.order_id).await {
            Ok(detail) => detail
                .buyer_id
                .ok_or_else(|| "buyer id unknown (not in the order detail either)".to_string()),
            Err(e) => Err(format!("buyer id unknown and order detail failed: {e}")),
        }
    }

    /// The conversation: the order's, else a newly created one with the buyer.
    async fn conversation(
        link: &AccountLink,
        to: &ChatAddress,
        buyer: &str,
    ) -> Result<String, String> {
        if let Some(cid) = to.cid.as_deref().filter(|c| !c.is_empty()) {
            return Ok(cid.to_string());
        }
        link.im
            .create_conversation(buyer, to.item_id.as_deref())
            .await
    }

    /// The account's link, the conversation and the buyer of a message, or why not.
    async fn route(&self, to: &ChatAddress) -> Result<(&AccountLink, String, String), String> {
        let link = self
            .accounts
            .get(&to.account)
            .ok_or_else(|| format!("account `{}` has no Goofish connection", to.account))?;
        let buyer = Self::buyer(link, to).await?;
        let cid = Self::conversation(link, to, &buyer).await?;
        Ok((link, cid, buyer))
    }
}

#[async_trait::async_trait]
impl Marketplace for GoofishMarketplace {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        let (link, cid, buyer) = match self.route(&msg.to).await {
            Ok(r) => r,
            Err(reason) => return SendOutcome::NotDelivered { reason },
        };
        let outcome = link.im.send_text(&cid, &buyer, &msg.text).await;
        tracing::info!(account = %msg.to.account, order_id = %msg.to.order_id, cid = %cid, outcome = ?outcome_label(&outcome), "Delivery message sent.");
        outcome
    }

    async fn upload_image(&self, image: &ImageUpload<'_>) -> UploadOutcome {
        let Some(link) = self.accounts.get(image.account) else {
            return UploadOutcome::Failed {
                reason: format!("account `{}` has no Goofish connection", image.account),
                retryable: false,
            };
        };
        let uploaded = link
            .mtop
            .upload_image(image.file_name, image.mime, image.bytes)
            .await;
        tracing::info!(account = %image.account, file = %image.file_name, bytes = image.bytes.len(), ok = uploaded.is_ok(), "Image uploaded.");
        match uploaded {
            Ok(pic) => {
                // zn falls back to 800x600 without `pix`; the file's own size is better.
                let (width, height) = pic.size.unwrap_or_else(|| {
                    imagesize::blob_size(image.bytes)
                        .map(|s| {
                            (
                                u32::try_from(s.width).unwrap_or(800),
                                u32::try_from(s.height).unwrap_or(600),
                            )
                        })
                        .unwrap_or((800, 600))
                });
                UploadOutcome::Uploaded {
                    url: pic.url,
                    width,
                    height,
                }
            }
            Err(e) => UploadOutcome::Failed {
                reason: format!("image upload failed: {e}"),
                // A refusal of this very file (`success: false`) will not change by itself.
                retryable: !matches!(e, MtopError::Business { .. }),
            },
        }
    }

    async fn send_image(&self, msg: &ImageMessage) -> SendOutcome {
        let (link, cid, buyer) = match self.route(&msg.to).await {
            Ok(r) => r,
            Err(reason) => return SendOutcome::NotDelivered { reason },
        };
        let outcome = link
            .im
            .send_image(&cid, &buyer, (&msg.url, msg.width, msg.height))
            .await;
        tracing::info!(account = %msg.to.account, order_id = %msg.to.order_id, cid = %cid, outcome = ?outcome_label(&outcome), "Delivery image sent.");
        outcome
    }

    fn reads_back(&self) -> bool {
        true
    }

    /// The delivery message is found when a text message of the shop's own account in the
    /// order's conversation, sent at or after `since_ms` (less clock skew), has exactly the
    /// delivery text. Texts are compared in memory only (they carry card keys).
    async fn read_back(&self, msg: &DeliveryMessage, since_ms: u64) -> ReadBack {
        let unreadable = |reason: String| ReadBack::Unreadable { reason };
        let Some(link) = self.accounts.get(&msg.to.account) else {
            return unreadable(format!(
                "account `{}` has no Goofish connection",
                msg.to.account
            ));
        };
        let Some(me) = link.mtop.user_id() else {
            return unreadable("cookies not loaded".into());
        };
        let cid = match Self::buyer(link, &msg.to).await {
            Ok(buyer) => Self::conversation(link, &msg.to, &buyer).await,
            Err(e) => Err(e),
        };
        let cid = match cid {
            Ok(cid) => cid,
            Err(reason) => return unreadable(reason),
        };
        let since = since_ms.saturating_sub(CLOCK_SKEW_MS);
        let history = match link.im.history_since(&cid, since).await {
            Ok(h) => h,
            Err(reason) => return unreadable(reason),
        };
        let wanted = msg.text.trim();
        let found = history.into_iter().find(|m| {
            m.sender.as_deref() == Some(me.as_str())
                && m.text.as_deref().map(str::trim) == Some(wanted)
        });
        tracing::info!(account = %msg.to.account, order_id = %msg.to.order_id, cid = %cid, found = found.is_some(), "Conversation read back.");
        match found {
            Some(m) => ReadBack::Found {
                message_id: m.message_id,
                sent_at_ms: m.created_ms,
            },
            None => ReadBack::Absent,
        }
    }

    fn aftersale(&self) -> Option<&dyn AftersalePort> {
        Some(self)
    }

    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome {
        let Some(link) = self.accounts.get(&req.account) else {
            return ConsignOutcome::Failed {
                reason: format!("account `{}` has no Goofish connection", req.account),
                retryable: false,
            };
        };
        let text = req.trade_text.as_deref().unwrap_or_default();
        let consigned = if text.trim().is_empty() && req.pic_list.is_empty() {
            link.mtop.consign(&req.order_id).await
        } else {
            link.mtop
                .consign_with_proof(&req.order_id, text, &req.pic_list)
                .await
        };
        match consigned {
            Ok(Consigned::Confirmed) => ConsignOutcome::Confirmed,
            Ok(Consigned::AlreadyShipped) => ConsignOutcome::AlreadyShipped,
            Err(e) => ConsignOutcome::Failed {
                reason: e.to_string(),
                // A dead login may be fixed by fresh cookies before the retries run out.
                retryable: e.is_transient() || e.is_blocking(),
            },
        }
    }
}

fn outcome_label(o: &SendOutcome) -> String {
    match o {
        SendOutcome::Accepted { .. } => "accepted".into(),
        SendOutcome::NotDelivered { reason } => format!("not delivered: {reason}"),
        SendOutcome::Unknown { reason } => format!("unknown: {reason}"),
    }
}

impl GoofishMarketplace {
    /// The account's connection for a chat reply to `buyer_id`, or why nothing can be sent.
    fn reply_link(&self, account: &str, buyer_id: &str) -> Result<&AccountLink, SendOutcome> {
        let Some(link) = self.accounts.get(account) else {
            return Err(SendOutcome::NotDelivered {
                reason: format!("account `{account}` has no Goofish connection"),
            });
        };
        if buyer_id.is_empty() {
            // A wrong `actualReceivers` silently loses the message (§6.1).
            return Err(SendOutcome::NotDelivered {
                reason: "buyer id unknown".into(),
            });
        }
        Ok(link)
    }
}

/// The chat pipeline's view: text and image replies over the same IM connection (outcomes
/// mapped the same way), uploads like a delivery's, and the item detail for the model's prompt.
#[async_trait::async_trait]
impl ChatPort for GoofishMarketplace {
    async fn upload_image(&self, image: &ImageUpload<'_>) -> UploadOutcome {
        Marketplace::upload_image(self, image).await
    }

    async fn send_image(
        &self,
        account: &str,
        cid: &str,
        buyer_id: &str,
        image: &ReplyImage,
    ) -> SendOutcome {
        let link = match self.reply_link(account, buyer_id) {
            Ok(link) => link,
            Err(not_sent) => return not_sent,
        };
        let pic = (image.url.as_str(), image.width, image.height);
        let outcome = link.im.send_image(cid, buyer_id, pic).await;
        tracing::debug!(account, cid, outcome = %outcome_label(&outcome), "Chat reply image sent.");
        outcome
    }

    async fn send_text(&self, account: &str, cid: &str, buyer_id: &str, text: &str) -> SendOutcome {
        let link = match self.reply_link(account, buyer_id) {
            Ok(link) => link,
            Err(not_sent) => return not_sent,
        };
        let outcome = link.im.send_text(cid, buyer_id, text).await;
        tracing::debug!(account, cid, outcome = %outcome_label(&outcome), chars = text.chars().count(), "Chat reply sent.");
        outcome
    }

    async fn item_detail(&self, account: &str, item_id: &str) -> Option<LiveItem> {
        let link = self.accounts.get(account)?;
        match link.mtop.item_detail(item_id).await {
            Ok(d) => Some(LiveItem {
                title: d.title.unwrap_or_default(),
                price: d.price_cents.map(Cents),
                description: d.description.unwrap_or_default(),
            }),
            Err(e) => {
                tracing::debug!(account, item_id, error = %e, "Item detail unavailable for chat.");
                None
            }
        }
    }
}

/// The after-sale tasks' view: rating, pending ratings, item list and polishing over mtop.
#[async_trait::async_trait]
impl AftersalePort for GoofishMarketplace {
    async fn rate_buyer(&self, account: &str, order_id: &str, text: &str) -> ActionOutcome {
        match self.accounts.get(account) {
            Some(link) => link.mtop.rate_buyer(order_id, text).await,
            None => ActionOutcome::NoLogin {
                reason: format!("account `{account}` has no Goofish connection"),
            },
        }
    }

    async fn pending_ratings(&self, account: &str) -> ListOutcome {
        match self.accounts.get(account) {
            Some(link) => link.mtop.pending_ratings().await,
            None => ListOutcome::Failed {
                reason: format!("account `{account}` has no Goofish connection"),
            },
        }
    }

    async fn on_shelf_items(&self, account: &str) -> ListOutcome {
        match self.accounts.get(account) {
            Some(link) => link.mtop.on_shelf_items().await,
            None => ListOutcome::Failed {
                reason: format!("account `{account}` has no Goofish connection"),
            },
        }
    }

    async fn polish(&self, account: &str, item_id: &str) -> ActionOutcome {
        match self.accounts.get(account) {
            Some(link) => link.mtop.polish(item_id).await,
            None => ActionOutcome::NoLogin {
                reason: format!("account `{account}` has no Goofish connection"),
            },
        }
    }

    fn cookie_epoch(&self, account: &str) -> Option<String> {
        self.accounts.get(account)?.mtop.cookie_epoch()
    }
}
