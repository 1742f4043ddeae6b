//! Failure injection. A [`Fault`] either acts once, at once (expire tokens, drop or kick
//! sockets, turn live connections into zombies), or stands until `clear_faults` (session
//! expired, risk control, slowness, rejected sends, send answers without a code or none at
//! all, refused `/reg`, unanswered `ackDiff`, redirects to the punish page, a history that
//! fails or never answers, stalled uploads) or until its count
//! is used up (HTTP 5xx, lost send responses, failed uploads, rejected images). Standing faults apply to every account or to one (`fault_for`).

use std::collections::HashMap;
use std::time::Duration;

/// Something to go wrong. See each variant for what the client sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Every `_m_h5_tk` issued so far is expired: the next mtop call with one gets
    /// `FAIL_SYS_TOKEN_EXOIRED::令牌过期` plus fresh `Set-Cookie`s; the retry succeeds.
    TokenExpired,
    /// Every login session (`cookie2`) issued so far answers
    /// `FAIL_SYS_SESSION_EXPIRED::Session过期` until cleared. Sessions from
    /// `renew_session` after the fault work.
    SessionExpired,
    /// Every mtop call answers `FAIL_SYS_USER_VALIDATE` + `RGV587_ERROR::SM::…` with a
    /// punish URL in `data.url`, until cleared.
    RiskControl,
    /// The next `count` mtop calls get HTTP 502 with an HTML body.
    Http5xx { count: u32 },
    /// Live sockets are dropped without a close frame (once).
    DropSocket,
    /// Live registered connections keep answering heartbeats and sync requests but get no
    /// pushes (those are lost) and answer sends / conversation creation with code 400,
    /// until cleared. Connections registered later are healthy, as a reconnect cures the
    /// real zombie.
    Zombie,
    /// Sends `/push/kickout` to live registered connections, then closes them.
    Kickout,
    /// Sends `/s/session/remove` to live registered connections, then closes them.
    SessionRemove,
    /// Every mtop answer and every WebSocket response is delayed by this much (pushes are
    /// not), until cleared.
    Slow(Duration),
    /// `sendByReceiverScope` answers `code 200` with `body.reason` = `reason` and
    /// `body.moreInfo` `<reason>||安全拦截`; nothing is delivered. Until cleared.
    RejectSends { reason: String },
    /// The next `count` sends are delivered (and echoed) but never answered: the
    /// "unknown outcome" case.
    LoseSendResponses { count: u32 },
    /// Live sockets are closed cleanly with a close frame (once).
    CloseSocket,
    /// Accepted sends are answered with the right mid and a `messageId` but no `code` field,
    /// until cleared (zn: IM answers "usually have no code").
    AnswerSendsWithoutCode,
    /// Accepted sends are delivered (and echoed) but never answered, until cleared (zn:
    /// normal sends are "not necessarily" answered).
    LeaveSendsUnanswered,
    /// `/reg` is refused with `401 invalid token` whatever the token, until cleared.
    RefuseReg,
    /// `/r/SyncStatus/ackDiff` gets no answer (the connection still receives pushes), until
    /// cleared.
    IgnoreAckDiff,
    /// Every mtop call is answered `302` with a `Location` on the captcha/punish page, until
    /// cleared.
    RedirectToPunish,
    /// Sends vanish: neither delivered nor answered (the request left, nothing arrived),
    /// until cleared.
    DropSends,
    /// `listUserMessages` is answered `code 500` with a reason, until cleared.
    FailHistory,
    /// `listUserMessages` is never answered, until cleared.
    LoseHistoryAnswers,
    /// The seller has no seller centre (鱼小铺): the seller-centre consign
    /// (`mtop.taobao.idle.logistics.merchant.consign.dummy`) answers
    /// `FAIL_BIZ_IDLE_USER_UNAUTHORIZED::无需邮寄发货`, as XP's `OrderServiceImplConsignTest`
    /// has it for a regular seller. Until cleared.
    NoSellerCentre,
    /// The next `count` image uploads are answered HTTP 502 by the gateway.
    FailUploads { count: u32 },
    /// Image uploads are never answered (the client times out), until cleared.
    StallUploads,
    /// The next `count` image sends (`contentType` 2) are rejected like
    /// [`Fault::RejectSends`] (`CSI_FORBID`); texts go through.
    RejectImages { count: u32 },
}

/// Faults that persist until cleared or used up, for one scope.
#[derive(Default, Clone)]
struct Standing {
    /// Sessions with `seq <= cutoff` are expired.
    session_cutoff: Option<u64>,
    risk: bool,
    http5xx: u32,
    slow: Option<Duration>,
    reject: Option<String>,
    lose: u32,
    no_code: bool,
    unanswered: bool,
    refuse_reg: bool,
    ignore_ack_diff: bool,
    redirect: bool,
    fail_history: bool,
    lose_history: bool,
    drop_sends: bool,
    no_seller_centre: bool,
    fail_uploads: u32,
    stall_uploads: bool,
    reject_images: u32,
}

/// Standing faults: one set for everyone, one per account.
#[derive(Default)]
pub(crate) struct Faults {
    global: Standing,
    per_seller: HashMap<String, Standing>,
}

