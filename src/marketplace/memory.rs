//! An in-memory marketplace that records what it was asked to do.
//!
//! Used by `replay` (which prints each action), dry runs, tests (which script failures) and the
//! throughput benchmark. It never talks to the network.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use crate::event::shown;

use super::aftersale::{ActionOutcome, AftersalePort, ListOutcome};
use super::{
    ChatAddress, ConsignOutcome, ConsignRequest, DeliveryMessage, ImageMessage, ImageUpload,
    Marketplace, ReadBack, SendOutcome, UploadOutcome,
};

#[derive(Debug, Default)]
pub struct MemoryMarketplace {
    state: Mutex<State>,
    print: bool,
    /// Keeps conversations, so uncertain sends can be read back.
    conversations: bool,
    /// Offers no after-sale port ([`Self::without_aftersale`]).
    no_aftersale: bool,
}

#[derive(Debug, Default)]
struct State {
    sent: Vec<DeliveryMessage>,
    /// Image messages accepted, in order.
    images: Vec<ImageMessage>,
    /// File names uploaded, in order.
    uploads: Vec<String>,
    consigned: Vec<ConsignRequest>,
    /// The orders in `consigned`: a confirm asks whether its order was confirmed before, and
    /// scanning the list made the throughput benchmark's 10,000 confirms quadratic.
    consigned_orders: HashSet<String>,
    send_script: VecDeque<SendOutcome>,
    send_calls: u64,
    consign_script: VecDeque<ConsignOutcome>,
    next_message_id: u64,
    /// Messages whose send was scripted `Unknown`: they left, the answer was lost.
    uncertain: Vec<DeliveryMessage>,
    read_back_script: VecDeque<ReadBack>,
    read_back_calls: u64,
    /// Orders rated (with the text's length), in order; a second rating is "already rated".
    rated: Vec<(String, usize)>,
    rate_script: VecDeque<ActionOutcome>,
    pending_ratings: Vec<String>,
    on_shelf: Vec<String>,
    /// `(item, day)` polished.
    polished: Vec<String>,
}

/// `order=… account=…` of a printed line.
fn addressed(to: &ChatAddress) -> String {
    format!(
        "order={} account={}",
        shown(&to.order_id),
        shown(&to.account)
    )
}

impl State {
    /// Counts a send and takes its scripted outcome, if one is queued.
    fn scripted_send(&mut self) -> Option<SendOutcome> {
        self.send_calls += 1;
        self.send_script.pop_front()
    }

    /// An unscripted send: accepted under a fresh message id.
    fn accepted(&mut self) -> SendOutcome {
        self.next_message_id += 1;
        SendOutcome::Accepted {
            message_id: Some(format!("mem-{}", self.next_message_id)),
        }
    }
}

impl MemoryMarketplace {
    pub fn new() -> Self {
        Self::default()
    }

    /// Print every send and confirm to stdout (replay, dry run).
    pub fn printing() -> Self {
        Self {
            print: true,
            ..Self::default()
        }
    }

    /// A marketplace that keeps its conversations: an uncertain send can be read back. A send
    /// scripted `Unknown` counts as having reached the conversation, unless a read-back is
    /// scripted otherwise.
    pub fn with_conversations() -> Self {
        Self {
            conversations: true,
            ..Self::default()
        }
    }

    /// No ratings, thank-yous or polishing at all (`replay` writing a real store: a rating
    /// recorded there as done would never be made on the platform).
    pub fn without_aftersale(mut self) -> Self {
        self.no_aftersale = true;
        self
    }

    /// The next read-backs answer with these, in order; after that they look at what was sent.
    pub fn script_read_backs(&self, answers: impl IntoIterator<Item = ReadBack>) {
        self.lock().read_back_script.extend(answers);
    }

    pub fn read_back_calls(&self) -> u64 {
        self.lock().read_back_calls
    }

    /// The next sends answer with these outcomes, in order; after that, sends are accepted.
    pub fn script_sends(&self, outcomes: impl IntoIterator<Item = SendOutcome>) {
        self.lock().send_script.extend(outcomes);
    }

    pub fn script_consigns(&self, outcomes: impl IntoIterator<Item = ConsignOutcome>) {
        self.lock().consign_script.extend(outcomes);
    }

    /// Messages accepted, in order (scripted failures are not included).
    pub fn sent(&self) -> Vec<DeliveryMessage> {
        self.lock().sent.clone()
    }

    /// Every send attempt, scripted failures included.
    pub fn send_calls(&self) -> u64 {
        self.lock().send_calls
    }

    /// Image messages accepted, in order.
    pub fn images_sent(&self) -> Vec<ImageMessage> {
        self.lock().images.clone()
    }

    /// File names uploaded, in order.
    pub fn uploads(&self) -> Vec<String> {
        self.lock().uploads.clone()
    }

    pub fn consigned(&self) -> Vec<ConsignRequest> {
        self.lock().consigned.clone()
    }

    /// The next ratings answer with these outcomes, in order; after that they succeed.
    pub fn script_ratings(&self, outcomes: impl IntoIterator<Item = ActionOutcome>) {
        self.lock().rate_script.extend(outcomes);
    }

    /// Orders the pending-ratings list shows (a successful rating removes its order).
    pub fn set_pending_ratings(&self, orders: &[&str]) {
        self.lock().pending_ratings = orders.iter().map(|o| o.to_string()).collect();
    }

    pub fn set_on_shelf(&self, items: &[&str]) {
        self.lock().on_shelf = items.iter().map(|o| o.to_string()).collect();
    }

