//! A simulated live shop for `demo`: buyers chat, order and pay against a [`FakeGoofish`];
//! some leave orders unpaid until they close, some ask for a refund after delivery.
//!
//! Half the buyers ask something about the item before ordering (is it there, the price, how
//! to use it, a discount — sometimes naming their own price), and some ask "发货了吗" after
//! paying, so the daemon's chat pipeline has real questions to answer.
//!
//! Like the real platform, the simulated shop never sells a sold-out listing: a listing with
//! counted stock (`stock: N`) offers its N units, an order takes one, and a listing at zero is
//! not bought again; when nothing is left to buy the run ends early. Card listings are never
//! sold out, because the demo keeps their pools topped up ([`DemoKeys`]): a key is imported
//! before the order that needs it, so a long demo never runs short of keys because of the
//! simulator.
//!
//! `speed` makes the buyers act that many times faster (gaps between orders, pauses before
//! paying, follow-up questions), so a test can play an hour of a shop in a minute; the daemon
//! under test keeps real time.
//!
//! [`ShopSim::run`] starts one buyer task per order at a steady rate and returns the order
//! ids once every buyer task has finished its part (or `shutdown` fires). It only plays the
//! marketplace's side: what the daemon does with the orders is read from its store.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::RngExt;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::FakeGoofish;
use crate::store::{DeliveryState, Store, StoreError};

/// One listed item the buyers may order; `skus` empty for items without SKUs.
#[derive(Debug)]
pub struct SimItem {
    pub item_id: String,
    pub skus: Vec<String>,
    /// The offers as the config gave them, to tell a restock from an unchanged listing.
    configured: Vec<(Option<u64>, Option<String>)>,
    /// Units the listing still offers: one entry per SKU (one for an item without SKUs);
    /// `None` is unlimited. An order takes `units`; a listing with fewer is not bought.
    stock: Mutex<Vec<Option<u64>>>,
    /// The card pool each entry of `stock` draws on, topped up as orders take keys.
    pools: Vec<Option<String>>,
    /// Keys or stock units one order takes (the product's `units`).
    units: u64,
    /// The listed price, for buyers who name their own (`80行吗`).
    pub price_cents: u64,
    /// The seller bargains on this item: every fifth buyer tries.
    pub bargains: bool,
}

impl SimItem {
    /// A listing whose `offers` give, per SKU (or once without SKUs), the units it has
    /// (`None`: unlimited) and the card pool it draws on.
    pub fn new(
        item_id: &str,
        skus: Vec<String>,
        offers: Vec<(Option<u64>, Option<String>)>,
        units: u64,
        price_cents: u64,
    ) -> Self {
        let (stock, pools) = offers.iter().cloned().unzip();
        Self {
            item_id: item_id.to_string(),
            skus,
            configured: offers,
            stock: Mutex::new(stock),
            pools,
            units: units.max(1),
            price_cents,
            bargains: false,
        }
    }

    pub fn bargaining(mut self, bargains: bool) -> Self {
        self.bargains = bargains;
        self
    }
}

/// Demo keys for the seller's card pools, imported ahead of the buyers: a pool always holds
/// at least [`KEYS_AHEAD`] keys beyond every key the orders placed so far may take, so the
/// daemon never finds a pool empty because of the simulator (orders that are never paid or
/// are refunded only make the margin larger).
pub struct DemoKeys {
    store: Store,
    /// Per pool: keys imported, keys promised to orders.
    tally: Mutex<BTreeMap<String, (u64, u64)>>,
}

/// Keys imported at once.
pub const KEYS_BATCH: u64 = 50;
/// Keys a pool keeps beyond what placed orders may take.
pub const KEYS_AHEAD: u64 = 20;

