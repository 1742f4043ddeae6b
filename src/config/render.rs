//! The render budget: the one place a seller's minijinja template is built into an environment,
//! rendered and checked statically. Delivery templates (`templates.rs`), notification templates
//! (`notify_templates.rs`) and every sample render at load go through [`environment`] and
//! [`render`]; nothing else calls minijinja's `render`.
//!
//! A template copied from the internet can loop (`{% for a in range(100000) %}` three deep) or
//! build a huge string (`{{ "x" * 100000000 }}`). minijinja's fuel charges every instruction
//! and every byte or list slot a template creates, and checks before a known-size allocation,
//! so [`FUEL`] bounds both time and memory; the output is capped separately at [`MAX_OUTPUT`]
//! bytes. Either limit ends the render with [`RenderError::Budget`], which names the file
//! (`templates/link.txt.j2: exceeds the render budget`), at `check`, at reload and at send time.
//!
//! [`static_issues`] finds what a sample render cannot: variables, filters and tests used only
//! in a branch the sample does not take.
//!
//! Environments run in debug mode so an undefined-value error names the expression
//! (`` `order.buyer_nik` is undefined ``); the debug snapshot that minijinja attaches to the error
//! holds context values (card keys), so only [`RenderError`]'s own text ever leaves this module.

use std::collections::BTreeSet;
use std::io::Write;

use minijinja::machinery::{self, Instruction, Instructions};
use minijinja::{Environment, ErrorKind, UndefinedBehavior, Value};
use serde::Serialize;

/// minijinja fuel for one render: one unit per instruction, plus one per 64 bytes created.
/// Delivering 1,000 keys through a loop costs about 10,000.
pub const FUEL: u64 = 200_000;
/// Bytes one render may produce.
pub const MAX_OUTPUT: usize = 128 * 1024;

/// A new environment with the budget and strict undefined behaviour.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_fuel(Some(FUEL));
    env.set_debug(true);
    env
}

/// [`environment`] for texts a person reads line by line (chat replies, notifications): a
/// `{% if %}` or `{% for %}` line leaves no blank line behind.
pub fn text_environment() -> Environment<'static> {
    let mut env = environment();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .build()
            .expect("default delimiters are valid"),
    );
    env
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RenderError {
    #[error("{file}: template does not exist")]
    Missing { file: String },
    /// `line` is where the budget ran out, when known.
    #[error(
        "{file}: exceeds the render budget (at most {FUEL} steps and {} KiB of text); a loop or a repeated string is too big",
        MAX_OUTPUT / 1024
    )]
    Budget { file: String, line: usize },
    #[error("{file}:{line}: {message}")]
    Failed {
        file: String,
        line: usize,
        message: String,
    },
}

impl RenderError {
    /// As a located problem, for the config loader.
    pub fn located(&self) -> Problem {
        let (file, line, message) = match self {
            Self::Missing { file } => (file, 1, "template does not exist".to_string()),
            Self::Budget { file, line } => {
                let full = self.to_string();
                let message = full.strip_prefix(&format!("{file}: ")).unwrap_or(&full);
                (file, *line, message.to_string())
            }
            Self::Failed {
                file,
                line,
                message,
            } => (file, *line, message.clone()),
        };
        Problem {
            file: file.clone(),
            line,
            message,
        }
    }
}

/// One problem with a template, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `templates/card.txt.j2`
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// Render `name` of `env` with `ctx` within the budget. `dir` is how files of this environment
/// are named to the seller (`templates/`, `templates/notify/`).
pub fn render(
    env: &Environment<'_>,
    dir: &str,
    name: &str,
    ctx: &impl Serialize,
) -> Result<String, RenderError> {
    let tmpl = env.get_template(name).map_err(|_| RenderError::Missing {
        file: format!("{dir}{name}"),
    })?;
    let mut out = Capped::default();
    let result = tmpl.render_captured_to(Value::from(minijinja::value::Serde(ctx)), &mut out);
    match result {
        Ok(_) if !out.over => Ok(String::from_utf8_lossy(&out.bytes).into_owned()),
        Ok(_) => Err(RenderError::Budget {
            file: format!("{dir}{name}"),
            line: 1,
        }),
        Err(e) => Err(describe(&e, dir, name, out.over)),
    }
}