    /// Orders rated, with the length of each rating text.
    pub fn rated(&self) -> Vec<(String, usize)> {
        self.lock().rated.clone()
    }

    pub fn polished(&self) -> Vec<String> {
        self.lock().polished.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl Marketplace for MemoryMarketplace {
    async fn send_delivery(&self, msg: &DeliveryMessage) -> SendOutcome {
        let mut st = self.lock();
        if let Some(outcome) = st.scripted_send() {
            if matches!(outcome, SendOutcome::Unknown { .. }) {
                st.uncertain.push(msg.clone());
            }
            return outcome;
        }
        st.sent.push(msg.clone());
        if self.print {
            println!(
                "send    {} cid={} text={:?}",
                addressed(&msg.to),
                shown(msg.to.cid.as_deref().unwrap_or("-")),
                msg.masked_text
            );
        }
        st.accepted()
    }

    async fn upload_image(&self, image: &ImageUpload<'_>) -> UploadOutcome {
        let mut st = self.lock();
        st.uploads.push(image.file_name.to_string());
        let n = st.uploads.len();
        if self.print {
            println!(
                "upload  account={} file={} bytes={}",
                shown(image.account),
                shown(image.file_name),
                image.bytes.len()
            );
        }
        let size = imagesize::blob_size(image.bytes).ok();
        UploadOutcome::Uploaded {
            url: format!("memory://images/{n}"),
            width: size.map_or(800, |s| u32::try_from(s.width).unwrap_or(800)),
            height: size.map_or(600, |s| u32::try_from(s.height).unwrap_or(600)),
        }
    }

    async fn send_image(&self, msg: &ImageMessage) -> SendOutcome {
        let mut st = self.lock();
        if let Some(outcome) = st.scripted_send() {
            return outcome;
        }
        st.images.push(msg.clone());
        if self.print {
            println!("image   {} url={}", addressed(&msg.to), shown(&msg.url));
        }
        st.accepted()
    }

    fn reads_back(&self) -> bool {
        self.conversations
    }

    async fn read_back(&self, msg: &DeliveryMessage, _since_ms: u64) -> ReadBack {
        let mut st = self.lock();
        st.read_back_calls += 1;
        if !self.conversations {
            return ReadBack::Unreadable {
                reason: "no conversations kept".into(),
            };
        }
        if let Some(answer) = st.read_back_script.pop_front() {
            return answer;
        }
        let same = |m: &DeliveryMessage| m.to.order_id == msg.to.order_id && m.text == msg.text;
        if st.sent.iter().chain(&st.uncertain).any(same) {
            ReadBack::Found {
                message_id: None,
                sent_at_ms: 0,
            }
        } else {
            ReadBack::Absent
        }
    }

    fn aftersale(&self) -> Option<&dyn AftersalePort> {
        (!self.no_aftersale).then_some(self as &dyn AftersalePort)
    }

    async fn confirm_shipment(&self, req: &ConsignRequest) -> ConsignOutcome {
        let mut st = self.lock();
        if let Some(outcome) = st.consign_script.pop_front() {
            return outcome;
        }
        let already = !st.consigned_orders.insert(req.order_id.clone());
        st.consigned.push(req.clone());
        if self.print {
            // The proof may carry keys in full (`proof_cards: plain`): only its length is shown.
            let proof = req
                .trade_text
                .as_ref()
                .map(|t| format!(" proof={}字", t.chars().count()))
                .unwrap_or_default();
            println!(
                "confirm order={} account={}{proof}",
                shown(&req.order_id),
                shown(&req.account)
            );
        }
        if already {
            ConsignOutcome::AlreadyShipped
        } else {
            ConsignOutcome::Confirmed
        }
    }
}

/// In memory, a rating or a polish always reaches the "platform"; `replay` prints each one.
#[async_trait::async_trait]
impl AftersalePort for MemoryMarketplace {
    async fn rate_buyer(&self, account: &str, order_id: &str, text: &str) -> ActionOutcome {
        let mut st = self.lock();
        if let Some(outcome) = st.rate_script.pop_front() {
            return outcome;
        }
        if self.print {
            println!(
                "rate    order={} account={} text={:?}",
                shown(order_id),
                shown(account),
                text
            );
        }
        if st.rated.iter().any(|(o, _)| o == order_id) {
            return ActionOutcome::AlreadyDone {
                code: "FAIL_BIZ_RATE_DUPLICATE::已评价".into(),
            };
        }
        st.rated.push((order_id.to_string(), text.chars().count()));
        st.pending_ratings.retain(|o| o != order_id);
        ActionOutcome::Done {
            code: "SUCCESS::调用成功".into(),
        }
    }

    async fn pending_ratings(&self, _account: &str) -> ListOutcome {
        ListOutcome::Listed(self.lock().pending_ratings.clone())
    }

    async fn on_shelf_items(&self, _account: &str) -> ListOutcome {
        ListOutcome::Listed(self.lock().on_shelf.clone())
    }

    async fn polish(&self, account: &str, item_id: &str) -> ActionOutcome {
        let mut st = self.lock();
        if self.print {
            println!("polish  item={} account={}", shown(item_id), shown(account));
        }
        if st.polished.iter().any(|i| i == item_id) {
            return ActionOutcome::AlreadyDone {
                code: "FAIL_BIZ_IDLEITEM_POLISH_AGAIN::宝贝已经擦亮过了".into(),
            };
        }
        st.polished.push(item_id.to_string());
        ActionOutcome::Done {
            code: "SUCCESS::调用成功".into(),
        }
    }

    fn cookie_epoch(&self, _account: &str) -> Option<String> {
        Some("memory".into())
    }
}
