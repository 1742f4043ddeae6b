//! Configuration: `pipeline.yaml`, `products.yaml` and `templates/` → one validated [`Config`].
//!
//! Loading is three steps, in the spirit of ripgrep's low/high args and Vector's validate:
//! `yaml` parses text and remembers positions, `raw` holds what was written, `validate` checks
//! everything and collects **all** problems as `file:line:col: message`, and only a fully valid
//! result becomes a [`Config`]. The same loader serves `check`, start-up and hot reload, so
//! "check passes" means "the daemon will accept it".

pub mod aftersale;
pub mod chat;
pub mod chat_view;
pub mod delivery;
pub mod model;
pub mod notify_templates;
pub mod overlay;
pub mod raw;
pub mod raw_chat;
pub mod reload;
pub mod render;
pub mod stable;
mod stage_kind;
pub mod supplier;
pub mod template_files;
pub mod templates;
mod validate;
pub mod watch;
pub mod yaml;
mod yaml_de;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use delivery::{Blacklist, DeliveryImage, DeliveryOptions, MessageShape, Proof};
pub use model::*;
pub use notify_templates::NotifyTemplates;
pub use stage_kind::StageKind;
pub use yaml::Pos;

pub const PIPELINE_FILE: &str = "pipeline.yaml";
pub const PRODUCTS_FILE: &str = "products.yaml";
pub const TEMPLATES_DIR: &str = "templates";

/// One problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

impl ConfigError {
    pub fn at(file: &str, pos: Pos, message: String) -> Self {
        Self {
            file: file.to_string(),
            line: pos.line,
            col: pos.col,
            message,
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.col, self.message
        )
    }
}

/// Every problem found in one load, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Load and validate the config in `dir`.
pub fn load(dir: &Path) -> Result<Arc<Config>, ConfigErrors> {
    load_with(dir, &overlay::Overlay::default())
}

/// [`load`] with `overlay` laid over `pipeline.yaml` before validation (`demo`).
pub fn load_with(dir: &Path, overlay: &overlay::Overlay) -> Result<Arc<Config>, ConfigErrors> {
    validate::load_dir(dir, overlay).map(Arc::new)
}

/// The version the files in `dir` have now (what [`load`] would report if they are valid),
/// read within the same limits; for "files changed but not applied".
pub fn disk_version(dir: &Path) -> String {
    validate::disk_version(dir)
}

/// Content hash of everything that makes up a config, short enough to show.
pub fn version_of(parts: &[(&str, &[u8])]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, bytes) in parts {
        h.update(name.as_bytes());
        h.update([0]);
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    hex::encode(&h.finalize()[..6])
}

/// The running config, swapped atomically on reload; readers take one snapshot per unit of work.
pub type ConfigHandle = Arc<arc_swap::ArcSwap<Config>>;

pub fn handle(config: Arc<Config>) -> ConfigHandle {
    Arc::new(arc_swap::ArcSwap::new(config))
}
