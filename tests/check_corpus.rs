//! `xianyu-shopd check` against a corpus of broken configs.
//!
//! Every case copies the shipped example config (pipeline.yaml, products.yaml, templates/) into
//! a temp dir, applies exactly one textual edit, runs the real binary, and asserts exit code 1
//! plus one stderr line that starts with the exact `file:line:col:` and contains the expected
//! text. Locations were worked out by hand from the example files; an edit that does not match
//! the example exactly once fails the case, so the corpus cannot silently go stale.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_xianyu-shopd");
const EXAMPLE: &str = env!("CARGO_MANIFEST_DIR");

fn check(dir: &Path) -> Output {
    Command::new(BIN)
        .arg("check")
        .arg("--config-dir")
        .arg(dir)
        .current_dir(dir)
        .output()
        .expect("run xianyu-shopd check")
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            fs::copy(&path, &dest).unwrap();
        }
    }
}

/// A fresh copy of the shipped example config.
fn example_copy() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let src = Path::new(EXAMPLE);
    for f in ["pipeline.yaml", "products.yaml"] {
        fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    copy_dir(&src.join("templates"), &tmp.path().join("templates"));
    tmp
}

/// Replace `from` with `to` in `file`; `from` must occur exactly once.
fn edit(dir: &Path, file: &str, from: &str, to: &str) {
    let path: PathBuf = dir.join(file);
    let text = fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {file}: {e}"));
    let n = text.matches(from).count();
    assert_eq!(
        n, 1,
        "edit for {file}: {from:?} occurs {n} times in the example, expected once"
    );
    fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

fn stderr_of(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Assert exit 1 and that some stderr line starts with `loc` and contains `want`.
fn assert_reported(name: &str, out: &Output, loc: &str, want: &str) {
    let stderr = stderr_of(out);
    assert_eq!(
        out.status.code(),
        Some(1),
        "[{name}] expected exit 1\nstdout:\n{}\nstderr:\n{stderr}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(loc) && l.contains(want)),
        "[{name}] expected a stderr line starting with {loc:?} containing {want:?}\nstderr:\n{stderr}"
    );
}

/// One corpus case: the example config with one edit must be rejected at `loc` with `want`.
fn case(name: &str, file: &str, from: &str, to: &str, loc: &str, want: &str) {
    assert!(loc.ends_with(':'), "[{name}] loc must be `file:line:col:`");
    let tmp = example_copy();
    edit(tmp.path(), file, from, to);
    let out = check(tmp.path());
    assert_reported(name, &out, loc, want);
}

/// `name: file, from => to, "file:line:col:", "expected text";` — one `#[test]` per case, so a
/// failing case is named, and a known validator bug can carry `#[ignore = "..."]`.
macro_rules! corpus {
    ($( $(#[$attr:meta])* $name:ident : $file:literal, $from:expr => $to:expr, $loc:literal, $want:expr; )*) => {
        $(
            $(#[$attr])*
            #[test]
            fn $name() {
                case(stringify!($name), $file, $from, $to, $loc, $want);
            }
        )*
        const CORPUS: &[&str] = &[$(stringify!($name)),*];
    };
}

const P: &str = "pipeline.yaml";
const R: &str = "products.yaml";

// Line numbers below refer to the shipped pipeline.yaml / products.yaml (1-based, columns in
// characters). Key lines: pipeline.yaml 7 cookies_env, 10 listen, 14 dedupe_window, 16
// virtual_keywords, 19-23 stock-check/delay, 24 `- ship:`, 26 mode, 27 max_retries,
// 28 retry_delay, 31 events, 32 channels, 33 fallback, 38 url_env; products.yaml 15 cards,
// 17 delay, 25 sku_cards 月卡, 27 third item_id, 31 link template, 32 stock, 35-40 iPhone.
corpus! {
    // ---- YAML syntax -------------------------------------------------------------------
    // The flow sequence opened on line 16 swallows line 17 as a plain scalar; libyaml fails at
    // the `:` after `physical_keywords` (17:24).
    yaml_unclosed_bracket_pipeline: "pipeline.yaml",
        "代充]" => "代充",
        "pipeline.yaml:17:24:", "while parsing a flow sequence";
    // Same edit: the message should still say where the unclosed `[` was opened (16:25).
    yaml_unclosed_bracket_names_opening: "pipeline.yaml",
        "代充]" => "代充",
        "pipeline.yaml:17:24:", "while parsing a flow sequence at line 16 column 25";
    // The flow mapping on the last line is never closed: error at end of file.
    yaml_unclosed_brace_products: "products.yaml",
        "stock: { quantity: 1 }" => "stock: { quantity: 1",
        "products.yaml:44:10:", "did not find expected ',' or '}'";
    yaml_tab_indent_pipeline: "pipeline.yaml",
        "      max_retries: 3" => "\tmax_retries: 3",
        "pipeline.yaml:27:1:", "found character that cannot start any token";
    yaml_tab_indent_products: "products.yaml",
        "    title: 二手 iPhone" => "\ttitle: 二手 iPhone",
        "products.yaml:39:1:", "found character that cannot start any token";
    yaml_bad_indent_pipeline: "pipeline.yaml",
        "      max_retries: 3" => "     max_retries: 3",
        "pipeline.yaml:27:6:", "did not find expected key";
    // Over-indented key continues the title's plain scalar; the `:` at col 14 is then illegal.
    yaml_bad_indent_products: "products.yaml",
        "    category: physical" => "     category: physical",
        "products.yaml:40:14:", "mapping values are not allowed in this context";
    yaml_duplicate_key_pipeline: "pipeline.yaml",
        "      max_retries: 3\n" => "      max_retries: 3\n      max_retries: 4\n",
        "pipeline.yaml:28:7:", "duplicate entry with key \"max_retries\"";
    yaml_duplicate_key_products: "products.yaml",
        "    category: physical\n" => "    category: physical\n    category: virtual\n",
        "products.yaml:41:5:", "duplicate entry with key \"category\"";

    // ---- unknown keys and kinds ----------------------------------------------------------
    unknown_top_level_key: "pipeline.yaml",
        "status:\n" => "statuss:\n",
        "pipeline.yaml:9:1:", "unknown key `statuss`, did you mean `status`?";
    unknown_stage_param_did_you_mean: "pipeline.yaml",
        "      max_retries: 3" => "      max_retry: 3",
        "pipeline.yaml:27:7:", "unknown key `max_retry`, did you mean `max_retries`?";
    unknown_product_key_did_you_mean: "products.yaml",
        "    auto_ship: false " => "    auto_shipp: false ",
        "products.yaml:41:5:", "unknown key `auto_shipp`, did you mean `auto_ship`?";
    unknown_account_key_did_you_mean: "pipeline.yaml",
        "    name: 主店" => "    nmae: 主店",
        "pipeline.yaml:6:5:", "unknown key `nmae`, did you mean `name`?";
    retired_key_tracking_prefix: "products.yaml",
        "    logistics_company: 顺丰快递\n" => "    logistics_company: 顺丰快递\n    tracking_prefix: SF\n",
        "products.yaml:43:5:", "unknown key `tracking_prefix`: xianyu-shopd never fabricates tracking numbers";
    unknown_stage_kind: "pipeline.yaml",
        "  - ship:" => "  - shipp:",
        "pipeline.yaml:24:5:", "unknown kind `shipp`, did you mean `ship`?";
    unknown_channel_type: "pipeline.yaml",
        "type: webhook" => "type: webhok",
        "pipeline.yaml:37:5:", "unknown kind `webhok`, did you mean `webhook`?";
    unknown_channel_key_did_you_mean: "pipeline.yaml",
        "    url_env: SHOP_WEBHOOK_URL" => "    url_evn: SHOP_WEBHOOK_URL",
        "pipeline.yaml:38:5:", "unknown key `url_evn`, did you mean `url_env`?";
    unknown_ship_mode: "pipeline.yaml",
        "mode: send_then_confirm " => "mode: send_then_confrim ",
        "pipeline.yaml:26:7:", "did you mean `send_then_confirm`?";

    // ---- durations and delay windows -------------------------------------------------------
    bad_duration_no_unit: "pipeline.yaml",
        "retry_delay: 5m" => "retry_delay: 5",
        "pipeline.yaml:28:20:", "pipeline[4].ship.retry_delay: `5` is not a duration";
    bad_duration_word: "pipeline.yaml",
        "dedupe_window: 24h" => "dedupe_window: abc",
        "pipeline.yaml:14:22:", "pipeline[0].ingest.dedupe_window: `abc` is not a duration";
    bad_duration_misspelt_unit: "pipeline.yaml",
        "retry_delay: 5m" => "retry_delay: 5 minuets",
        "pipeline.yaml:28:20:", "`5 minuets` is not a duration";
    bad_duration_channel_timeout: "pipeline.yaml",
        "    url_env: SHOP_WEBHOOK_URL" => "    timeout: soon\n    url_env: SHOP_WEBHOOK_URL",
        "pipeline.yaml:38:14:", "channels.ops-webhook.timeout: `soon` is not a duration";
    delay_min_gt_max_stage: "pipeline.yaml",
        "{ min: 0s, max: 3s }" => "{ min: 10s, max: 3s }",
        "pipeline.yaml:23:23:", "pipeline[3].delay.virtual: min (10s) is greater than max (3s)";
    delay_min_gt_max_product: "products.yaml",
        "{ min: 1s, max: 3s }" => "{ min: 5s, max: 3s }",
        "products.yaml:18:19:", "products[0].delay: min (5s) is greater than max (3s)";

    // ---- marketplace ----------------------------------------------------------------------
    // Client hints without a user agent would describe a browser the requests do not claim.
    sec_ch_ua_needs_user_agent: "pipeline.yaml",
        "status:\n" => "marketplace: { sec_ch_ua: x }\nstatus:\n",
        "pipeline.yaml:9:27:", "marketplace.sec_ch_ua: set marketplace.user_agent too";
    // The silence limit without a token change cannot be the shorter one.
    idle_reconnect_not_below_watchdog: "pipeline.yaml",
        "status:\n" => "marketplace: { watchdog: 7h }\nstatus:\n",
        "pipeline.yaml:9:14:", "marketplace.idle_reconnect: must not be shorter than marketplace.watchdog";

    // ---- templates ---------------------------------------------------------------------------
    template_missing_file: "products.yaml",
        "template: link.txt.j2" => "template: links.txt.j2",
        "products.yaml:34:15:", "template `links.txt.j2` not found in templates/";
    template_syntax_error: "templates/link.txt.j2",
        "{{ product.title }}" => "{{ product.title }",
        "templates/link.txt.j2:1:1:", "unexpected `}`, expected end of variable block";
    // Strict undefined: caught by the sample render of the product that uses the template.
    template_undefined_variable: "templates/link.txt.j2",
        "{{ product.title }}" => "{{ order.nope }}",
        "templates/link.txt.j2:1:1:", "`order.nope` is not defined; order has: amount,";

    // ---- references --------------------------------------------------------------------------
    unknown_notify_channel: "pipeline.yaml",
        "channels: [log]" => "channels: [log, ops-webhok]",
        "pipeline.yaml:32:23:", "unknown channel `ops-webhok` (not defined under `channels:`), did you mean `ops-webhook`?";
    unknown_notify_fallback: "pipeline.yaml",
        "fallback: []" => "fallback: [pager]",
        "pipeline.yaml:33:18:", "pipeline[5].notify.fallback[0]: unknown channel `pager`";
    unknown_notify_event: "pipeline.yaml",
        "events: [manual_ship," => "events: [manual_shipp,",
        "pipeline.yaml:31:16:", "unknown event `manual_shipp`, did you mean `manual_ship`?";
    unknown_card_pool: "products.yaml",
        "cards: office-2021" => "cards: office-2019",
        "products.yaml:16:12:", "unknown card pool `office-2019`, did you mean `office-2021`?";
    unknown_sku_card_pool: "products.yaml",
        "月卡: vip-monthly" => "月卡: vip-yearly",
        "products.yaml:27:11:", "products[1].sku_cards.月卡: unknown card pool `vip-yearly`";
    unknown_product_account: "products.yaml",
        "    title: 二手 iPhone 13 128G\n" => "    title: 二手 iPhone 13 128G\n    account: shop2\n",
        "products.yaml:40:14:", "unknown account `shop2`";

    // ---- products ------------------------------------------------------------------------------
    duplicate_item_id: "products.yaml",
        "item_id: \"900052644388\"" => "item_id: \"900052644277\"",
        "products.yaml:29:14:", "duplicate item_id `900052644277` (first defined at line 10)";
    auto_ship_physical: "products.yaml",
        "auto_ship: false " => "auto_ship: true ",
        "products.yaml:41:16:", "never fabricates tracking numbers";
    bad_stock_word: "products.yaml",
        "stock: unlimited" => "stock: lots",
        "products.yaml:35:12:", "products[2].stock: write `unlimited`, a number, or `{ quantity: N }`";
    bad_stock_negative: "products.yaml",
        "stock: { quantity: 1 }" => "stock: -1",
        "products.yaml:43:12:", "products[3].stock: write `unlimited`";

    // ---- accounts, secrets, status ----------------------------------------------------------------
    empty_accounts: "pipeline.yaml",
        "accounts:\n  - id: main\n    name: 主店\n    cookies_file: state/cookies-main.txt # or: cookies_env: XIANYU_COOKIES (see README 正式上线)\n" => "accounts: []\n",
        "pipeline.yaml:4:1:", "accounts: at least one account is required";
    account_without_cookies: "pipeline.yaml",
        "    cookies_file: state/cookies-main.txt # or: cookies_env: XIANYU_COOKIES (see README 正式上线)\n" => "",
        "pipeline.yaml:5:5:", "accounts[0]: missing cookies_env";
    secret_file_outside_state: "pipeline.yaml",
        "cookies_file: state/cookies-main.txt" => "cookies_file: /etc/xianyu/cookies.txt",
        "pipeline.yaml:7:19:", "secret files must be a relative path under state/ (got `/etc/xianyu/cookies.txt`)";
    secret_file_escapes_state: "pipeline.yaml",
        "cookies_file: state/cookies-main.txt" => "cookies_file: state/../cookies.txt",
        "pipeline.yaml:7:19:", "secret files must be a relative path under state/";
    both_cookies_env_and_file: "pipeline.yaml",
        "    cookies_file: state/cookies-main.txt" => "    cookies_env: XIANYU_COOKIES\n    cookies_file: state/cookies-main.txt",
        "pipeline.yaml:8:5:", "accounts[0]: give either cookies_env or cookies_file, not both";
    status_public_without_token: "pipeline.yaml",
        "listen: 127.0.0.1:8080" => "listen: 0.0.0.0:8080",
        "pipeline.yaml:10:11:", "0.0.0.0:8080 is reachable from other machines; set status.token_env or status.token_file";
    status_listen_not_an_address: "pipeline.yaml",
        "listen: 127.0.0.1:8080" => "listen: localhost",
        "pipeline.yaml:10:11:", "`localhost` is not an address";

    // ---- pipeline shape ----------------------------------------------------------------------------
    stage_order_delay_before_stock_check: "pipeline.yaml",
        "  - stock-check:\n      on_short: manual\n      low_stock_alert: 5                 # warn when a pool or stock count falls to 5\n  - delay:\n      virtual: { min: 0s, max: 3s }      # human-looking pause before an automatic delivery\n"
        => "  - delay:\n      virtual: { min: 0s, max: 3s }\n  - stock-check:\n      on_short: manual\n      low_stock_alert: 5\n",
        "pipeline.yaml:21:5:", "pipeline[3]: `stock-check` must come before `delay`";
    duplicate_stage: "pipeline.yaml",
        "  - notify:" => "  - ship: {}\n  - notify:",
        "pipeline.yaml:30:5:", "pipeline[5]: stage `ship` appears twice (first at pipeline[4])";

    // ---- chat ---------------------------------------------------------------------------------------
    chat_unknown_llm_key: "pipeline.yaml",
        "      max_chars: 120" => "      max_chars: 120\n      colour: red",
        "pipeline.yaml:68:7:", "chat[6].llm.colour: unknown key `colour`, expected one of: base_url, model";
    chat_bad_regex: "pipeline.yaml",
        "        - any: [怎么用, 怎么激活, 教程]" => "        - regex: \"(怎么用\"",
        "pipeline.yaml:56:18:", "chat[3].keywords.rules[1].regex: `(怎么用` is not a valid regular expression";
    chat_missing_template: "pipeline.yaml",
        "template: chat/usage.txt.j2" => "template: chat/nope.txt.j2",
        "pipeline.yaml:57:21:", "template `chat/nope.txt.j2` does not exist in templates/";
    chat_llm_key_variable_not_set: "pipeline.yaml",
        "      max_chars: 120" => "      max_chars: 120\n      api_key_env: XIANYU_SHOPD_UNSET_TEST_KEY",
        "pipeline.yaml:68:20:", "chat[6].llm.api_key_env: the environment variable XIANYU_SHOPD_UNSET_TEST_KEY is not set";
    chat_stage_order: "pipeline.yaml",
        "  - debounce:" => "  - send: {}\n  - debounce:",
        "pipeline.yaml:50:5:", "chat[3]: `debounce` must come before `send`";
    chat_replies_never_sent: "pipeline.yaml",
        "  - send:\n      delay: { min: 1s, max: 3s }        # a human-looking pause before each reply\n" => "",
        "pipeline.yaml:42:1:", "chat: replies are prepared but never sent";
    chat_floor_above_list_price: "products.yaml",
        "floor: 2399" => "floor: 2999",
        "products.yaml:50:23:", "products[3].bargain.floor: 2999 is above the list price 2599";
    // ---- aftersale: (appended after the last line, 72; `aftersale:` is line 73) -----------
    aftersale_polish_needs_a_window: "pipeline.yaml",
        "# a human-looking pause before each reply\n" => "# a human-looking pause before each reply\naftersale:\n  polish: { enabled: true }\n",
        "pipeline.yaml:74:22:", "aftersale.polish: `enabled: true` needs `window:`";
    aftersale_window_backwards: "pipeline.yaml",
        "# a human-looking pause before each reply\n" => "# a human-looking pause before each reply\naftersale:\n  polish: { enabled: true, window: \"10:00-09:00\" }\n",
        "pipeline.yaml:74:36:", "aftersale.polish.window: `10:00-09:00` is not a daily window";
    aftersale_rate_missing_template: "pipeline.yaml",
        "# a human-looking pause before each reply\n" => "# a human-looking pause before each reply\naftersale:\n  rate: { enabled: true, template: nope.txt.j2 }\n",
        "pipeline.yaml:74:36:", "aftersale.rate.template: template `nope.txt.j2` not found in templates/";
    aftersale_min_gap_too_short: "pipeline.yaml",
        "# a human-looking pause before each reply\n" => "# a human-looking pause before each reply\naftersale:\n  min_gap: 0s\n",
        "pipeline.yaml:74:12:", "aftersale.min_gap: must be at least 1s";
    chat_reply_template_undefined_variable: "pipeline.yaml",
        "reply: 在的，亲～有什么可以帮您？" => "reply: 在的，{{ buyer.name }}",
        "pipeline.yaml:54:18:", "chat[3].keywords.rules[0].reply: `buyer.name` is not defined; buyer has: id, nick";
}

#[test]
fn corpus_is_large_enough() {
    assert!(CORPUS.len() >= 22, "only {} cases", CORPUS.len());
}

#[test]
fn example_config_passes() {
    let out = check(Path::new(EXAMPLE));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr_of(&out));
    assert!(stdout.contains("config OK"), "stdout:\n{stdout}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one-line summary expected:\n{stdout}"
    );

    // The corpus starts from a copy; the copy itself must pass too.
    let tmp = example_copy();
    let out = check(tmp.path());
    assert_eq!(out.status.code(), Some(0), "stderr:\n{}", stderr_of(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config OK"));
}

/// Apply several edits; every one of `expected` must be reported, and the error count must match.
fn assert_all_reported(edits: &[(&str, &str, &str)], expected: &[(&str, &str)]) {
    let tmp = example_copy();
    for (file, from, to) in edits {
        edit(tmp.path(), file, from, to);
    }
    let out = check(tmp.path());
    for (loc, want) in expected {
        assert_reported("all_errors", &out, loc, want);
    }
    let stderr = stderr_of(&out);
    let located: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(P) || l.starts_with(R) || l.starts_with("templates/"))
        .collect();
    assert_eq!(
        located.len(),
        expected.len(),
        "one line per error expected\nstderr:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{} error(s); the config was not accepted",
            expected.len()
        )),
        "stderr:\n{stderr}"
    );
}

#[test]
fn independent_errors_are_all_reported() {
    assert_all_reported(
        &[
            (P, "retry_delay: 5m", "retry_delay: abc"),
            (P, "channels: [log]", "channels: [pager]"),
            (R, "cards: office-2021", "cards: office-2019"),
            (R, "{ min: 1s, max: 3s }", "{ min: 5s, max: 3s }"),
            (R, "stock: unlimited", "stock: lots"),
        ],
        &[
            ("pipeline.yaml:28:20:", "`abc` is not a duration"),
            ("pipeline.yaml:32:18:", "unknown channel `pager`"),
            ("products.yaml:16:12:", "unknown card pool `office-2019`"),
            ("products.yaml:18:19:", "min (5s) is greater than max (3s)"),
            ("products.yaml:35:12:", "write `unlimited`"),
        ],
    );
}

#[test]
fn syntax_errors_in_every_file_are_all_reported() {
    assert_all_reported(
        &[
            (P, "      max_retries: 3", "\tmax_retries: 3"),
            (R, "stock: { quantity: 1 }", "stock: { quantity: 1"),
            (
                "templates/link.txt.j2",
                "{{ product.title }}",
                "{{ product.title }",
            ),
        ],
        &[
            ("pipeline.yaml:27:1:", "cannot start any token"),
            ("products.yaml:44:10:", "did not find expected ',' or '}'"),
            ("templates/link.txt.j2:1:1:", "unexpected `}`"),
        ],
    );
}

#[test]
fn unknown_keys_do_not_hide_other_errors() {
    assert_all_reported(
        &[
            (P, "      max_retries: 3", "      max_retry: 3"),
            (P, "      retry_delay: 5m", "      retry_dealy: 5m"),
            (P, "channels: [log]", "channels: [pager]"),
            (R, "    auto_ship: false ", "    auto_shipp: false "),
            (R, "stock: unlimited", "stock: lots"),
        ],
        &[
            ("pipeline.yaml:27:7:", "did you mean `max_retries`?"),
            ("pipeline.yaml:28:7:", "did you mean `retry_delay`?"),
            ("pipeline.yaml:32:18:", "unknown channel `pager`"),
            ("products.yaml:41:5:", "did you mean `auto_ship`?"),
            ("products.yaml:35:12:", "write `unlimited`"),
        ],
    );
}

#[test]
fn unknown_kind_is_reported_once() {
    assert_all_reported(
        &[(P, "  - ship:", "  - shipp:")],
        &[(
            "pipeline.yaml:24:5:",
            "unknown kind `shipp`, did you mean `ship`?",
        )],
    );
    assert_all_reported(
        &[(P, "type: webhook", "type: webhok")],
        &[(
            "pipeline.yaml:37:5:",
            "unknown kind `webhok`, did you mean `webhook`?",
        )],
    );
}

#[test]
fn template_syntax_error_is_not_also_reported_missing() {
    let tmp = example_copy();
    edit(tmp.path(), "templates/card.txt.j2", "{{ key }}", "{{ key }");
    let out = check(tmp.path());
    let stderr = stderr_of(&out);
    assert_reported("tpl", &out, "templates/card.txt.j2:2:1:", "unexpected `}`");
    assert!(
        !stderr.contains("not found in templates/"),
        "stderr:\n{stderr}"
    );
}

// ---- hostile input (issue 10) ------------------------------------------------------------
// Each of these hung, crashed or passed `check` before: a template copied from the internet,
// a FIFO, a symlink out of the config, a file full of typos, absurd durations.

/// `check` in `dir`, which must finish within `secs` (a hang is a failure, not a stuck test).
fn check_within(dir: &Path, secs: u64) -> Output {
    let child = Command::new(BIN)
        .arg("check")
        .arg("--config-dir")
        .arg(dir)
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run xianyu-shopd check");
    let pid = child.id();
    // Read the pipes while waiting: a full pipe would block the child.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output().unwrap()));
    match rx.recv_timeout(std::time::Duration::from_secs(secs)) {
        Ok(out) => out,
        Err(_) => {
            // SAFETY: signalling the child we spawned.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            panic!("check did not finish within {secs} s");
        }
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0, "mkfifo");
}

#[test]
fn a_looping_template_exceeds_the_render_budget() {
    let tmp = example_copy();
    fs::write(
        tmp.path().join("templates/link.txt.j2"),
        "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}",
    )
    .unwrap();
    let out = check_within(tmp.path(), 60);
    assert_reported(
        "loop",
        &out,
        "templates/link.txt.j2:1:1:",
        "exceeds the render budget",
    );
}

#[test]
fn a_huge_output_template_exceeds_the_render_budget() {
    let tmp = example_copy();
    fs::write(
        tmp.path().join("templates/link.txt.j2"),
        "亲，链接如下\n{% for a in range(100) %}{{ \"x\" * 100000000 }}{% endfor %}",
    )
    .unwrap();
    let out = check_within(tmp.path(), 60);
    assert_reported(
        "huge",
        &out,
        "templates/link.txt.j2:2:1:",
        "exceeds the render budget",
    );
}

#[test]
fn a_fifo_in_place_of_a_config_file_or_template_is_refused_without_blocking() {
    let tmp = example_copy();
    fs::remove_file(tmp.path().join("pipeline.yaml")).unwrap();
    mkfifo(&tmp.path().join("pipeline.yaml"));
    mkfifo(&tmp.path().join("templates/extra.txt.j2"));
    let out = check_within(tmp.path(), 30);
    assert_reported("fifo", &out, "pipeline.yaml:1:1:", "is a FIFO (named pipe)");
    assert_reported(
        "fifo",
        &out,
        "templates/extra.txt.j2:1:1:",
        "not a regular file",
    );
    // An unreadable file is not validated as if it were empty.
    assert!(!stderr_of(&out).contains("at least one account"));
}

#[test]
fn symlinks_out_of_state_and_templates_are_refused() {
    // state/cookies.txt -> /etc/passwd
    let tmp = example_copy();
    edit(
        tmp.path(),
        P,
        "cookies_file: state/cookies-main.txt",
        "cookies_file: state/cookies.txt",
    );
    fs::create_dir(tmp.path().join("state")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("state/cookies.txt")).unwrap();
    assert_reported(
        "cookies link",
        &check(tmp.path()),
        "pipeline.yaml:7:19:",
        "resolves outside state/",
    );
    // state -> /etc
    fs::remove_dir_all(tmp.path().join("state")).unwrap();
    std::os::unix::fs::symlink("/etc", tmp.path().join("state")).unwrap();
    edit(tmp.path(), P, "state/cookies.txt", "state/passwd");
    assert_reported(
        "state link",
        &check(tmp.path()),
        "pipeline.yaml:7:19:",
        "resolves outside state/",
    );
    // templates/x.txt.j2 -> /etc/passwd, included from a delivery template
    let tmp = example_copy();
    std::os::unix::fs::symlink("/etc/passwd", tmp.path().join("templates/x.txt.j2")).unwrap();
    edit(
        tmp.path(),
        "templates/link.txt.j2",
        "{{ product.title }}",
        "{{ product.title }}{% include \"x.txt.j2\" %}",
    );
    let out = check(tmp.path());
    assert_reported(
        "template link",
        &out,
        "templates/x.txt.j2:1:1:",
        "leads out of templates/",
    );
    assert!(!stderr_of(&out).contains("root:"), "{}", stderr_of(&out));
}

#[test]
fn a_thousand_unknown_keys_are_each_reported_in_one_pass() {
    // Issue 10 D14: each unknown key used to re-serialise the whole document (quadratic;
    // 1,000 typos in 137 KB took 21 s in a release build). The figure is measured with
    // `/usr/bin/time` on a release binary (README, 实测数据); here we check every typo is found.
    let tmp = example_copy();
    let mut text = String::from("pools:\n  office-2021: {}\nproducts:\n");
    for i in 0..1000 {
        text.push_str(&format!(
            "  - item_id: \"9{i:011}\"\n    title: 商品 {i} 的标题 Office 激活码 说明文字\n    category: physical\n    auto_shipp: false\n    logistics_company: 顺丰快递\n"
        ));
    }
    assert!(text.len() > 137_000, "{}", text.len());
    fs::write(tmp.path().join("products.yaml"), text).unwrap();
    let out = check_within(tmp.path(), 120);
    let stderr = stderr_of(&out);
    let typos = stderr
        .lines()
        .filter(|l| l.contains("unknown key `auto_shipp`, did you mean `auto_ship`?"))
        .count();
    assert_eq!(typos, 1000, "{}", &stderr[..stderr.len().min(2000)]);
    assert_reported(
        "typos",
        &out,
        "products.yaml:5002:5:",
        "products[999].auto_shipp",
    );
}

#[test]
fn durations_and_counts_are_bounded() {
    assert_all_reported(
        &[
            (
                R,
                "delay: { min: 1s, max: 3s }",
                "delay: { min: 584542000y, max: 584543000y }",
            ),
            (P, "      retry_delay: 5m", "      retry_delay: 31d"),
            (P, "      max_retries: 3", "      max_retries: 1000"),
            (P, "      dedupe_window: 24h", "      dedupe_window: 2y"),
        ],
        &[
            (
                "products.yaml:18:19:",
                "longer than 30 days, the limit for a delay",
            ),
            ("products.yaml:18:36:", "longer than 30 days"),
            ("pipeline.yaml:28:20:", "longer than 30 days"),
            ("pipeline.yaml:27:20:", "must be at most 100 (got 1000)"),
            (
                "pipeline.yaml:14:22:",
                "longer than 1 year, the limit for a timer",
            ),
        ],
    );
    let tmp = example_copy();
    let pipeline = fs::read_to_string(tmp.path().join(P)).unwrap();
    fs::write(
        tmp.path().join(P),
        format!("{pipeline}marketplace:\n  keepalive: 300000000000y\n"),
    )
    .unwrap();
    let line = pipeline.lines().count() + 2;
    assert_reported(
        "keepalive",
        &check(tmp.path()),
        &format!("pipeline.yaml:{line}:14:"),
        "marketplace.keepalive: `300000000000y` is longer than 1 year",
    );
}

#[test]
fn an_integer_too_large_is_said_plainly() {
    let tmp = example_copy();
    edit(
        tmp.path(),
        P,
        "max_retries: 3",
        "max_retries: 99999999999999999999999",
    );
    let out = check(tmp.path());
    assert_reported(
        "overflow",
        &out,
        "pipeline.yaml:27:20:",
        "pipeline[4].ship.max_retries: the number 99999999999999999999999 is too large",
    );
    assert!(!stderr_of(&out).contains("u128"));
}

#[test]
fn an_empty_delivery_template_is_rejected() {
    let tmp = example_copy();
    fs::write(
        tmp.path().join("templates/link.txt.j2"),
        "{% if order.quantity > 99 %}多件请联系{% endif %}\n  \n",
    )
    .unwrap();
    assert_reported(
        "empty",
        &check(tmp.path()),
        "templates/link.txt.j2:1:1:",
        "renders an empty message for the sample order",
    );
}

#[test]
fn untaken_branches_are_checked_for_variables_and_filters() {
    // Issue 10 D15: these passed check (the sample never takes the branch) and failed at send.
    let tmp = example_copy();
    fs::write(
        tmp.path().join("templates/link.txt.j2"),
        "亲，感谢购买「{{ product.title }}」！\n{% if order.quantity > 99 %}\n{{ order.buyer_nik }}{{ order.sku|shout }}{% endif %}",
    )
    .unwrap();
    let out = check(tmp.path());
    assert_reported(
        "undeclared",
        &out,
        "templates/link.txt.j2:3:1:",
        "`order.buyer_nik` is not defined; order has: amount, buyer_id, buyer_nick,",
    );
    assert_reported(
        "filter",
        &out,
        "templates/link.txt.j2:3:1:",
        "unknown filter `shout`",
    );
}
