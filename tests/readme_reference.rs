//! The README's config reference is kept true by the parser: every key the parser accepts in
//! every section is documented, and every key the reference tables name is one the parser
//! accepts. The parser's key lists are read from its own "unknown key … expected one of"
//! errors, so this test needs no list of its own to maintain.

use std::collections::BTreeSet;
use std::path::Path;

use serde_yaml::{Mapping, Value};
use xianyu_shopd::config::StageKind;
use xianyu_shopd::config::chat::CHAT_STAGE_NAMES;

const PROBE: &str = "zzzzzzzzzzzzzzzz";

fn base_pipeline() -> Value {
    serde_yaml::from_str(
        "accounts:\n  - id: main\n    cookies_env: X_COOKIES\npipeline:\n  - ingest: {}\n  - classify: {}\n  - stock-check: {}\n  - delay: { virtual: { min: 0s, max: 1s } }\n  - ship: {}\n  - notify: { channels: [log] }\n",
    )
    .unwrap()
}

fn base_products() -> Value {
    serde_yaml::from_str(
        "pools:\n  p: {}\nproducts:\n  - item_id: \"1\"\n    title: t\n    ship: { mode: send_only }\n    delay: { min: 0s, max: 1s }\n",
    )
    .unwrap()
}

/// The mapping at `path` (keys and sequence indexes), created if missing.
fn at<'a>(v: &'a mut Value, path: &[&str]) -> &'a mut Mapping {
    let mut cur = v;
    for seg in path {
        cur = match seg.parse::<usize>() {
            Ok(i) => &mut cur.as_sequence_mut().unwrap()[i],
            Err(_) => {
                let m = cur.as_mapping_mut().unwrap();
                if !m.contains_key(*seg) {
                    m.insert(Value::from(*seg), Value::Mapping(Mapping::new()));
                }
                m.get_mut(*seg).unwrap()
            }
        };
    }
    cur.as_mapping_mut().unwrap()
}

/// Write the config, load it, and return the keys the parser lists for the probed section.
fn expected_keys(pipeline: &Value, products: &Value) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("pipeline.yaml"),
        serde_yaml::to_string(pipeline).unwrap(),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("products.yaml"),
        serde_yaml::to_string(products).unwrap(),
    )
    .unwrap();
    let errors =
        xianyu_shopd::config::load(dir.path()).expect_err("the probe key must be rejected");
    let line = errors
        .0
        .iter()
        .map(|e| e.message.clone())
        .find(|m| m.contains(PROBE))
        .unwrap_or_else(|| panic!("no probe error in {errors}"));
    let list = line
        .split("expected one of: ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in `{line}`"));
    list.split(", ").map(str::to_string).collect()
}

fn probe_pipeline(path: &[&str]) -> BTreeSet<String> {
    let mut p = base_pipeline();
    at(&mut p, path).insert(Value::from(PROBE), Value::from(1));
    expected_keys(&p, &base_products())
}

fn probe_products(path: &[&str]) -> BTreeSet<String> {
    let mut r = base_products();
    at(&mut r, path).insert(Value::from(PROBE), Value::from(1));
    expected_keys(&base_pipeline(), &r)
}

/// Probe a chat stage (`path` below its parameters) for the keys it accepts.
fn probe_chat(stage: &str, path: &[&str]) -> BTreeSet<String> {
    let mut p = base_pipeline();
    let mut params = Mapping::new();
    if path == ["rules", "0"] {
        params.insert(
            Value::from("rules"),
            Value::Sequence(vec![Value::Mapping(Mapping::new())]),
        );
    }
    let mut item = Mapping::new();
    item.insert(Value::from(stage), Value::Mapping(params));
    p.as_mapping_mut().unwrap().insert(
        Value::from("chat"),
        Value::Sequence(vec![Value::Mapping(item)]),
    );
    let mut full = vec!["chat", "0", stage];
    full.extend_from_slice(path);
    at(&mut p, &full).insert(Value::from(PROBE), Value::from(1));
    expected_keys(&p, &base_products())
}

