//! Files written whole or not at all.
//!
//! [`write_atomic`] writes the bytes to [`tmp_path`] beside the target, syncs them, renames
//! the temp file over the target and syncs the directory: a reader (or a process restarted
//! after a crash) finds the old file or the new one, never a part of one. Errors are
//! `std::io::Error`s; callers add the path to their own error types.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("config.json");
//! makemore_io::write_atomic(&path, b"{}").unwrap();
//! makemore_io::write_atomic(&path, b"{\"steps\": 1}").unwrap();
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"steps\": 1}");
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// `DIR/NAME.tmp` for `DIR/NAME`: where a file is written before it replaces `NAME`.
pub fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// Writes `bytes` to `path` (created or truncated) and syncs them to the disk.
pub fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// Syncs a directory, so that renames in it survive a crash. File systems that cannot sync
/// a directory (`EINVAL`) are not an error.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    let d = fs::File::open(dir)?;
    match d.sync_all() {
        Err(e) if e.kind() != io::ErrorKind::InvalidInput => Err(e),
        _ => Ok(()),
    }
}

/// Renames `tmp` (already complete) over `path`, then syncs the directory.
pub fn replace(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)?;
    sync_dir(
        path.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
}

/// Writes `bytes` to `path` whole or not at all (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    write_synced(&tmp, bytes)?;
    replace(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_files_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.md");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two, longer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two, longer");
        assert_eq!(tmp_path(&path), dir.path().join("a.md.tmp"));
        assert!(!tmp_path(&path).exists());
        // A missing directory is an error, not a panic.
        assert!(write_atomic(&dir.path().join("no/such/file"), b"x").is_err());
    }
}
