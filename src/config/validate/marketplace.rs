//! `marketplace:` — endpoints and timings of the Goofish client, with the rules that tie them
//! together (silence limits, client hints that need a user agent).

use super::*;

impl Validator<'_> {
    pub(super) fn marketplace(
        &mut self,
        doc: &YamlDoc,
        raw: &raw::Marketplace,
    ) -> MarketplaceConfig {
        let d = MarketplaceConfig::default();
        let dur = |v: &mut Self, key: &str, text: &Option<String>, default: Duration| {
            v.positive_duration(doc, &format!("marketplace.{key}"), text.as_deref(), default)
        };
        let m = MarketplaceConfig {
            mtop_url: self.endpoint(
                doc,
                "mtop_url",
                raw.mtop_url.as_deref(),
                &d.mtop_url,
                ["https", "http"],
            ),
            ws_url: self.endpoint(
                doc,
                "ws_url",
                raw.ws_url.as_deref(),
                &d.ws_url,
                ["wss", "ws"],
            ),
            upload_url: self.endpoint(
                doc,
                "upload_url",
                raw.upload_url.as_deref(),
                &d.upload_url,
                ["https", "http"],
            ),
            user_agent: non_blank(&raw.user_agent),
            sec_ch_ua: non_blank(&raw.sec_ch_ua),
            heartbeat: dur(self, "heartbeat", &raw.heartbeat, d.heartbeat),
            watchdog: dur(self, "watchdog", &raw.watchdog, d.watchdog),
            idle_reconnect: dur(
                self,
                "idle_reconnect",
                &raw.idle_reconnect,
                d.idle_reconnect,
            ),
            reconcile_interval: dur(
                self,
                "reconcile_interval",
                &raw.reconcile_interval,
                d.reconcile_interval,
            ),
            cookies_poll: dur(self, "cookies_poll", &raw.cookies_poll, d.cookies_poll),
            send_timeout: dur(self, "send_timeout", &raw.send_timeout, d.send_timeout),
            reconnect_max: dur(self, "reconnect_max", &raw.reconnect_max, d.reconnect_max),
            risk_backoff: dur(self, "risk_backoff", &raw.risk_backoff, d.risk_backoff),
            token_refresh: dur(self, "token_refresh", &raw.token_refresh, d.token_refresh),
            keepalive: dur(self, "keepalive", &raw.keepalive, d.keepalive),
        };
        self.marketplace_rules(doc, &m);
        m
    }

    /// The rules that tie the marketplace settings together.
    fn marketplace_rules(&mut self, doc: &YamlDoc, m: &MarketplaceConfig) {
        if m.watchdog <= m.heartbeat {
            self.err(
                doc,
                "marketplace.watchdog",
                "marketplace.watchdog: must be longer than marketplace.heartbeat, or every quiet moment would count as a dead connection",
            );
        }
        if m.idle_reconnect < m.watchdog {
            self.err(
                doc,
                "marketplace.idle_reconnect",
                "marketplace.idle_reconnect: must not be shorter than marketplace.watchdog (it is the long, no-token-change limit)",
            );
        }
        if m.sec_ch_ua.is_some() && m.user_agent.is_none() {
            self.err(
                doc,
                "marketplace.sec_ch_ua",
                "marketplace.sec_ch_ua: set marketplace.user_agent too; client hints must describe the same browser as the user agent",
            );
        }
    }

    /// A marketplace URL. Cookies travel with every request, so the plain-text scheme
    /// (`secure[1]`) is accepted only for a loopback host (a local fake).
    fn endpoint(
        &mut self,
        doc: &YamlDoc,
        key: &str,
        text: Option<&str>,
        default: &str,
        secure: [&str; 2],
    ) -> String {
        let path = format!("marketplace.{key}");
        let Some(text) = text.map(str::trim) else {
            return default.to_string();
        };
        let url = match reqwest::Url::parse(text) {
            Ok(u) if secure.contains(&u.scheme()) && u.host().is_some() => u,
            _ => {
                self.err(
                    doc,
                    &path,
                    format!("{path}: `{text}` is not a {}:// URL", secure[0]),
                );
                return default.to_string();
            }
        };
        let loopback = url.host_str().is_some_and(|h| {
            h == "localhost"
                || h.trim_matches(['[', ']'])
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        if url.scheme() == secure[1] && !loopback {
            self.err(
                doc,
                &path,
                format!("{path}: {}:// would send the account's cookies unencrypted; use {}:// (plain text is only allowed for a loopback test server)", secure[1], secure[0]),
            );
        }
        text.to_string()
    }
}

/// A header value as written, trimmed; `None` when absent or blank.
fn non_blank(value: &Option<String>) -> Option<String> {
    value
        .as_ref()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
