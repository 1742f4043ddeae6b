//! The chat tables on a real redb file: each buyer message is answered at most once, a send
//! claimed before a crash is never repeated, our own echoes are told from the seller typing,
//! and takeover state survives a restart.

use std::sync::Arc;

use xianyu_shopd::clock::ManualClock;
use xianyu_shopd::money::Cents;
use xianyu_shopd::store::{
    BeginSend, ChatEffect, ChatSkip, InboundOutcome, InboundState, NewInbound, OwnMessage,
    PlanOutcome, PlannedReply, ReplyImage, ReplyState, SendResult, Store, Takeover, TakeoverRule,
    TurnRole,
};

const T0: u64 = 1_780_000_000_000;

fn open(dir: &std::path::Path, clock: &Arc<ManualClock>) -> Store {
    Store::open(dir, clock.clone()).unwrap()
}

fn msg(id: &str, text: &str) -> NewInbound {
    NewInbound {
        account: "main".into(),
        cid: "c1".into(),
        message_id: id.into(),
        buyer_id: "b1".into(),
        buyer_nick: Some("小王".into()),
        item_id: Some("900".into()),
        text: text.into(),
        at: T0,
    }
}

fn plan(ids: &[&str], messages: &[&str], effects: Vec<ChatEffect>) -> PlannedReply {
    PlannedReply {
        account: "main".into(),
        cid: "c1".into(),
        buyer_id: "b1".into(),
        inbound: ids.iter().map(|s| s.to_string()).collect(),
        messages: messages.iter().map(|s| s.to_string()).collect(),
        stage: "keywords".into(),
        effects,
        images: Vec::new(),
    }
}

fn planned(store: &Store, p: &PlannedReply) -> u64 {
    match store.chat_plan_reply(p).unwrap() {
        PlanOutcome::Planned(id) => id,
        PlanOutcome::Stale => panic!("stale"),
    }
}

/// A store on a fresh directory with a manual clock at [`T0`].
fn fresh() -> (tempfile::TempDir, Arc<ManualClock>) {
    (tempfile::tempdir().unwrap(), Arc::new(ManualClock::new(T0)))
}

/// The buyer's `在吗` recorded and the reply `在的` planned for it: the reply's id.
fn hello_answered(store: &Store) -> u64 {
    store.chat_record_inbound(&msg("1.PNM", "在吗")).unwrap();
    planned(store, &plan(&["1.PNM"], &["在的"], vec![]))
}

/// Who answers conversation `c1` now.
fn takeover(store: &Store) -> Takeover {
    let conversation = store.chat_conversation("main", "c1").unwrap();
    conversation.expect("conversation c1").takeover
}

fn rule() -> TakeoverRule {
    TakeoverRule {
        pause_ms: 30 * 60_000,
        toggle: "。".into(),
    }
}

