//! The buyer blacklist end to end (issue 13 item 6): the daemon against the fake Goofish over
//! real sockets. A listed buyer's paid order goes to the seller with the reason and nothing is
//! sent to them; their chat messages get no automatic reply. Other buyers are served as usual.

mod chat_env;

use chat_env::*;
use xianyu_shopd::order::OrderStatus;
use xianyu_shopd::store::DeliveryState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blacklisted_buyer_is_neither_delivered_to_nor_answered() {
    let env = ChatEnv::start_with(
        |url| format!("{}blacklist:\n  buyers: [\"{BUYER2}\"]\n", chat_yaml(url)),
        "{ min: 0s, max: 0s }",
    )
    .await;
    // Chat: the listed buyer gets nothing, the other one is answered.
    env.fake.push_chat(SELLER, BUYER2, "在吗");
    env.fake.push_chat(SELLER, BUYER, "在吗");
    assert_eq!(env.wait_replies(BUYER, 1).await, vec!["在的，亲"]);
    assert!(
        env.settle(BUYER2).await.is_empty(),
        "no reply to the blacklisted buyer"
    );

    // Orders: the listed buyer's paid order is the seller's, with the reason.
    let listed = env.buy(BUYER2).await;
    let other = env.buy(BUYER).await;
    let handed = wait_for(|| {
        env.store()
            .delivery(&listed)
            .unwrap()
            .is_some_and(|d| d.state == DeliveryState::Manual)
    })
    .await;
    assert!(handed, "{:?}", env.store().delivery(&listed).unwrap());
    let d = env.store().delivery(&listed).unwrap().unwrap();
    assert!(
        d.history.iter().any(|h| h.seller_text().contains("黑名单")),
        "{:?}",
        d.history
    );
    let delivered = wait_for(|| {
        env.store()
            .delivery(&other)
            .unwrap()
            .is_some_and(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    assert!(delivered, "the other buyer is served");
    let to_listed: Vec<_> = env
        .fake
        .sent_messages()
        .into_iter()
        .filter(|m| m.receivers.iter().any(|r| r == BUYER2))
        .collect();
    assert!(
        to_listed.is_empty(),
        "nothing reached the blacklisted buyer: {to_listed:?}"
    );
    assert!(
        env.fake.consigns().iter().all(|c| c.order_id != listed),
        "not confirmed either"
    );
    assert_eq!(
        env.store().order(&listed).unwrap().unwrap().status,
        OrderStatus::PendingShip
    );
    env.stop().await;
}
