//! Channel settings: one function per channel type, all secrets by `_env` or `_file`.

use super::*;

impl Validator<'_> {
    pub(super) fn channels(
        &mut self,
        doc: &YamlDoc,
        raw: &BTreeMap<String, raw::Channel>,
    ) -> BTreeMap<String, ChannelConfig> {
        let mut out = BTreeMap::new();
        out.insert("log".to_string(), ChannelConfig::log());
        for (name, ch) in raw {
            let path = format!("channels.{name}");
            if let Some(c) = self.channel(doc, &path, ch) {
                out.insert(name.clone(), c);
            }
        }
        out
    }

    pub(super) fn channel(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        ch: &raw::Channel,
    ) -> Option<ChannelConfig> {
        use raw::Channel as R;
        let (timeout, max_per_minute) = match ch {
            R::Log {} => return Some(ChannelConfig::log()),
            R::Webhook(c) => (&c.timeout, c.max_per_minute),
            R::Wecom(c) => (&c.timeout, c.max_per_minute),
            R::Dingtalk(c) => (&c.timeout, c.max_per_minute),
            R::Feishu(c) => (&c.timeout, c.max_per_minute),
            R::Bark(c) => (&c.timeout, c.max_per_minute),
            R::Telegram(c) => (&c.timeout, c.max_per_minute),
            R::Serverchan(c) => (&c.timeout, c.max_per_minute),
            R::Pushplus(c) => (&c.timeout, c.max_per_minute),
            R::Email(c) => (&c.timeout, c.max_per_minute),
            R::AliyunSms(c) => (&c.timeout, c.max_per_minute),
            R::TencentSms(c) => (&c.timeout, c.max_per_minute),
        };
        let spec = self.channel_spec(doc, path, ch);
        let default_timeout = match ch {
            R::Email(_) => Duration::from_secs(30),
            _ => Duration::from_secs(10),
        };
        let timeout = self.duration(
            doc,
            &format!("{path}.timeout"),
            timeout.as_deref(),
            default_timeout,
        );
        if max_per_minute == Some(0) {
            self.err(
                doc,
                &format!("{path}.max_per_minute"),
                format!(
                    "{path}.max_per_minute: must be at least 1 (leave it out for no local limit)"
                ),
            );
        }
        let spec = spec?;
        let max_per_minute = max_per_minute.or_else(|| default_rate(&spec));
        Some(ChannelConfig {
            spec,
            timeout,
            max_per_minute,
        })
    }

    pub(super) fn channel_spec(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        ch: &raw::Channel,
    ) -> Option<ChannelSpec> {
        use raw::Channel as R;
        match ch {
            R::Log {} => Some(ChannelSpec::Log),
            R::Webhook(c) => {
                let secret = self.opt_secret(
                    doc,
                    path,
                    "secret",
                    c.secret_env.as_ref(),
                    c.secret_file.as_ref(),
                );
                let url = self.secret(doc, path, "url", c.url_env.as_ref(), c.url_file.as_ref())?;
                Some(ChannelSpec::Webhook { url, secret })
            }
            R::Wecom(c) => Some(ChannelSpec::Wecom(WecomSpec {
                url: self.secret(doc, path, "url", c.url_env.as_ref(), c.url_file.as_ref())?,
                mention_users: c.mention_users.clone(),
                mention_mobiles: c.mention_mobiles.clone(),
            })),
            R::Dingtalk(c) => {
                let secret = self.opt_secret(
                    doc,
                    path,
                    "secret",
                    c.secret_env.as_ref(),
                    c.secret_file.as_ref(),
                );
                Some(ChannelSpec::Dingtalk(DingtalkSpec {
                    url: self.secret(doc, path, "url", c.url_env.as_ref(), c.url_file.as_ref())?,
                    secret,
                    at_mobiles: c.at_mobiles.clone(),
                    at_user_ids: c.at_user_ids.clone(),
                    at_all: c.at_all,
                    keyword: c.keyword.clone(),
                }))
            }
            R::Feishu(c) => {
                let secret = self.opt_secret(
                    doc,
                    path,
                    "secret",
                    c.secret_env.as_ref(),
                    c.secret_file.as_ref(),
                );
                Some(ChannelSpec::Feishu(FeishuSpec {
                    url: self.secret(doc, path, "url", c.url_env.as_ref(), c.url_file.as_ref())?,
                    secret,
                    at_all: c.at_all,
                    at_user_ids: c.at_user_ids.clone(),
                    keyword: c.keyword.clone(),
                }))
            }
            R::Bark(c) => {
                let server = self.notify_url(
                    doc,
                    &format!("{path}.server"),
                    c.server.as_deref(),
                    "https://api.day.app",
                );
                Some(ChannelSpec::Bark(BarkSpec {
                    server,
                    device_key: self.secret(
                        doc,
                        path,
                        "device_key",
                        c.device_key_env.as_ref(),
                        c.device_key_file.as_ref(),
                    )?,
                    group: c.group.clone().unwrap_or_else(|| "xianyu".to_string()),
                    sound: c.sound.clone(),
                }))
            }
            R::Telegram(c) => {
                let api_base = self.notify_url(
                    doc,
                    &format!("{path}.api_base"),
                    c.api_base.as_deref(),
                    "https://api.telegram.org",
                );
                let chat_id = self.required(
                    doc,
                    path,
                    "chat_id",
                    c.chat_id.as_ref().map(raw::Scalar::text),
                );
                let token = self.secret(
                    doc,
                    path,
                    "token",
                    c.token_env.as_ref(),
                    c.token_file.as_ref(),
                )?;
                Some(ChannelSpec::Telegram(TelegramSpec {
                    api_base,
                    token,
                    chat_id: chat_id?,
                }))
            }
            R::Serverchan(c) => {
                let api_base = c
                    .api_base
                    .as_deref()
                    .map(|u| self.notify_url(doc, &format!("{path}.api_base"), Some(u), ""));
                Some(ChannelSpec::Serverchan(ServerchanSpec {
                    sendkey: self.secret(
                        doc,
                        path,
                        "sendkey",
                        c.sendkey_env.as_ref(),
                        c.sendkey_file.as_ref(),
                    )?,
                    api_base,
                }))
            }
            R::Pushplus(c) => {
                let url = self.notify_url(
                    doc,
                    &format!("{path}.url"),
                    c.url.as_deref(),
                    "https://www.pushplus.plus/send",
                );
                Some(ChannelSpec::Pushplus(PushplusSpec {
                    url,
                    token: self.secret(
                        doc,
                        path,
                        "token",
                        c.token_env.as_ref(),
                        c.token_file.as_ref(),
                    )?,
                    channel: c.channel.clone(),
                    topic: c.topic.clone(),
                }))
            }
            R::Email(c) => self.email(doc, path, c).map(ChannelSpec::Email),
            R::AliyunSms(c) => self.aliyun_sms(doc, path, c).map(ChannelSpec::AliyunSms),
            R::TencentSms(c) => self.tencent_sms(doc, path, c).map(ChannelSpec::TencentSms),
        }
    }

    /// Like [`Self::secret`], but giving neither `_env` nor `_file` is fine.
    pub(super) fn opt_secret(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        what: &str,
        env: Option<&String>,
        file: Option<&String>,
    ) -> Option<SecretRef> {
        if env.is_none() && file.is_none() {
            return None;
        }
        self.secret(doc, path, what, env, file)
    }

    pub(super) fn required(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        field: &str,
        value: Option<String>,
    ) -> Option<String> {
        match value {
            Some(v) if !v.trim().is_empty() => Some(v.trim().to_string()),
            _ => {
                self.err(doc, path, format!("{path}: missing `{field}`"));
                None
            }
        }
    }

    /// An endpoint of a notification service: https, or http to a loopback test server.
    pub(super) fn notify_url(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        given: Option<&str>,
        default: &str,
    ) -> String {
        let Some(url) = given else {
            return default.to_string();
        };
        if let Err(e) = crate::notify::http::check_url(url) {
            self.err(doc, path, format!("{path}: {e}"));
        }
        url.trim_end_matches('/').to_string()
    }

    pub(super) fn email(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        c: &raw::EmailChannel,
    ) -> Option<EmailSpec> {
        let host = self.required(doc, path, "host", c.host.clone());
        let from = self.required(doc, path, "from", c.from.clone());
        if c.to.is_empty() {
            self.err(
                doc,
                path,
                format!("{path}: missing `to` (a list of addresses)"),
            );
        }
        for addr in c.to.iter().chain(from.iter()) {
            if addr.parse::<lettre::message::Mailbox>().is_err() {
                self.err(doc, path, format!("{path}: `{addr}` is not an e-mail address (write `name@example.com` or `名字 <name@example.com>`)"));
            }
        }
        let tls = match (c.tls.as_deref(), c.port) {
            (Some("implicit"), _) | (None, Some(465) | None) => EmailTls::Implicit,
            (Some("starttls"), _) | (None, Some(587)) => EmailTls::Starttls,
            (Some("none"), _) => EmailTls::None,
            (None, Some(p)) => {
                self.err(
                    doc,
                    &format!("{path}.port"),
                    format!("{path}: port {p} needs `tls: implicit`, `starttls` or `none`"),
                );
                EmailTls::Implicit
            }
            (Some(other), _) => {
                self.err(doc, &format!("{path}.tls"), format!("{path}.tls: `{other}` is not one of implicit (465), starttls (587), none (loopback only)"));
                EmailTls::Implicit
            }
        };
        let host = host?;
        if tls == EmailTls::None && !crate::notify::http::is_loopback(&host) {
            self.err(doc, &format!("{path}.tls"), format!("{path}.tls: `none` would send mail and password unencrypted; it is only allowed for a loopback server"));
        }
        let port = c.port.unwrap_or(match tls {
            EmailTls::Implicit => 465,
            EmailTls::Starttls => 587,
            EmailTls::None => 25,
        });
        let password = self.opt_secret(
            doc,
            path,
            "password",
            c.password_env.as_ref(),
            c.password_file.as_ref(),
        );
        let from = from?;
        let username = c
            .username
            .clone()
            .or_else(|| password.as_ref().map(|_| from.clone()));
        Some(EmailSpec {
            host,
            port,
            tls,
            username,
            password,
            from,
            to: c.to.clone(),
        })
    }

    pub(super) fn sms_params(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        given: &Option<Vec<String>>,
    ) -> Vec<String> {
        const KNOWN: [&str; 11] = [
            "event",
            "order_id",
            "item",
            "sku",
            "quantity",
            "amount",
            "buyer",
            "account",
            "reason",
            "deadline",
            "remaining",
        ];
        let params = given
            .clone()
            .unwrap_or_else(|| vec!["event".into(), "order_id".into()]);
        for (i, p) in params.iter().enumerate() {
            if !KNOWN.contains(&p.as_str()) {
                let known: Vec<String> = KNOWN.iter().map(|k| k.to_string()).collect();
                let hint = did_you_mean(p, &known).map_or_else(
                    || format!("known: {}", KNOWN.join(", ")),
                    |b| format!("did you mean `{b}`?"),
                );
                self.err(
                    doc,
                    &format!("{path}.params[{i}]"),
                    format!("{path}.params[{i}]: unknown parameter `{p}`, {hint}"),
                );
            }
        }
        params
    }

    pub(super) fn phones(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        given: &[raw::Scalar],
    ) -> Vec<String> {
        if given.is_empty() {
            self.err(doc, path, format!("{path}: missing `phone_numbers`"));
        }
        given.iter().map(raw::Scalar::text).collect()
    }

    pub(super) fn aliyun_sms(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        c: &raw::AliyunSmsChannel,
    ) -> Option<AliyunSmsSpec> {
        let endpoint = self.notify_url(
            doc,
            &format!("{path}.endpoint"),
            c.endpoint.as_deref(),
            "https://dysmsapi.aliyuncs.com",
        );
        let sign_name = self.required(doc, path, "sign_name", c.sign_name.clone());
        let template_code = self.required(doc, path, "template_code", c.template_code.clone());
        let phone_numbers = self.phones(doc, path, &c.phone_numbers);
        let params = self.sms_params(doc, path, &c.params);
        let id = self.secret(
            doc,
            path,
            "access_key_id",
            c.access_key_id_env.as_ref(),
            c.access_key_id_file.as_ref(),
        );
        let secret = self.secret(
            doc,
            path,
            "access_key_secret",
            c.access_key_secret_env.as_ref(),
            c.access_key_secret_file.as_ref(),
        );
        Some(AliyunSmsSpec {
            endpoint,
            access_key_id: id?,
            access_key_secret: secret?,
            sign_name: sign_name?,
            template_code: template_code?,
            phone_numbers,
            region: c.region.clone().unwrap_or_else(|| "cn-hangzhou".into()),
            params,
        })
    }

    pub(super) fn tencent_sms(
        &mut self,
        doc: &YamlDoc,
        path: &str,
        c: &raw::TencentSmsChannel,
    ) -> Option<TencentSmsSpec> {
        let endpoint = self.notify_url(
            doc,
            &format!("{path}.endpoint"),
            c.endpoint.as_deref(),
            "https://sms.tencentcloudapi.com",
        );
        let sdk_app_id = self.required(
            doc,
            path,
            "sdk_app_id",
            c.sdk_app_id.as_ref().map(raw::Scalar::text),
        );
        let sign_name = self.required(doc, path, "sign_name", c.sign_name.clone());
        let template_id = self.required(
            doc,
            path,
            "template_id",
            c.template_id.as_ref().map(raw::Scalar::text),
        );
        let phone_numbers = self.phones(doc, path, &c.phone_numbers);
        let params = self.sms_params(doc, path, &c.params);
        let id = self.secret(
            doc,
            path,
            "secret_id",
            c.secret_id_env.as_ref(),
            c.secret_id_file.as_ref(),
        );
        let key = self.secret(
            doc,
            path,
            "secret_key",
            c.secret_key_env.as_ref(),
            c.secret_key_file.as_ref(),
        );
        Some(TencentSmsSpec {
            endpoint,
            secret_id: id?,
            secret_key: key?,
            sdk_app_id: sdk_app_id?,
            sign_name: sign_name?,
            template_id: template_id?,
            phone_numbers,
            region: c.region.clone().unwrap_or_else(|| "ap-guangzhou".into()),
            params,
        })
    }
}

/// Local rate limits the vendors' documented per-bot limits call for.
fn default_rate(spec: &ChannelSpec) -> Option<u32> {
    match spec {
        ChannelSpec::Wecom(_) | ChannelSpec::Dingtalk(_) | ChannelSpec::Telegram(_) => Some(20),
        ChannelSpec::Feishu(_) => Some(100),
        _ => None,
    }
}
