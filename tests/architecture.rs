//! The structure rules of ARCHITECTURE.md, checked on every `cargo test`: no cycle between the
//! top-level modules of `src/` (`.ci/module-cycles`, no allow-list) and a
//! code-map entry for every top-level module (`.ci/code-map`). The checks are Python scripts
//! so `.ci/run` can run them before the build; this test runs the same scripts, so a change
//! that breaks a rule fails here too. Without `python3` the test is skipped with a message on
//! a developer machine and fails when `CI` is set.

use std::path::Path;
use std::process::Command;

fn run_check(script: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = match Command::new("python3")
        .arg(root.join(".ci").join(script))
        .current_dir(root)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(!ci, "python3 is needed for .ci/{script} in CI: {e}");
            eprintln!("SKIPPED .ci/{script}: cannot run python3 ({e})");
            return;
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        ".ci/{script} failed:\n{stdout}{stderr}"
    );
}

#[test]
fn top_level_modules_form_no_cycle() {
    run_check("module-cycles");
}

#[test]
fn the_code_map_names_every_top_level_module() {
    run_check("code-map");
}
