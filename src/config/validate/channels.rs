//! `channels:`: each vendor checks its own entry (`channels/<vendor>.rs`); this file only
//! lends them the loader's report, so their problems carry `file:line:col` like every other.

use super::*;
use crate::channels::{self, Report};

/// The validator while it reads one file: where a vendor's findings are reported.
struct InFile<'v, 'a> {
    v: &'v mut Validator<'a>,
    doc: &'v YamlDoc,
}

impl Report for InFile<'_, '_> {
    fn err(&mut self, path: &str, message: String) {
        self.v.err(self.doc, path, message);
    }

    fn key_err(&mut self, path: &str, message: String) {
        self.v.key_err(self.doc, path, message);
    }

    fn duration(&mut self, path: &str, text: Option<&str>, default: Duration) -> Duration {
        self.v.duration(self.doc, path, text, default)
    }

    fn dir(&self) -> &Path {
        self.v.dir
    }
}

impl Validator<'_> {
    pub(super) fn channels(
        &mut self,
        doc: &YamlDoc,
        raw: &BTreeMap<String, channels::RawChannel>,
    ) -> BTreeMap<String, ChannelConfig> {
        channels::check_all(raw, &mut InFile { v: self, doc })
    }
}