impl DemoKeys {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            tally: Mutex::new(BTreeMap::new()),
        }
    }

    /// The first keys of `pool`.
    pub fn fill(&self, pool: &str) -> Result<(), StoreError> {
        self.take(pool, 0)
    }

    /// An order is about to take `units` keys of `pool`: import another batch first when
    /// fewer than [`KEYS_AHEAD`] would be left.
    pub fn take(&self, pool: &str, units: u64) -> Result<(), StoreError> {
        let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        let (issued, taken) = tally.entry(pool.to_string()).or_default();
        *taken += units;
        let tag = pool.to_uppercase();
        while *issued < *taken + KEYS_AHEAD {
            let keys: String = (*issued + 1..=*issued + KEYS_BATCH)
                .map(|n| format!("DEMO-{tag}-{n}\n"))
                .collect();
            self.store.import_cards(pool, &keys, false, "demo")?;
            *issued += KEYS_BATCH;
        }
        Ok(())
    }
}

/// What a simulated buyer does after ordering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Pay,
    /// Never pays; the order is closed unpaid.
    CloseUnpaid,
    /// Pays, and once the goods arrived asks for a refund, which is agreed.
    Refund,
}

/// What buyers ask before ordering.
const QUESTIONS: [&str; 8] = [
    "你好，在吗？",
    "请问还有货吗？",
    "这个多少钱？",
    "这个怎么用？",
    "可以便宜一点吗",
    "是正版吗？",
    "电池怎么样？",
    "支持 Mac 吗？",
];

/// How long a refunding buyer waits for the delivery before giving up on the refund.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

pub struct ShopSim {
    pub fake: FakeGoofish,
    pub seller_id: String,
    /// What the buyers may order now; [`ShopSim::relist`] replaces it after a reload.
    pub items: Mutex<Vec<Arc<SimItem>>>,
    /// The daemon's store, to see when an order was delivered.
    pub store: Store,
    /// Keeps the card pools ahead of the orders.
    pub keys: Arc<DemoKeys>,
    /// How many times faster than real time the buyers act.
    pub speed: f64,
}