#[test]
fn a_message_is_recorded_once_and_answered_once() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    assert_eq!(
        store.chat_record_inbound(&msg("1.PNM", "在吗")).unwrap(),
        InboundOutcome::New
    );
    assert_eq!(
        store.chat_record_inbound(&msg("1.PNM", "在吗")).unwrap(),
        InboundOutcome::Duplicate
    );
    assert_eq!(
        store
            .chat_record_inbound(&msg("2.PNM", "还有货吗"))
            .unwrap(),
        InboundOutcome::New
    );
    let pending = store.chat_pending("main", "c1").unwrap();
    assert_eq!(pending.len(), 2);

    let first = plan(
        &["1.PNM", "2.PNM"],
        &["在的", "有货"],
        vec![ChatEffect::Once { key: "r1".into() }],
    );
    let id = planned(&store, &first);
    // a second run over the same messages finds them answered
    assert_eq!(store.chat_plan_reply(&first).unwrap(), PlanOutcome::Stale);
    assert!(store.chat_pending("main", "c1").unwrap().is_empty());

    for (i, expected) in ["在的", "有货"].iter().enumerate() {
        let BeginSend::Go {
            text,
            cid,
            buyer_id,
            ..
        } = store.chat_begin_send(id).unwrap()
        else {
            panic!("message {i} may go")
        };
        assert_eq!(
            (text.as_str(), cid.as_str(), buyer_id.as_str()),
            (*expected, "c1", "b1")
        );
        let accepted = SendResult::Accepted {
            message_id: Some(format!("s{i}")),
        };
        store.chat_finish_send(id, &accepted).unwrap();
    }
    assert_eq!(store.chat_begin_send(id).unwrap(), BeginSend::Closed);
    assert_eq!(
        store.chat_reply(id).unwrap().unwrap().state,
        ReplyState::Sent
    );

    let snap = store
        .chat_snapshot("main", "c1", Some("900"), "b1", 10)
        .unwrap();
    assert!(snap.once.contains("r1"));
    let roles: Vec<TurnRole> = snap.history.iter().map(|t| t.role).collect();
    assert_eq!(
        roles,
        vec![
            TurnRole::Buyer,
            TurnRole::Buyer,
            TurnRole::Bot,
            TurnRole::Bot
        ]
    );
    let convo = snap.conversation.unwrap();
    assert_eq!(convo.last_reply.as_deref(), Some("有货"));
    assert_eq!(convo.last_outcome.as_deref(), Some("keywords"));
}

#[test]
fn a_send_claimed_before_a_crash_is_never_repeated() {
    let (dir, clock) = fresh();
    let id = {
        let store = open(dir.path(), &clock);
        let id = hello_answered(&store);
        assert!(matches!(
            store.chat_begin_send(id).unwrap(),
            BeginSend::Go { .. }
        ));
        id
        // the process dies here: no finish_send
    };
    let store = open(dir.path(), &clock);
    let recovery = store.chat_recover().unwrap();
    assert_eq!(recovery.unknown.len(), 1);
    assert!(recovery.planned.is_empty() && recovery.pending.is_empty());
    assert_eq!(
        store.chat_reply(id).unwrap().unwrap().state,
        ReplyState::Unknown
    );
    assert_eq!(store.chat_begin_send(id).unwrap(), BeginSend::Closed);
    // the same message pushed again after the restart is a duplicate
    assert_eq!(
        store.chat_record_inbound(&msg("1.PNM", "在吗")).unwrap(),
        InboundOutcome::Duplicate
    );
    // the reply the buyer may have seen is in the history the model gets
    let snap = store.chat_snapshot("main", "c1", None, "b1", 10).unwrap();
    assert_eq!(snap.history.last().unwrap().role, TurnRole::Bot);
}

#[test]
fn planned_but_unclaimed_replies_and_waiting_messages_are_resumable() {
    let (dir, clock) = fresh();
    {
        let store = open(dir.path(), &clock);
        hello_answered(&store);
        store.chat_record_inbound(&msg("2.PNM", "多少钱")).unwrap();
    }
    let store = open(dir.path(), &clock);
    let recovery = store.chat_recover().unwrap();
    assert_eq!(recovery.planned.len(), 1);
    assert_eq!(
        recovery.pending,
        vec![("main".to_string(), "c1".to_string())]
    );
    let id = recovery.planned[0].id;
    store.chat_abandon(id, "too old").unwrap();
    assert_eq!(store.chat_begin_send(id).unwrap(), BeginSend::Closed);
}

