//! Bounded reads of the seller's files: `pipeline.yaml`, `products.yaml`, templates and secret
//! files. The one way the daemon reads a file that a seller (or a copied tutorial) controls.
//!
//! Only a regular file below a size limit is read. The file is opened with `O_NONBLOCK` and its
//! type and size are checked on the opened handle before a byte is read: a FIFO put where
//! `pipeline.yaml` was would otherwise block the reader for ever (and with it `check`, a reload
//! or the cookie poll), and `/dev/zero` behind a symlink would never end. The size is checked
//! again while reading, so a file that grows meanwhile is still cut off at the limit.
//!
//! Also [`inside`], the one containment rule for paths that must stay below a directory
//! (secret files below `state/`, templates below `templates/`), on canonical paths so that a
//! symlink cannot lead out.
//!
//! A leaf: `config` and `secret` import it; it imports nothing of this crate.

use std::io::Read;
use std::path::{Path, PathBuf};

/// `pipeline.yaml` and `products.yaml`.
pub const MAX_CONFIG_FILE: u64 = 8 * 1024 * 1024;
/// One template file.
pub const MAX_TEMPLATE_FILE: u64 = 256 * 1024;
/// One secret file (cookies, a token, a webhook URL).
pub const MAX_SECRET_FILE: u64 = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("does not exist")]
    NotFound,
    #[error("is a {0}, not a regular file; only regular files are read")]
    NotRegular(&'static str),
    #[error("is {size} bytes; the limit is {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
    #[error("is not UTF-8 text")]
    NotUtf8,
    #[error("cannot be read: {0}")]
    Io(std::io::Error),
}

impl From<std::io::Error> for ReadError {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::NotFound {
            Self::NotFound
        } else {
            Self::Io(e)
        }
    }
}

/// The bytes of the regular file at `path` (symlinks followed), at most `limit` of them.
pub fn read_bytes(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let file = open_nonblocking(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge {
            size: meta.len(),
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    let read = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
    if read > limit {
        return Err(ReadError::TooLarge { size: read, limit });
    }
    Ok(bytes)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bytes(path, limit)?).map_err(|_| ReadError::NotUtf8)
}

/// Whether `path` resolves (every symlink followed) to somewhere below `dir/sub`, where `dir`
/// is resolved but `sub` is taken literally: `state/` that is itself a symlink to `/etc` leads
/// out of the config directory, so nothing below it is inside. A path that does not exist is
/// judged by its nearest existing ancestor, so a secret file the seller has not created yet is
/// still refused when `state/` leads elsewhere.
pub fn inside(path: &Path, dir: &Path, sub: &str) -> std::io::Result<bool> {
    let root = dir.canonicalize()?.join(sub);
    Ok(resolve_existing(path)?.starts_with(&root))
}

/// `path` canonicalised as far as it exists, with the missing tail appended unchanged.
fn resolve_existing(path: &Path) -> std::io::Result<PathBuf> {
    let mut missing = Vec::new();
    let mut cur = path.to_path_buf();
    loop {
        match cur.canonicalize() {
            Ok(real) => {
                return Ok(missing
                    .iter()
                    .rev()
                    .fold(real, |p, c: &std::ffi::OsString| p.join(c)));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let Some(name) = cur.file_name().map(ToOwned::to_owned) else {
                    return Err(e);
                };
                missing.push(name);
                if !cur.pop() || cur.as_os_str().is_empty() {
                    cur = PathBuf::from(".");
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// What kind of file this is, in words, for an error message.
pub fn kind_of(t: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if t.is_fifo() {
            return "FIFO (named pipe)";
        }
        if t.is_socket() {
            return "socket";
        }
        if t.is_char_device() || t.is_block_device() {
            return "device";
        }
    }
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symbolic link"
    } else if t.is_file() {
        "regular file"
    } else {
        "special file"
    }
}

#[cfg(unix)]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

#[cfg(not(unix))]
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.yaml");
        std::fs::write(&p, "x: 1\n").unwrap();
        assert_eq!(read_text(&p, 5).unwrap(), "x: 1\n");
        assert!(matches!(
            read_text(&p, 4),
            Err(ReadError::TooLarge { size: 5, limit: 4 })
        ));
        assert!(matches!(
            read_text(&dir.path().join("none"), 9),
            Err(ReadError::NotFound)
        ));
        assert!(matches!(
            read_text(dir.path(), 9),
            Err(ReadError::NotRegular("directory"))
        ));
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(matches!(read_text(&p, 9), Err(ReadError::NotUtf8)));
    }

    #[cfg(unix)]
    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pipeline.yaml");
        let c = std::ffi::CString::new(p.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_text(&p, 1024).unwrap_err();
        assert!(err.to_string().contains("FIFO"), "{err}");
        assert!(matches!(
            read_text(Path::new("/dev/zero"), 1024),
            Err(ReadError::NotRegular("device"))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn containment_follows_symlinks_and_missing_tails() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", state.join("out")).unwrap();
        std::fs::write(state.join("in"), "x").unwrap();
        let d = dir.path();
        assert!(inside(&state.join("in"), d, "state").unwrap());
        assert!(inside(&state.join("not/yet"), d, "state").unwrap());
        assert!(!inside(&state.join("out"), d, "state").unwrap());
        assert!(!inside(&state.join("../x"), d, "state").unwrap());
        // `state -> /etc`: nothing below it is inside, existing or not.
        let other = tempfile::tempdir().unwrap();
        std::fs::remove_dir_all(&state).unwrap();
        std::os::unix::fs::symlink("/etc", &state).unwrap();
        assert!(!inside(&state.join("passwd"), d, "state").unwrap());
        assert!(!inside(&state.join("nope"), d, "state").unwrap());
        assert!(!inside(&other.path().join("x"), d, "state").unwrap());
    }
}
