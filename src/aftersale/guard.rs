//! The per-account rate guard and circuit breaker in front of every after-sale call.

use super::TaskCtx;
use crate::alert::Alert;
use crate::marketplace::AftersalePort;
use crate::notify::Router;
use crate::store::StoreError;

/// May a call of this account go now?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Yes; the slot is taken (recorded).
    Go,
    /// Not before this time (the gap since the last call, plus jitter).
    Wait(u64),
    /// The breaker is open: look again at this time.
    Paused(u64),
}

/// Check the breaker (closing it if the cookies changed since it tripped), then take a call
/// slot within the account's rate limit.
pub async fn admit(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    account: &str,
) -> Result<Admit, StoreError> {
    let acc = account.to_string();
    let guard = ctx.store_op(move |s| s.aftersale_guard(&acc)).await?;
    if let Some(trip) = guard.tripped {
        match port.cookie_epoch(account) {
            Some(epoch) if epoch != trip.cookie_epoch => {
                tracing::info!(account, "Fresh cookies: after-sale tasks resume.");
                let acc = account.to_string();
                ctx.store_op(move |s| s.reset_breaker(&acc)).await?;
            }
            _ => return Ok(Admit::Paused(ctx.pause_recheck())),
        }
    }
    let gap = crate::clock::millis(ctx.config.aftersale.min_gap);
    let acc = account.to_string();
    match ctx.store_op(move |s| s.take_call_slot(&acc, gap)).await? {
        None => Ok(Admit::Go),
        Some(at) => Ok(Admit::Wait(at + ctx.jitter())),
    }
}

/// A risk-control answer: open the account's breaker; the seller hears it once.
pub async fn trip(
    ctx: &TaskCtx<'_>,
    port: &dyn AftersalePort,
    account: &str,
    code: &str,
) -> Result<(), StoreError> {
    let name = ctx
        .config
        .account(account)
        .map(|a| a.name.clone())
        .unwrap_or_default();
    let alert = Alert::risk_control(
        account,
        &name,
        &format!(
            "售后任务（评价、擦亮、感谢消息）遇到平台风控（{}），该账号的售后任务已全部暂停",
            short_code(code)
        ),
    )
    .problem(format!("aftersale_risk:{account}"));
    let drafts = Router::new(ctx.config.notify()).drafts(&alert);
    let epoch = port.cookie_epoch(account).unwrap_or_default();
    let (acc, code) = (account.to_string(), code.to_string());
    let tripped = ctx
        .store_op(move |s| s.trip_breaker(&acc, &code, &epoch, &drafts))
        .await?;
    if tripped {
        tracing::warn!(
            account,
            "Risk control on an after-sale call: this account's after-sale tasks are paused until its cookies change."
        );
    }
    Ok(())
}

/// The code part of a `ret` (`FAIL_SYS_USER_VALIDATE` of `FAIL_SYS_USER_VALIDATE::…`).
pub fn short_code(ret: &str) -> &str {
    ret.split("::").next().unwrap_or(ret)
}
