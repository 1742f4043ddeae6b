//! The store file is checked before redb opens it (issue 10 D3): redb turns an empty file into
//! a new, empty database, so a 0-byte `shop.redb` (an interrupted copy, a full disk, an editor)
//! used to become a shop with no orders and no keys without a word. A file too short to be a
//! redb database is refused with the way back; a full-size file that is not one (a flipped
//! magic byte) is redb's to report, and `handle.rs` names it damaged.

use std::path::Path;

use super::StoreError;

/// redb's header fills the first page; a database file is never shorter.
pub(super) const MIN_STORE_BYTES: u64 = 4096;
/// `Ok` when `path` does not exist (a new shop) or is long enough to be a redb database.
pub(super) fn refuse_unusable(path: &Path) -> Result<(), StoreError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::StateDir(path.to_path_buf(), e)),
    };
    let len = meta.len();
    let unusable = |detail: String| StoreError::Unusable {
        path: path.to_path_buf(),
        detail,
    };
    if !meta.is_file() {
        return Err(unusable("不是普通文件 (not a regular file)".into()));
    }
    if len < MIN_STORE_BYTES {
        return Err(unusable(format!(
            "只有 {len} 字节，数据库至少有 {MIN_STORE_BYTES} 字节 (only {len} bytes)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_short_files_are_refused_a_missing_one_is_a_new_shop() {
        let dir = std::env::temp_dir().join(format!("shopd-file-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("shop.redb");
        assert!(refuse_unusable(&path).is_ok(), "no file yet: a new shop");
        for (bytes, says) in [
            (Vec::new(), "只有 0 字节"),
            (b"redb".repeat(10), "只有 40 字节"),
        ] {
            std::fs::write(&path, &bytes).unwrap();
            let err = refuse_unusable(&path).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
            assert!(err.contains("backup"), "says how to restore: {err}");
        }
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        assert!(refuse_unusable(&path).is_ok(), "full size: redb's to judge");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