fn describe(e: &minijinja::Error, dir: &str, name: &str, over: bool) -> RenderError {
    // An included template names itself in the error.
    let file = format!("{dir}{}", e.name().unwrap_or(name));
    let line = e.line().unwrap_or(1);
    if over || matches!(e.kind(), ErrorKind::OutOfFuel) {
        return RenderError::Budget { file, line };
    }
    let message = match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    };
    RenderError::Failed {
        file,
        line,
        message,
    }
}

/// Collects output and refuses to grow past [`MAX_OUTPUT`].
#[derive(Default)]
struct Capped {
    bytes: Vec<u8>,
    over: bool,
}

impl Write for Capped {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT {
            self.over = true;
            return Err(std::io::Error::other("render output over the budget"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Variables `name` uses that `sample` (what the template sees) does not have, and filters or
/// tests that do not exist, wherever they are written, branches not taken included. Templates
/// it includes by a literal name are checked for filters and tests (their variables may come
/// from the including template, so they are left to the sample render).
pub fn static_issues(
    env: &Environment<'_>,
    dir: &str,
    name: &str,
    sample: &serde_json::Value,
) -> Vec<Problem> {
    let mut issues = Vec::new();
    let Ok(tmpl) = env.get_template(name) else {
        return issues;
    };
    let globals: BTreeSet<String> = env.globals().map(|(n, _)| n.to_string()).collect();
    let mut used: Vec<String> = tmpl.undeclared_variables(true).into_iter().collect();
    used.sort();
    for var in used {
        if let Some(message) = unknown_variable(&var, sample, &globals) {
            issues.push(Problem {
                file: format!("{dir}{name}"),
                line: line_of(tmpl.source(), &var),
                message,
            });
        }
    }
    let mut seen = BTreeSet::new();
    unknown_callables(env, dir, name, &mut seen, &mut issues);
    issues
}

/// `order.buyer_nik` → "`order.buyer_nik` is not defined (order has: …)" when the sample lacks it.
fn unknown_variable(
    var: &str,
    sample: &serde_json::Value,
    globals: &BTreeSet<String>,
) -> Option<String> {
    let mut parts = var.split('.');
    let root = parts.next()?;
    let Some(mut cur) = sample.get(root) else {
        if globals.contains(root) {
            return None;
        }
        let mut known: Vec<&str> = sample
            .as_object()
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        known.sort_unstable();
        return Some(format!(
            "`{root}` is not defined; this template sees: {}",
            known.join(", ")
        ));
    };
    let mut path = root.to_string();
    for part in parts {
        let serde_json::Value::Object(fields) = cur else {
            return None; // an attribute of a string or list: left to the sample render
        };
        let Some(next) = fields.get(part) else {
            let mut known: Vec<&str> = fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            return Some(format!(
                "`{path}.{part}` is not defined; {path} has: {}",
                known.join(", ")
            ));
        };
        path = format!("{path}.{part}");
        cur = next;
    }
    None
}

fn unknown_callables(
    env: &Environment<'_>,
    dir: &str,
    name: &str,
    seen: &mut BTreeSet<String>,
    issues: &mut Vec<Problem>,
) {
    if !seen.insert(name.to_string()) {
        return;
    }
    let Ok(tmpl) = env.get_template(name) else {
        return;
    };
    let compiled = machinery::get_compiled_template(&tmpl);
    let mut included = Vec::new();
    for instrs in std::iter::once(&compiled.instructions).chain(compiled.blocks.values()) {
        scan(env, &format!("{dir}{name}"), instrs, issues, &mut included);
    }
    for inc in included {
        unknown_callables(env, dir, &inc, seen, issues);
    }
}

/// One instruction list: unknown filters and tests, and literal includes / extends.
fn scan(
    env: &Environment<'_>,
    file: &str,
    instrs: &Instructions<'_>,
    issues: &mut Vec<Problem>,
    included: &mut Vec<String>,
) {
    let mut prev: Option<&Instruction<'_>> = None;
    let mut pc = 0;
    while let Some(ins) = instrs.get(pc) {
        let problem = match ins {
            Instruction::ApplyFilter(f, ..) if !exists(env, "{{ none|NAME }}", f) => {
                Some(format!("unknown filter `{f}`"))
            }
            Instruction::PerformTest(t, ..) if !exists(env, "{{ none is NAME }}", t) => {
                Some(format!("unknown test `{t}`"))
            }
            Instruction::Include(_) | Instruction::LoadBlocks => {
                if let Some(Instruction::LoadConst(v)) = prev {
                    included.extend(v.as_str().map(str::to_string));
                }
                None
            }
            _ => None,
        };
        if let Some(message) = problem {
            issues.push(Problem {
                file: file.to_string(),
                line: instrs.get_line(pc).unwrap_or(1),
                message,
            });
        }
        prev = Some(ins);
        pc += 1;
    }
}

/// Whether the filter or test `what` exists in `env`: minijinja looks them up only when they
/// run, so run it once on `none` and see whether the error is "unknown".
fn exists(env: &Environment<'_>, probe: &str, what: &str) -> bool {
    match env.render_str(&probe.replace("NAME", what), ()) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::UnknownFilter | ErrorKind::UnknownTest),
    }
}

/// The 1-based line where `var` is first written (its first segment, if the whole is not).
fn line_of(source: &str, var: &str) -> usize {
    let at = source
        .find(var)
        .or_else(|| source.find(var.split('.').next().unwrap_or(var)))
        .unwrap_or(0);
    source[..at].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(name: &'static str, source: &'static str) -> Environment<'static> {
        let mut env = environment();
        env.add_template(name, source).unwrap();
        env
    }

