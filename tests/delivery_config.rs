//! `check` for the delivery keys of issue 13: every mistake is reported with its
//! `file:line:col`, and nothing else about the config hides it.

mod support;

use support::*;

fn errors(pipeline: &str, products: &str, templates: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), pipeline, products);
    for (name, text) in templates {
        std::fs::write(dir.path().join("templates").join(name), text).unwrap();
    }
    load_errors(dir.path())
}

/// What `check` reports for the config in `dir`, one line each.
fn load_errors(dir: &std::path::Path) -> Vec<String> {
    match xianyu_shopd::config::load(dir) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// The errors of the default pipeline with one product carrying `extra`.
fn product_errors(extra: &str, templates: &[(&str, &str)]) -> Vec<String> {
    errors(&pipeline(), &product(extra), templates)
}

fn product(extra: &str) -> String {
    format!(
        "products:\n  - item_id: \"1\"\n    title: t\n    category: virtual\n    auto_ship: true\n    template: card.txt.j2\n{extra}"
    )
}

fn pipeline() -> String {
    pipeline_yaml("{ min: 0s, max: 0s }", "{}")
}

fn assert_one(errs: &[String], start: &str, contains: &str) {
    assert!(
        errs.iter()
            .any(|e| e.starts_with(start) && e.contains(contains)),
        "expected `{start} … {contains}` in {errs:#?}"
    );
}

/// Each `(start, contains)` is reported, and nothing else.
fn assert_exactly(errs: &[String], expected: &[(&str, &str)]) {
    for (start, contains) in expected {
        assert_one(errs, start, contains);
    }
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
}

#[test]
fn a_nickname_in_the_blacklist_is_refused_where_it_is_written() {
    let p = pipeline() + "blacklist:\n  buyers:\n    - \"2200000000001\"\n    - 小明\n";
    let errs = errors(&p, &product(""), &[]);
    // pipeline_yaml has 10 lines; `- 小明` is line 14, the value at column 7.
    assert_one(&errs, "pipeline.yaml:14:7:", "not a buyer id");
    assert_eq!(errs.len(), 1, "{errs:#?}");
}

#[test]
fn an_unknown_message_shape_and_a_missing_follow_up_are_both_reported() {
    let errs = product_errors("    delivery:\n      shape: one_per_key\n", &[]);
    assert_one(
        &errs,
        "products.yaml:8:7:",
        "unknown kind `one_per_key`, expected one of: merged, per_key",
    );

    let errs = product_errors(
        "    delivery:\n      shape: per_key\n      follow_up: usage.txt.j2\n",
        &[],
    );
    assert_one(
        &errs,
        "products.yaml:9:18:",
        "template `usage.txt.j2` not found",
    );

    let errs = product_errors(
        "    delivery: { follow_up: usage.txt.j2 }\n",
        &[("usage.txt.j2", "{{ nope.nothing }}")],
    );
    // Reported where the fix goes: the template's own line (issue 10 D15, checked statically).
    assert_one(
        &errs,
        "templates/usage.txt.j2:1:1:",
        "`nope` is not defined; this template sees:",
    );

    let errs = product_errors(
        "    delivery: { shape: per_key, follow_up: usage.txt.j2 }\n",
        &[("usage.txt.j2", "第{{ unit }}/{{ units }}个")],
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

#[test]
fn supplier_mistakes_are_reported_where_they_are_written() {
    // Line 7 is `supplier:`; its keys start on line 8, values at column 15 (`url_env: `).
    let errs = product_errors(
        "    supplier:\n      url_env: SUPPLIER_URL\n      method: PUT\n      headers: { Authorization: abc }\n      headers_env: { X-Token: not-a-variable }\n      body: { ref: \"{{ ordr_id }}\" }\n      response: data..card\n      timeout: soon\n      retries: 99\n",
        &[],
    );
    assert_exactly(
        &errs,
        &[
            ("products.yaml:9:15:", "`PUT` is not supported"),
            ("products.yaml:10:18:", "looks like a credential"),
            ("products.yaml:11:31:", "not an environment variable name"),
            ("products.yaml:12:13:", "ordr_id"),
            ("products.yaml:13:17:", "empty step"),
            ("products.yaml:14:16:", "not a duration"),
            ("products.yaml:15:16:", "at most 10"),
        ],
    );

    // A pool and a supplier at once, and no URL at all.
    let r = product("    cards: keys\n    supplier: { response: data.card }\n");
    let errs = errors(
        &pipeline(),
        &(String::from("pools:\n  keys: {}\n") + &r),
        &[],
    );
    assert!(errs.iter().any(|e| e.contains("not both")), "{errs:#?}");
    assert!(
        errs.iter().any(|e| e.contains("missing url_env")),
        "{errs:#?}"
    );

    // A good one loads.
    let errs = product_errors(
        "    supplier:\n      url_file: state/supplier.url\n      headers_env: { Authorization: SUPPLIER_TOKEN }\n      body: { sku: \"{{ sku }}\", n: 1 }\n      response: data.cards[0].code\n      return: { url_env: SUPPLIER_RETURN, body: { card: \"{{ card }}\" } }\n",
        &[],
    );
    assert!(errs.is_empty(), "{errs:#?}");
}

/// Load a config of `pipeline` and `products` next to `images/ok.png` (a PNG),
/// `images/notes.txt` (text) and `images/huge.png` (over 5 MB); its errors.
fn image_errors(pipeline: &str, products: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), pipeline, products);
    let images = dir.path().join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("notes.txt"), "not an image").unwrap();
    let huge = std::fs::File::create(images.join("huge.png")).unwrap();
    huge.set_len(5 * 1024 * 1024 + 1).unwrap();
    std::fs::write(images.join("ok.png"), png::png(1, 1)).unwrap();
    load_errors(dir.path())
}