impl ShopSim {
    /// The seller's config changed: the buyers order from `fresh` from now on. A listing
    /// whose configured offers are unchanged keeps what it has sold; changed offers (a
    /// restock, another pool) start afresh; a product no longer configured is not bought.
    pub fn relist(&self, fresh: Vec<SimItem>) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let next: Vec<Arc<SimItem>> = fresh
            .into_iter()
            .map(|item| {
                let same = items
                    .iter()
                    .find(|old| old.item_id == item.item_id && old.configured == item.configured);
                if let Some(old) = same {
                    let left = old.stock.lock().unwrap_or_else(|e| e.into_inner()).clone();
                    *item.stock.lock().unwrap_or_else(|e| e.into_inner()) = left;
                }
                Arc::new(item)
            })
            .collect();
        *items = next;
    }

    /// Create orders at `rate_per_min` until `limit` orders (if any) or `shutdown`; returns
    /// the ids of the orders created, after every buyer task has finished.
    pub async fn run(
        &self,
        rate_per_min: f64,
        limit: Option<u64>,
        shutdown: CancellationToken,
    ) -> Vec<String> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let tasks = TaskTracker::new();
        let per_min = (rate_per_min * self.speed).clamp(0.1, 60_000.0);
        let gap = Duration::from_secs_f64(60.0 / per_min);
        let mut created = 0u64;
        while limit.is_none_or(|n| created < n) {
            if created > 0 {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(gap) => {}
                }
            }
            if shutdown.is_cancelled() {
                break;
            }
            let Some((order_id, fate)) = self.place_order(created + 1) else {
                tracing::info!(
                    orders = created,
                    "Every listing is sold out; the simulated shop stops."
                );
                break;
            };
            created += 1;
            let _ = tx.send(order_id.clone());
            tasks.spawn(self.buyer(order_id, fate, shutdown.clone()));
        }
        tasks.close();
        tasks.wait().await;
        drop(tx);
        let mut ids = Vec::new();
        while let Some(id) = rx.recv().await {
            ids.push(id);
        }
        ids
    }

    /// Take one order's units of a random listing that is not sold out (keys of its pool are
    /// topped up first): the item and its SKU index.
    fn take_unit(&self, rng: &mut impl rand::Rng) -> Option<(Arc<SimItem>, usize)> {
        let items = self.items.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut open = Vec::new();
        for item in &items {
            let stock = item.stock.lock().unwrap_or_else(|e| e.into_inner());
            for (i, units) in stock.iter().enumerate() {
                if units.is_none_or(|u| u >= item.units) {
                    open.push((item, i));
                }
            }
        }
        let (item, i) = open.get(rng.random_range(0..open.len().max(1)))?.clone();
        let item = item.clone();
        let mut stock = item.stock.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(Some(units)) = stock.get_mut(i) {
            *units -= item.units;
        }
        if let Some(Some(pool)) = item.pools.get(i)
            && let Err(e) = self.keys.take(pool, item.units)
        {
            tracing::warn!(pool = %pool, error = %e, "Demo keys could not be imported.");
        }
        drop(stock);
        Some((item, i))
    }

    /// A buyer (maybe after a chat) orders a random listing that is not sold out; returns the
    /// order and its fate, or `None` when everything is sold out.
    fn place_order(&self, n: u64) -> Option<(String, Fate)> {
        let mut rng = rand::rng();
        let buyer = format!("31496{:05}", n % 100_000);
        let bargain_item = self
            .items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|i| i.bargains)
            .cloned();
        if let (Some(item), true) = (bargain_item, n % 5 == 1) {
            // A haggler: first "cheaper?", then their own price (what the demo should show).
            for text in [
                "能便宜点吗？",
                &format!("{}行吗？", item.price_cents * 9 / 1000),
            ] {
                self.fake
                    .push_chat_about(&self.seller_id, &buyer, &item.item_id, text);
            }
        }
        let (item, sku_index) = self.take_unit(&mut rng)?;
        if rng.random_bool(0.5) {
            for _ in 0..rng.random_range(1..=2) {
                let text = question(&mut rng, item.price_cents);
                self.fake
                    .push_chat_about(&self.seller_id, &buyer, &item.item_id, &text);
            }
        }
        let sku = item.skus.get(sku_index).map(String::as_str);
        let order_id = self
            .fake
            .create_order(&self.seller_id, &buyer, &item.item_id, 1, sku);
        let roll = rng.random_range(0..100);
        let fate = match roll {
            0..10 => Fate::CloseUnpaid,
            10..20 => Fate::Refund,
            _ => Fate::Pay,
        };
        Some((order_id, fate))
    }

    /// The buyer's part after ordering: pay or let it close; maybe refund after delivery.
    fn buyer(
        &self,
        order_id: String,
        fate: Fate,
        shutdown: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let fake = self.fake.clone();
        let store = self.store.clone();
        let seller = self.seller_id.clone();
        let speed = self.speed;
        let sim = move |ms: u64| Duration::from_millis(ms).div_f64(speed);
        let (buyer, item) = fake.order_parties(&order_id).unwrap_or_default();
        async move {
            let pause = sim(rand::rng().random_range(300..1500));
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
            if fate == Fate::CloseUnpaid {
                fake.close(&order_id);
                return;
            }
            fake.pay(&order_id);
            if fate != Fate::Refund {
                if rand::rng().random_bool(0.3) {
                    tokio::time::sleep(sim(1500)).await;
                    fake.push_chat_about(&seller, &buyer, &item, "发货了吗？");
                }
                return;
            }
            // Only a delivered order is refunded; one handed to the seller stays as it is.
            let deadline = tokio::time::Instant::now() + DELIVERY_WAIT;
            loop {
                match store.delivery(&order_id).ok().flatten().map(|d| d.state) {
                    Some(DeliveryState::Delivered) => break,
                    Some(DeliveryState::Manual | DeliveryState::NeedsHuman) => return,
                    _ => {}
                }
                if tokio::time::Instant::now() >= deadline {
                    return;
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
            fake.refund(&order_id);
            tokio::time::sleep(sim(300)).await;
            fake.refund_complete(&order_id);
        }
    }
}

/// A question before ordering; a bargaining buyer sometimes names a price 10 % under the list.
fn question(rng: &mut impl rand::Rng, price_cents: u64) -> String {
    let text = QUESTIONS[rng.random_range(0..QUESTIONS.len())];
    if text.contains("便宜") && price_cents >= 1000 && rng.random_bool(0.5) {
        return format!("{}行吗？", price_cents * 9 / 1000);
    }
    text.to_string()
}