    #[test]
    fn a_loop_and_a_huge_string_stop_at_the_budget_and_name_the_file() {
        let looping = "{% for a in range(100000) %}{% for b in range(100000) %}{% for c in range(100000) %}x{% endfor %}{% endfor %}{% endfor %}";
        let huge = r#"{% for a in range(100) %}{{ "x" * 100000000 }}{% endfor %}"#;
        let wide = r#"{% for a in range(100000) %}{{ "y" * 1000 }}{% endfor %}"#;
        for source in [looping, huge, wide] {
            let env = env_with("link.txt.j2", source);
            let started = std::time::Instant::now();
            let err = render(&env, "templates/", "link.txt.j2", &()).unwrap_err();
            assert!(
                matches!(&err, RenderError::Budget { file, .. } if file == "templates/link.txt.j2")
            );
            assert!(
                err.to_string()
                    .starts_with("templates/link.txt.j2: exceeds the render budget"),
                "{err}"
            );
            assert!(started.elapsed() < std::time::Duration::from_secs(20));
        }
    }

    #[test]
    fn an_ordinary_template_renders_a_thousand_keys() {
        let env = env_with(
            "card.txt.j2",
            "{% for k in cards %}{{ loop.index }}: {{ k }}\n{% endfor %}",
        );
        let cards: Vec<String> = (0..1000).map(|i| format!("KEY-{i:06}-ABCDEFGH")).collect();
        let text = render(
            &env,
            "templates/",
            "card.txt.j2",
            &serde_json::json!({ "cards": cards }),
        )
        .unwrap();
        assert_eq!(text.lines().count(), 1000);
    }

    #[test]
    fn runtime_errors_name_the_variable_and_never_the_values() {
        let env = env_with("x.txt.j2", "line one\n{{ order.buyer_nik }} {{ cards[0] }}");
        let ctx =
            serde_json::json!({ "order": { "buyer_nick": "n" }, "cards": ["SECRET-KEY-123"] });
        let err = render(&env, "templates/", "x.txt.j2", &ctx)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("templates/x.txt.j2:2:"), "{err}");
        assert!(err.contains("`order.buyer_nik` is undefined"), "{err}");
        assert!(!err.contains("SECRET-KEY"), "{err}");
    }

    #[test]
    fn untaken_branches_are_checked_statically() {
        let env = env_with(
            "x.txt.j2",
            "{% if order.quantity > 100 %}\n{{ order.buyer_nik }}{{ nope }}{{ 1|nofilter }}{% if 1 is notatest %}{% endif %}{% endif %}{% for k in cards %}{{ k|upper }}{{ loop.index }}{% endfor %}{{ range(3)|join }}",
        );
        let sample =
            serde_json::json!({ "order": { "quantity": 1, "buyer_nick": "n" }, "cards": ["a"] });
        let issues = static_issues(&env, "templates/", "x.txt.j2", &sample);
        let messages: Vec<&str> = issues.iter().map(|i| i.message.as_str()).collect();
        assert_eq!(issues.len(), 4, "{messages:?}");
        assert!(messages[0].contains("`nope` is not defined; this template sees: cards, order"));
        assert!(
            messages[1]
                .contains("`order.buyer_nik` is not defined; order has: buyer_nick, quantity")
        );
        assert!(messages.contains(&"unknown filter `nofilter`"));
        assert!(messages.contains(&"unknown test `notatest`"));
        assert!(
            issues
                .iter()
                .all(|i| i.line == 2 && i.file == "templates/x.txt.j2"),
            "{issues:?}"
        );
    }
}