#[test]
fn our_echo_is_not_the_seller_but_the_seller_typing_pauses_only_that_conversation() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    let id = hello_answered(&store);
    let BeginSend::Go { .. } = store.chat_begin_send(id).unwrap() else {
        panic!()
    };
    // the echo can arrive before the send's answer
    let echo = store
        .chat_observe_own("main", "c1", "e1.PNM", " 在的 ", T0, Some(&rule()))
        .unwrap();
    assert_eq!(echo, OwnMessage::Echo);
    store
        .chat_finish_send(id, &SendResult::Accepted { message_id: None })
        .unwrap();
    // a delivery message sent by the ship stage registers itself the same way
    store
        .register_outgoing("main", "c1", "您的卡密：ABCD")
        .unwrap();
    assert_eq!(
        store
            .chat_observe_own("main", "c1", "e2.PNM", "您的卡密：ABCD", T0, Some(&rule()))
            .unwrap(),
        OwnMessage::Echo
    );
    // the same message id again is a duplicate, not a second echo
    assert_eq!(
        store
            .chat_observe_own("main", "c1", "e2.PNM", "您的卡密：ABCD", T0, Some(&rule()))
            .unwrap(),
        OwnMessage::Duplicate
    );
    assert_eq!(takeover(&store), Takeover::Auto);

    // the seller types "在的" by hand: not registered any more, so it is the seller
    let typed = store
        .chat_observe_own("main", "c1", "h1.PNM", "在的", T0 + 5, Some(&rule()))
        .unwrap();
    assert_eq!(
        typed,
        OwnMessage::Seller(Takeover::PausedUntil {
            until: T0 + 5 + 30 * 60_000
        })
    );
    let other = NewInbound {
        cid: "c2".into(),
        message_id: "9.PNM".into(),
        ..msg("x", "在吗")
    };
    store.chat_record_inbound(&other).unwrap();
    assert_eq!(
        store
            .chat_conversation("main", "c2")
            .unwrap()
            .unwrap()
            .takeover,
        Takeover::Auto
    );

    // the toggle switches to manual and back, and the state survives a restart
    store
        .chat_observe_own("main", "c1", "h2.PNM", "。", T0 + 6, Some(&rule()))
        .unwrap();
    drop(store);
    let store = open(dir.path(), &clock);
    assert_eq!(takeover(&store), Takeover::Manual { since: T0 + 6 });
    store
        .chat_observe_own("main", "c1", "h3.PNM", "。", T0 + 7, Some(&rule()))
        .unwrap();
    assert_eq!(takeover(&store), Takeover::Auto);
    let history = store
        .chat_snapshot("main", "c1", None, "b1", 40)
        .unwrap()
        .history;
    assert_eq!(
        history
            .iter()
            .filter(|t| t.role == TurnRole::Seller)
            .count(),
        3
    );
}

#[test]
fn a_send_that_provably_failed_leaves_no_echo_registration() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    let id = hello_answered(&store);
    store.chat_begin_send(id).unwrap();
    let state = store
        .chat_finish_send(
            id,
            &SendResult::NotDelivered {
                reason: "not connected".into(),
            },
        )
        .unwrap();
    assert_eq!(state, ReplyState::NotDelivered);
    // so the seller typing the same words later counts as the seller
    let own = store
        .chat_observe_own("main", "c1", "h.PNM", "在的", T0, Some(&rule()))
        .unwrap();
    assert!(matches!(own, OwnMessage::Seller(_)));
}

#[test]
fn effects_commit_with_the_reply_and_skips_are_recorded() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    store.chat_record_inbound(&msg("1.PNM", "便宜点")).unwrap();
    let bargain = ChatEffect::Bargain {
        item_id: "900".into(),
        offer: Cents::from_yuan(90),
        rounds: 1,
    };
    planned(
        &store,
        &plan(
            &["1.PNM"],
            &["90 元"],
            vec![bargain, ChatEffect::DefaultUsed],
        ),
    );
    let snap = store
        .chat_snapshot("main", "c1", Some("900"), "b1", 10)
        .unwrap();
    let row = snap.bargain.unwrap();
    assert_eq!((row.rounds, row.last_offer), (1, Cents::from_yuan(90)));
    assert_eq!(snap.conversation.unwrap().default_at, Some(T0));

    store.chat_record_inbound(&msg("2.PNM", "[图片]")).unwrap();
    store
        .chat_skip("main", &["2.PNM".into()], ChatSkip::SystemNotice)
        .unwrap();
    assert!(store.chat_pending("main", "c1").unwrap().is_empty());
    let convo = store.chat_conversation("main", "c1").unwrap().unwrap();
    assert_eq!(convo.last_outcome.as_deref(), Some("system_notice"));
    assert_eq!(
        ChatSkip::from_code("system_notice"),
        Some(ChatSkip::SystemNotice)
    );
}