impl Faults {
    /// Records a standing fault; returns false for one-shot faults, which the caller
    /// must act on itself. `session_seq` is the newest session at the time of the fault.
    pub(crate) fn stand(&mut self, scope: Option<&str>, fault: &Fault, session_seq: u64) -> bool {
        let s = match scope {
            None => &mut self.global,
            Some(seller) => self.per_seller.entry(seller.to_owned()).or_default(),
        };
        match fault {
            Fault::SessionExpired => s.session_cutoff = Some(session_seq),
            Fault::RiskControl => s.risk = true,
            Fault::Http5xx { count } => s.http5xx = s.http5xx.saturating_add(*count),
            Fault::Slow(d) => s.slow = Some(*d),
            Fault::RejectSends { reason } => s.reject = Some(reason.clone()),
            Fault::LoseSendResponses { count } => s.lose = s.lose.saturating_add(*count),
            Fault::AnswerSendsWithoutCode => s.no_code = true,
            Fault::LeaveSendsUnanswered => s.unanswered = true,
            Fault::RefuseReg => s.refuse_reg = true,
            Fault::IgnoreAckDiff => s.ignore_ack_diff = true,
            Fault::RedirectToPunish => s.redirect = true,
            Fault::FailHistory => s.fail_history = true,
            Fault::DropSends => s.drop_sends = true,
            Fault::LoseHistoryAnswers => s.lose_history = true,
            Fault::NoSellerCentre => s.no_seller_centre = true,
            Fault::FailUploads { count } => s.fail_uploads = s.fail_uploads.saturating_add(*count),
            Fault::StallUploads => s.stall_uploads = true,
            Fault::RejectImages { count } => {
                s.reject_images = s.reject_images.saturating_add(*count);
            }
            _ => return false,
        }
        true
    }

    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// The scopes that apply to a request: the account's own first, then the global one.
    fn scopes_mut(&mut self, seller: Option<&str>) -> impl Iterator<Item = &mut Standing> {
        let own = seller.and_then(|s| self.per_seller.get_mut(s));
        own.into_iter().chain(std::iter::once(&mut self.global))
    }

    fn any(&self, seller: Option<&str>, f: impl Fn(&Standing) -> bool) -> bool {
        f(&self.global) || seller.and_then(|s| self.per_seller.get(s)).is_some_and(f)
    }

    /// Whether `seller` has no seller centre ([`Fault::NoSellerCentre`]).
    pub(crate) fn no_seller_centre(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.no_seller_centre)
    }

    /// Whether session number `seq` of `seller` is expired by a fault.
    pub(crate) fn session_dead(&self, seller: &str, seq: u64) -> bool {
        self.any(Some(seller), |s| s.session_cutoff.is_some_and(|c| seq <= c))
    }

    pub(crate) fn risk(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.risk)
    }

    /// Uses up one pending HTTP 5xx, if any.
    pub(crate) fn take_http5xx(&mut self, seller: Option<&str>) -> bool {
        take_one(self.scopes_mut(seller), |s| &mut s.http5xx)
    }

    /// Uses up one pending lost send response, if any.
    pub(crate) fn take_lost_response(&mut self, seller: Option<&str>) -> bool {
        take_one(self.scopes_mut(seller), |s| &mut s.lose)
    }

    /// Uses up one pending upload failure, if any.
    pub(crate) fn take_failed_upload(&mut self, seller: Option<&str>) -> bool {
        take_one(self.scopes_mut(seller), |s| &mut s.fail_uploads)
    }

    pub(crate) fn stall_uploads(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.stall_uploads)
    }

    /// Uses up one pending image rejection, if any.
    pub(crate) fn take_rejected_image(&mut self, seller: Option<&str>) -> bool {
        take_one(self.scopes_mut(seller), |s| &mut s.reject_images)
    }

    pub(crate) fn slow(&self, seller: Option<&str>) -> Option<Duration> {
        let own = seller.and_then(|s| self.per_seller.get(s)?.slow);
        own.or(self.global.slow)
    }

    /// Accepted sends are answered without a `code`.
    pub(crate) fn no_code(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.no_code)
    }

    /// Accepted sends are not answered at all.
    pub(crate) fn unanswered(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.unanswered)
    }

    pub(crate) fn refuse_reg(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.refuse_reg)
    }

    pub(crate) fn ignore_ack_diff(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.ignore_ack_diff)
    }

    pub(crate) fn redirect(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.redirect)
    }

    /// Sends are neither delivered nor answered.
    pub(crate) fn drop_sends(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.drop_sends)
    }

    pub(crate) fn fail_history(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.fail_history)
    }

    pub(crate) fn lose_history(&self, seller: Option<&str>) -> bool {
        self.any(seller, |s| s.lose_history)
    }

    pub(crate) fn reject(&self, seller: Option<&str>) -> Option<String> {
        let own = seller.and_then(|s| self.per_seller.get(s)?.reject.clone());
        own.or_else(|| self.global.reject.clone())
    }
}

fn take_one<'a>(
    scopes: impl Iterator<Item = &'a mut Standing>,
    counter: impl Fn(&mut Standing) -> &mut u32,
) -> bool {
    for scope in scopes {
        let n = counter(scope);
        if *n > 0 {
            *n -= 1;
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standing_and_one_shot() {
        let mut f = Faults::default();
        assert!(!f.stand(None, &Fault::DropSocket, 0));
        assert!(f.stand(Some("a"), &Fault::Http5xx { count: 1 }, 0));
        assert!(!f.take_http5xx(Some("b")));
        assert!(f.take_http5xx(Some("a")));
        assert!(!f.take_http5xx(Some("a")));
        assert!(f.stand(None, &Fault::SessionExpired, 3));
        assert!(f.session_dead("x", 3) && !f.session_dead("x", 4));
        assert!(f.stand(Some("a"), &Fault::Slow(Duration::from_millis(5)), 0));
        assert_eq!(f.slow(Some("a")), Some(Duration::from_millis(5)));
        assert_eq!(f.slow(None), None);
        f.clear();
        assert!(!f.session_dead("x", 1));
    }
}