/// `delivery.images` (issue 13 item 2): a missing file, a path leaving the config directory,
/// a file that is not an image and one that is too big are each reported at their own line.
#[test]
fn bad_delivery_images_are_reported_where_they_are_written() {
    let r = product(
        "    delivery:\n      images:\n        - images/missing.png\n        - ../outside.png\n        - images/notes.txt\n        - images/huge.png\n        - images/ok.png\n",
    );
    let errs = image_errors(&pipeline(), &r);
    // The good image (line 13) is accepted.
    assert_exactly(
        &errs,
        &[
            ("products.yaml:9:", "image `images/missing.png` not found"),
            ("products.yaml:10:", "outside the config directory"),
            ("products.yaml:11:", "not a PNG, JPEG, GIF or WebP image"),
            ("products.yaml:12:", "at most 5 MB"),
        ],
    );
}

#[test]
fn proof_images_without_images_is_refused() {
    let errs = product_errors("    delivery:\n      proof_images: true\n", &[]);
    assert_one(&errs, "products.yaml:8:", "no `images:`");
}

/// `images:` on chat replies (issue 13 item 2) goes through the same checks as
/// `delivery.images`, each mistake at its own line: a keyword rule in pipeline.yaml, the
/// default reply, and an item's own `replies` in products.yaml.
#[test]
fn bad_chat_reply_images_are_reported_where_they_are_written() {
    let chat = "chat:\n  - keywords:\n      rules:\n        - any: [价格]\n          reply: 价目表\n          images: [images/ok.png, images/missing.png]\n  - default:\n      reply: 稍等\n      images:\n        - ../outside.png\n  - send: {}\n";
    let r = product(
        "    replies:\n      - any: [教程]\n        reply: \"\"\n        images: [images/notes.txt]\n",
    );
    let errs = image_errors(&(pipeline() + chat), &r);
    // pipeline_yaml has 10 lines: the rule's images are line 16, the default's entry 20; the
    // good image is accepted.
    assert_exactly(
        &errs,
        &[
            ("pipeline.yaml:16:", "image `images/missing.png` not found"),
            ("pipeline.yaml:20:", "outside the config directory"),
            ("products.yaml:10:", "not a PNG, JPEG, GIF or WebP image"),
        ],
    );
}

/// A product's `greeting` takes `images:` with the same checks, at their own lines; a greeting
/// of images alone needs no text, and the text forms still load.
#[test]
fn bad_greeting_images_are_reported_where_they_are_written() {
    let r = product(
        "    greeting:\n      reply: 欢迎\n      images:\n        - images/ok.png\n        - images/missing.png\n",
    );
    let errs = image_errors(&pipeline(), &r);
    assert_exactly(
        &errs,
        &[("products.yaml:11:", "image `images/missing.png` not found")],
    );
    let alone = product("    greeting: { images: [images/huge.png] }\n");
    let errs = image_errors(&pipeline(), &alone);
    assert_exactly(&errs, &[("products.yaml:7:", "at most 5 MB")]);
    for ok in [
        "    greeting: { images: [images/ok.png] }\n",
        "    greeting: { reply: [欢迎, 有事请留言], images: [images/ok.png] }\n",
        "    greeting: [欢迎, 有事请留言]\n",
    ] {
        assert_exactly(&image_errors(&pipeline(), &product(ok)), &[]);
    }
}

/// `delivery.sku_images` (issue 13): each SKU's list is checked like `delivery.images`, at its
/// own line; an empty list is fine (that SKU sends no image), and `proof_images` accepts
/// images that only SKUs have.
#[test]
fn bad_sku_images_are_reported_where_they_are_written() {
    let r = product(
        "    delivery:\n      proof_images: true\n      sku_images:\n        年卡: [images/ok.png, images/huge.png]\n        月卡: []\n        季卡:\n          - images/missing.png\n",
    );
    let errs = image_errors(&pipeline(), &r);
    assert_exactly(
        &errs,
        &[
            ("products.yaml:10:", "at most 5 MB"),
            (
                "products.yaml:13:",
                "products[0].delivery.sku_images.季卡[0]: image `images/missing.png` not found",
            ),
        ],
    );
}
