//! Reading the config only once the files hold still.
//!
//! An editor that truncates and then writes, `git checkout` or a slow copy leaves a file half
//! written for a moment, and a half `products.yaml` is often still valid YAML (issue 10 D7: an
//! auto-ship item turned into a manual physical one for 2.4 s). So a reload takes a
//! [`Snapshot`] (size and modification time of every file the config is made of, cookie files
//! included), waits until no file has changed for [`SETTLE`], loads, and takes the snapshot
//! again: the load counts only when both snapshots are equal. Files that keep changing for
//! [`MAX_WAIT`] are an error; the running config stays.
//!
//! Only `stat` is used here (never an open), so a FIFO cannot block it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use super::{Config, PIPELINE_FILE, PRODUCTS_FILE, TEMPLATES_DIR};
use crate::secret::SecretRef;

/// How long every file must have stayed unchanged before it is read.
pub const SETTLE: Duration = Duration::from_millis(500);
/// How long a reload waits for the files to hold still before giving up.
pub const MAX_WAIT: Duration = Duration::from_secs(10);

/// Size and modification time of each file, by name relative to the config directory.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<String, (u64, Option<SystemTime>)>);

impl Snapshot {
    /// `pipeline.yaml`, `products.yaml`, every file under `templates/` and the cookie files of
    /// `running`'s accounts, as they are now.
    pub fn take(dir: &Path, running: &Config) -> Self {
        let mut files = BTreeMap::new();
        for name in [PIPELINE_FILE, PRODUCTS_FILE] {
            stat(&dir.join(name), name.to_string(), &mut files);
        }
        walk(&dir.join(TEMPLATES_DIR), TEMPLATES_DIR, 0, &mut files);
        for account in &running.accounts {
            if let SecretRef::File(f) = &account.cookies {
                let name = f
                    .path()
                    .strip_prefix(dir)
                    .unwrap_or(f.path())
                    .to_string_lossy()
                    .into_owned();
                stat(f.path(), name, &mut files);
            }
        }
        Self(files)
    }

    /// Names of the files that exist and are not empty.
    pub fn non_empty(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .filter(|(_, (len, _))| *len > 0)
            .map(|(n, _)| n.as_str())
    }

    /// How long ago the most recently changed file changed (zero if in the future).
    fn quiet_for(&self) -> Duration {
        let now = SystemTime::now();
        self.0
            .values()
            .filter_map(|(_, m)| *m)
            .map(|m| now.duration_since(m).unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(Duration::MAX)
    }
}

fn stat(path: &Path, name: String, out: &mut BTreeMap<String, (u64, Option<SystemTime>)>) {
    if let Ok(meta) = std::fs::metadata(path) {
        out.insert(name, (meta.len(), meta.modified().ok()));
    }
}

fn walk(
    dir: &Path,
    prefix: &str,
    depth: usize,
    out: &mut BTreeMap<String, (u64, Option<SystemTime>)>,
) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let path = entry.path();
        let rel = format!("{prefix}/{name}");
        match entry.file_type() {
            Ok(t) if t.is_dir() && depth < 8 => walk(&path, &rel, depth + 1, out),
            Ok(t) if t.is_dir() => {}
            _ => stat(&path, rel, out),
        }
    }
}

/// `load` once every file has held still for [`SETTLE`] and did not change while loading; the
/// result with the snapshot it was loaded from. Blocks (sleeps, stats, whatever `load` does).
pub fn when_stable<T>(
    dir: &Path,
    running: &Config,
    mut load: impl FnMut() -> T,
) -> Result<(T, Snapshot), String> {
    let started = Instant::now();
    let mut before = Snapshot::take(dir, running);
    loop {
        if started.elapsed() > MAX_WAIT {
            return Err(format!(
                "the config files kept changing for {} s; the running config is kept (save again when done)",
                MAX_WAIT.as_secs()
            ));
        }
        let quiet = before.quiet_for();
        if quiet < SETTLE {
            std::thread::sleep(SETTLE - quiet);
            let now = Snapshot::take(dir, running);
            if now != before {
                before = now;
                continue;
            }
        }
        let loaded = load();
        let after = Snapshot::take(dir, running);
        if after == before {
            return Ok((loaded, after));
        }
        before = after;
    }
}