/// Every key the parser accepts, per section.
fn parser_keys() -> Vec<(String, BTreeSet<String>)> {
    let mut out = vec![
        ("pipeline.yaml".to_string(), probe_pipeline(&[])),
        ("accounts".into(), probe_pipeline(&["accounts", "0"])),
        ("status".into(), probe_pipeline(&["status"])),
        ("marketplace".into(), probe_pipeline(&["marketplace"])),
        ("products.yaml".into(), probe_products(&[])),
        ("pools".into(), probe_products(&["pools", "p"])),
        ("products[]".into(), probe_products(&["products", "0"])),
        (
            "products[].ship".into(),
            probe_products(&["products", "0", "ship"]),
        ),
        (
            "products[].readback".into(),
            probe_products(&["products", "0", "readback"]),
        ),
        (
            "products[].delivery".into(),
            probe_products(&["products", "0", "delivery"]),
        ),
        (
            "products[].supplier".into(),
            probe_products(&["products", "0", "supplier"]),
        ),
        (
            "products[].supplier.return".into(),
            probe_products(&["products", "0", "supplier", "return"]),
        ),
        ("blacklist".into(), probe_pipeline(&["blacklist"])),
        ("aftersale".into(), probe_pipeline(&["aftersale"])),
        (
            "aftersale.rate".into(),
            probe_pipeline(&["aftersale", "rate"]),
        ),
        (
            "aftersale.thanks".into(),
            probe_pipeline(&["aftersale", "thanks"]),
        ),
        (
            "aftersale.polish".into(),
            probe_pipeline(&["aftersale", "polish"]),
        ),
        ("stats".into(), probe_pipeline(&["stats"])),
        ("report".into(), probe_pipeline(&["report"])),
    ];
    for (i, stage) in StageKind::ALL.iter().map(|k| k.name()).enumerate() {
        out.push((
            format!("pipeline {stage}"),
            probe_pipeline(&["pipeline", &i.to_string(), stage]),
        ));
    }
    for stage in CHAT_STAGE_NAMES {
        out.push((format!("chat {stage}"), probe_chat(stage, &[])));
    }
    out.push((
        "chat filter.quiet_hours".into(),
        probe_chat("filter", &["quiet_hours"]),
    ));
    out.push((
        "chat keyword rule".into(),
        probe_chat("keywords", &["rules", "0"]),
    ));
    out.push(("chat send.delay".into(), probe_chat("send", &["delay"])));
    for sub in ["bargain", "replies", "greeting"] {
        let mut r = base_products();
        let product = at(&mut r, &["products", "0"]);
        let mut leaf = Mapping::new();
        leaf.insert(Value::from(PROBE), Value::from(1));
        let value = match sub {
            "replies" => Value::Sequence(vec![Value::Mapping(leaf)]),
            _ => Value::Mapping(leaf),
        };
        product.insert(Value::from(sub), value);
        out.push((
            format!("products[].{sub}"),
            expected_keys(&base_pipeline(), &r),
        ));
    }
    // The channel types themselves, from the `type:` error.
    let mut p = base_pipeline();
    at(&mut p, &["channels", "c"]).insert(Value::from("type"), Value::from(PROBE));
    let types = expected_keys(&p, &base_products());
    // Per-type channel keys flatten shared settings, and serde lists no alternatives for those;
    // they are covered by tests/notify_channels.rs' config tests instead.
    out.push(("channel types".into(), types));
    out
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

#[test]
fn every_parser_key_is_documented_in_the_readme() {
    let readme = readme();
    let mut missing = Vec::new();
    for (section, keys) in parser_keys() {
        for key in keys {
            if !readme.contains(&format!("`{key}`"))
                && !readme.contains(&format!("`{key}:"))
                && !readme.contains(&format!(".{key}`"))
            {
                missing.push(format!("{section}: {key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "keys the parser accepts but README.md does not document:\n{}",
        missing.join("\n")
    );
}

#[test]
fn every_key_in_the_reference_tables_exists() {
    let mut known: BTreeSet<String> = parser_keys().into_iter().flat_map(|(_, k)| k).collect();
    known.insert("type".into()); // the channel tag itself, consumed before the field lists
    known.extend(StageKind::ALL.iter().map(|k| k.name().to_string()));
    known.extend(CHAT_STAGE_NAMES.iter().map(|k| k.to_string()));
    let readme = readme();
    let reference = readme
        .split("## 配置参考")
        .nth(1)
        .unwrap()
        .split("\n## ")
        .next()
        .unwrap();
    let mut unknown = Vec::new();
    for row in reference.lines().filter(|l| l.starts_with("| `")) {
        let cell = row.split('|').nth(1).unwrap_or("");
        if cell.contains("product_configs") || cell.contains('（') || cell.contains(" 表") {
            continue; // the seed mapping table names the seed's columns, not ours
        }
        for token in cell.split('`').skip(1).step_by(2) {
            // The seed's .env names (AUTO_SHIP_*) are mapped in the reference, not parsed.
            let seed_env = |p: &&str| {
                p.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
            };
            for part in token
                .split(['/', ' '])
                .filter(|p| !p.is_empty() && !seed_env(p))
            {
                let leaf = part
                    .rsplit('.')
                    .next()
                    .unwrap_or(part)
                    .trim_end_matches(':');
                if !known.contains(leaf) {
                    unknown.push(format!("{leaf} (in `{token}`)"));
                }
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "README.md documents keys the parser does not accept:\n{}",
        unknown.join("\n")
    );
}
