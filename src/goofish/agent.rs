//! What the configured browser user agent says about the browser, so every place that
//! describes it agrees: the `sec-ch-ua-*` client hints of mtop calls and the `OS(…)` part of
//! the IM `/reg` `ua` (reference §2.4, §4.3; risk control binds its cookies to a consistent
//! browser fingerprint, §8.2). Pure string reading; anything unrecognised reads as the
//! desktop Windows Chrome every bot imitates.

/// The operating system a user agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Os {
    /// As the DingTalk web client writes it in `/reg` `ua`: `Windows`, `MacOS`, `Linux`.
    pub dingtalk_name: &'static str,
    /// Version as the user agent gives it (`10`, `10.15.7`), or the CPU for Linux, whose
    /// user agents carry no version.
    pub version: String,
    /// `sec-ch-ua-platform` value: `Windows`, `macOS`, `Linux`, `Android`, `Chrome OS`.
    pub platform: &'static str,
}

/// The OS of `user_agent`.
pub fn os(user_agent: &str) -> Os {
    let inside = user_agent
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("", |(inner, _)| inner);
    let tokens: Vec<&str> = inside.split(';').map(str::trim).collect();
    let find = |prefix: &str| tokens.iter().find_map(|t| t.strip_prefix(prefix));
    if let Some(v) = tokens.iter().find_map(|t| t.split("Mac OS X ").nth(1)) {
        return Os {
            dingtalk_name: "MacOS",
            version: v.replace('_', "."),
            platform: "macOS",
        };
    }
    if let Some(v) = find("Android ") {
        return Os {
            dingtalk_name: "Android",
            version: v.to_string(),
            platform: "Android",
        };
    }
    if let Some(cpu) = tokens.iter().find_map(|t| t.strip_prefix("CrOS ")) {
        return Os {
            dingtalk_name: "Linux",
            version: cpu.split_whitespace().next().unwrap_or("").to_string(),
            platform: "Chrome OS",
        };
    }
    if let Some(cpu) = find("Linux ") {
        return Os {
            dingtalk_name: "Linux",
            version: cpu.to_string(),
            platform: "Linux",
        };
    }
    // `Windows NT 10.0` stands for Windows 10 and 11 alike (Chrome freezes it).
    let version = find("Windows NT ")
        .map(|v| v.split('.').next().unwrap_or(v).to_string())
        .unwrap_or_else(|| "10".into());
    Os {
        dingtalk_name: "Windows",
        version,
        platform: "Windows",
    }
}

/// `sec-ch-ua-mobile`: `?1` for a phone or tablet browser.
pub fn mobile_hint(user_agent: &str) -> &'static str {
    if user_agent.contains("Mobile") {
        "?1"
    } else {
        "?0"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operating_systems() {
        let win = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";
        assert_eq!(
            os(win),
            Os {
                dingtalk_name: "Windows",
                version: "10".into(),
                platform: "Windows"
            }
        );
        let mac = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";
        assert_eq!(
            (
                os(mac).dingtalk_name,
                os(mac).version.as_str(),
                os(mac).platform
            ),
            ("MacOS", "10.15.7", "macOS")
        );
        let linux = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Safari/537.36";
        assert_eq!(
            (os(linux).dingtalk_name, os(linux).version.as_str()),
            ("Linux", "x86_64")
        );
        let android = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/146.0.0.0 Mobile Safari/537.36";
        assert_eq!(os(android).platform, "Android");
        assert_eq!(mobile_hint(android), "?1");
        assert_eq!(mobile_hint(win), "?0");
        assert_eq!(os("curl/8").platform, "Windows");
    }
}
