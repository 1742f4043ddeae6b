//! Reading `templates/`: every file once per load, through [`crate::files`], so the delivery,
//! notification and version code all see the same bytes and none of them reads the disk again.
//!
//! Rules, each an error with the file's name (`templates/x.txt.j2: …`): only regular files
//! (a FIFO is refused without blocking), at most [`files::MAX_TEMPLATE_FILE`] each,
//! [`MAX_FILES`] in all and [`MAX_TOTAL`] bytes together, UTF-8; a file must resolve, symlinks
//! followed, inside the config directory's `templates/` (a link to `/etc/passwd` would otherwise
//! be included in a message to a buyer); `templates/` itself must not lead out of the config
//! directory; links to directories are not followed (they could loop). Dotfiles (editors' swap
//! files) are skipped.

use std::path::Path;

use super::TEMPLATES_DIR;
use crate::files;

/// Files under `templates/`, all subdirectories included.
pub const MAX_FILES: usize = 1_000;
/// Bytes of all template files together.
pub const MAX_TOTAL: u64 = 16 * 1024 * 1024;
/// Directory levels below `templates/`.
const MAX_DEPTH: usize = 8;

/// The sources under `templates/`, by name relative to it (`card.txt.j2`, `notify/x.txt.j2`).
#[derive(Debug, Default, Clone)]
pub struct TemplateFiles {
    /// Sorted by name.
    pub files: Vec<(String, String)>,
}

/// A file under `templates/` that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unreadable {
    /// Relative to `templates/`; empty for the directory itself.
    pub name: String,
    pub message: String,
}

impl TemplateFiles {
    /// Read `config_dir/templates/`. A missing directory is no templates, not an error.
    pub fn read(config_dir: &Path) -> (Self, Vec<Unreadable>) {
        let root = config_dir.join(TEMPLATES_DIR);
        let mut walk = Walk::default();
        match std::fs::symlink_metadata(&root) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => walk.fail("", format!("cannot be read: {e}")),
            Ok(_) => match files::inside(&root, config_dir, TEMPLATES_DIR) {
                Ok(true) => walk.dir(&root, &root, config_dir, 0),
                Ok(false) => walk.fail(
                    "",
                    "is a symbolic link out of the config directory; keep the templates in it"
                        .into(),
                ),
                Err(e) => walk.fail("", format!("cannot be resolved: {e}")),
            },
        }
        walk.files.sort();
        (Self { files: walk.files }, walk.errors)
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.files
            .binary_search_by(|(n, _)| n.as_str().cmp(name))
            .ok()
            .map(|i| self.files[i].1.as_str())
    }
}

#[derive(Default)]
struct Walk {
    files: Vec<(String, String)>,
    errors: Vec<Unreadable>,
    total: u64,
}

impl Walk {
    fn fail(&mut self, name: &str, message: String) {
        self.errors.push(Unreadable {
            name: name.to_string(),
            message,
        });
    }

    fn dir(&mut self, root: &Path, dir: &Path, config_dir: &Path, depth: usize) {
        let entries = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) => return self.fail(&relative(root, dir), format!("cannot be read: {e}")),
        };
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            let hidden = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_none_or(|n| n.starts_with('.'));
            if !hidden {
                self.entry(root, &path, config_dir, depth);
            }
        }
    }

    fn entry(&mut self, root: &Path, path: &Path, config_dir: &Path, depth: usize) {
        let name = relative(root, path);
        let meta = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => return self.fail(&name, format!("cannot be read: {e}")),
        };
        if meta.is_dir() {
            if depth >= MAX_DEPTH {
                return self.fail(
                    &name,
                    format!("is nested deeper than {MAX_DEPTH} directories"),
                );
            }
            return self.dir(root, path, config_dir, depth + 1);
        }
        if meta.file_type().is_symlink() {
            match files::inside(path, config_dir, TEMPLATES_DIR) {
                Ok(true) if path.is_dir() => {
                    return self.fail(&name, "is a symbolic link to a directory; links to directories are not followed, copy the files instead".into());
                }
                Ok(true) => {}
                Ok(false) => {
                    return self.fail(&name, "is a symbolic link that leads out of templates/; templates must be files inside templates/".into());
                }
                Err(e) => return self.fail(&name, format!("cannot be resolved: {e}")),
            }
        }
        if self.files.len() >= MAX_FILES {
            return self.fail(
                &name,
                format!("templates/ holds more than {MAX_FILES} files"),
            );
        }
        match files::read_text(path, files::MAX_TEMPLATE_FILE) {
            Ok(text) => {
                self.total += text.len() as u64;
                if self.total > MAX_TOTAL {
                    return self.fail(
                        &name,
                        format!(
                            "the files in templates/ hold more than {MAX_TOTAL} bytes together"
                        ),
                    );
                }
                self.files.push((name, text));
            }
            Err(e) => self.fail(&name, e.to_string()),
        }
    }
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}
