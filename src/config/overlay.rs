//! Settings laid over `pipeline.yaml` as it is loaded, never written to the seller's files.
//!
//! `demo` runs on the seller's own config directory, so that editing `products.yaml`, a
//! template or a chat rule shows up in the running demo through the ordinary hot reload. Only
//! what must point at the built-in fakes differs from the files, and an [`Overlay`] replaces
//! exactly that in the parsed YAML before validation, on the first load and on every reload
//! alike: the accounts (one account logged in to the fake Xianyu), the `marketplace:`
//! endpoints, the status page's address, the notify stage's channels and the `llm` chat stage's
//! endpoint. Positions in error messages stay those of the seller's file, and the config
//! version stays the content hash of the files on disk.

use serde_yaml::{Mapping, Value};

/// What to replace in `pipeline.yaml`; the default replaces nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overlay {
    /// Replaces `accounts:` with this one account.
    pub account: Option<OverlayAccount>,
    /// Replaces `marketplace:` with these keys (the seller's timings are for the real service).
    pub marketplace: Option<Vec<(String, String)>>,
    /// Sets `status.listen`.
    pub status_listen: Option<String>,
    /// Sets the notify stage's `channels` (and empties its `fallback`).
    pub notify_channels: Option<Vec<String>>,
    /// Points the `llm` chat stage at this OpenAI-compatible endpoint, without a key.
    pub llm: Option<OverlayLlm>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayAccount {
    pub id: String,
    pub name: String,
    /// A `cookies_file` path under `state/`, relative to the config directory.
    pub cookies_file: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayLlm {
    pub base_url: String,
    pub model: String,
}

impl Overlay {
    /// Apply to the parsed `pipeline.yaml`. A document that is not a mapping is left for
    /// validation to report as it is.
    pub(crate) fn apply(&self, pipeline: &mut Value) {
        let Some(map) = pipeline.as_mapping_mut() else {
            return;
        };
        if let Some(a) = &self.account {
            let account = mapping([
                ("id", a.id.as_str()),
                ("name", a.name.as_str()),
                ("cookies_file", a.cookies_file.as_str()),
            ]);
            map.insert("accounts".into(), Value::Sequence(vec![account]));
        }
        if let Some(pairs) = &self.marketplace {
            let market = mapping(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            map.insert("marketplace".into(), market);
        }
        if let Some(listen) = &self.status_listen {
            let status = map
                .entry("status".into())
                .or_insert_with(|| Value::Mapping(Mapping::new()));
            if !status.is_mapping() {
                *status = Value::Mapping(Mapping::new());
            }
            if let Some(s) = status.as_mapping_mut() {
                s.insert("listen".into(), listen.as_str().into());
            }
        }
        if let Some(channels) = &self.notify_channels {
            let list: Vec<Value> = channels.iter().map(|c| c.as_str().into()).collect();
            for notify in stage_params(map, "pipeline", "notify") {
                notify.insert("channels".into(), Value::Sequence(list.clone()));
                notify.insert("fallback".into(), Value::Sequence(Vec::new()));
            }
        }
        if let Some(llm) = &self.llm {
            for params in stage_params(map, "chat", "llm") {
                params.insert("base_url".into(), llm.base_url.as_str().into());
                params.insert("model".into(), llm.model.as_str().into());
                params.remove("api_key_env");
                params.remove("api_key_file");
            }
        }
    }
}

fn mapping<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Value {
    Value::Mapping(
        pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect(),
    )
}

/// The parameter maps of every `- kind: { … }` entry of the `list` section.
fn stage_params<'a>(
    map: &'a mut Mapping,
    list: &str,
    kind: &'a str,
) -> impl Iterator<Item = &'a mut Mapping> {
    map.get_mut(list)
        .and_then(Value::as_sequence_mut)
        .into_iter()
        .flatten()
        .filter_map(move |stage| stage.get_mut(kind).and_then(Value::as_mapping_mut))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo_overlay() -> Overlay {
        Overlay {
            account: Some(OverlayAccount {
                id: "main".into(),
                name: "演示店".into(),
                cookies_file: "state/demo/state/cookies-main.txt".into(),
            }),
            marketplace: Some(vec![("ws_url".into(), "ws://127.0.0.1:9/".into())]),
            status_listen: Some("127.0.0.1:0".into()),
            notify_channels: Some(vec!["log".into()]),
            llm: Some(OverlayLlm {
                base_url: "http://127.0.0.1:9/v1".into(),
                model: "simulated-model".into(),
            }),
        }
    }

    #[test]
    fn replaces_only_the_overlaid_parts() {
        let text = "accounts:\n  - { id: shop, cookies_env: REAL }\nstatus: { listen: 0.0.0.0:80, token_env: T }\nmarketplace: { heartbeat: 1s }\npipeline:\n  - ingest: {}\n  - notify: { channels: [wecom], fallback: [bark], events: [needs_human] }\nchat:\n  - llm: { base_url: https://api.example/v1, model: qwen, api_key_env: KEY, timeout: 9s }\n";
        let mut value: Value = serde_yaml::from_str(text).unwrap();
        demo_overlay().apply(&mut value);
        let want = "accounts:\n- id: main\n  name: 演示店\n  cookies_file: state/demo/state/cookies-main.txt\nstatus:\n  listen: 127.0.0.1:0\n  token_env: T\nmarketplace:\n  ws_url: ws://127.0.0.1:9/\npipeline:\n- ingest: {}\n- notify:\n    channels:\n    - log\n    fallback: []\n    events:\n    - needs_human\nchat:\n- llm:\n    base_url: http://127.0.0.1:9/v1\n    model: simulated-model\n    timeout: 9s\n";
        assert_eq!(serde_yaml::to_string(&value).unwrap(), want);
    }

    #[test]
    fn the_default_overlay_changes_nothing() {
        let text = "accounts:\n- id: shop\n  cookies_env: REAL\npipeline:\n- notify:\n    channels:\n    - wecom\n";
        let mut value: Value = serde_yaml::from_str(text).unwrap();
        Overlay::default().apply(&mut value);
        assert_eq!(serde_yaml::to_string(&value).unwrap(), text);
    }
}