#[test]
fn history_is_bounded_pruning_keeps_what_is_open_and_backups_carry_chat() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    for i in 0..100 {
        store
            .chat_record_inbound(&msg(&format!("{i}.PNM"), &format!("第{i}条")))
            .unwrap();
    }
    let all = store.chat_snapshot("main", "c1", None, "b1", 1000).unwrap();
    assert_eq!(all.history.len() as u64, xianyu_shopd::store::HISTORY_KEEP);
    assert_eq!(all.history.last().unwrap().text, "第99条");
    let ids: Vec<String> = (0..100).map(|i| format!("{i}.PNM")).collect();
    store
        .chat_skip("main", &ids[..50], ChatSkip::NoAnswer)
        .unwrap();
    clock.advance_ms(10_000);
    // 50 settled rows go; the 50 still pending are marked too old instead
    assert_eq!(store.chat_prune(T0 + 1).unwrap(), 50);
    assert!(store.chat_pending("main", "c1").unwrap().is_empty());

    let backup = dir.path().join("copy.redb");
    store.backup_to(&backup).unwrap();
    let copy_dir = tempfile::tempdir().unwrap();
    std::fs::copy(&backup, copy_dir.path().join("shop.redb")).unwrap();
    let copy = open(copy_dir.path(), &clock);
    assert!(copy.chat_conversation("main", "c1").unwrap().is_some());
    let _ = InboundState::Pending;
}

/// A reply with an image (issue 13 item 2): the image is claimed after the text like another
/// message; found still claimed after a crash it is unknown, never sent again, and its echo
/// (`[图片]`) is ours, not the seller typing.
#[test]
fn a_reply_image_is_claimed_after_its_text_and_never_sent_twice() {
    let (dir, clock) = fresh();
    let store = open(dir.path(), &clock);
    store.chat_record_inbound(&msg("1.PNM", "价格")).unwrap();
    let image = ReplyImage {
        path: "images/price.png".into(),
        url: "https://img.example/price.png".into(),
        width: 320,
        height: 200,
    };
    let mut p = plan(&["1.PNM"], &["价目表发您"], vec![]);
    p.images = vec![image.clone()];
    let id = planned(&store, &p);
    assert!(
        matches!(store.chat_begin_send(id).unwrap(), BeginSend::Go { text, .. } if text == "价目表发您")
    );
    let accepted = SendResult::Accepted { message_id: None };
    assert_eq!(
        store.chat_finish_send(id, &accepted).unwrap(),
        ReplyState::Planned
    );
    match store.chat_begin_send(id).unwrap() {
        BeginSend::GoImage { image: got, .. } => assert_eq!(got, image),
        other => panic!("expected the image: {other:?}"),
    }
    // The image's echo arrives while it is being sent: ours.
    let seen = store
        .chat_observe_own("main", "c1", "2.PNM", "[图片]", T0, Some(&rule()))
        .unwrap();
    assert_eq!(seen, OwnMessage::Echo);
    // The process stops before the answer: after a restart the image is unknown, not resent.
    drop(store);
    let store = open(dir.path(), &clock);
    let recovered = store.chat_recover().unwrap();
    assert_eq!(recovered.unknown.len(), 1);
    assert_eq!(store.chat_begin_send(id).unwrap(), BeginSend::Closed);
    let row = store.chat_reply(id).unwrap().unwrap();
    assert_eq!(
        (row.state, row.sent, row.parts()),
        (ReplyState::Unknown, 1, 2)
    );
    assert_eq!(takeover(&store), Takeover::Auto);
}
