//! Files that several processes touch: written whole or not at all, and locked; and the
//! signals that ask such a process to stop.
//!
//! [`write_atomic`] writes the bytes to a temp file with a unique name beside the target
//! (`.NAME.XXXXXX.tmp`), syncs it, renames it over the target and syncs the directory: a
//! reader (or a process restarted after a crash) finds the old file or the new one, never a
//! part of one, and two writers of one file never write the same temp file. [`Pending`] is
//! the first half of that (a complete, synced temp file waiting for its rename), for a
//! caller that commits several files at once behind a journal of its own. [`Lock`] is an
//! advisory lock (`flock`) whose file names the holder (host and pid), so that a refused
//! process can say who holds it. [`StopSignal`] turns SIGINT, SIGTERM and SIGUSR1 into a
//! request to stop at a safe point, for the processes that write such files. Errors are `std::io::Error`s (and [`LockError`]);
//! callers add the path to their own error types.
//!
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("config.json");
//! makemore_io::write_atomic(&path, b"{}").unwrap();
//! makemore_io::write_atomic(&path, b"{\"steps\": 1}").unwrap();
//! assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"steps\": 1}");
//! // Nothing is left beside it.
//! assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
//! ```

mod lock;
mod stop;

pub use lock::{hostname, Holder, Lock, LockError};
pub use stop::{signal_name, StopSignal};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The directory `path` is in (`.` for a bare file name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// A new, empty temp file beside `path`, named `.NAME.XXXXXX.tmp` (or, with `keep_ext`,
/// `.NAME.XXXXXX.tmp.EXT`, for writers that choose a format from the extension); it is
/// deleted when dropped unless persisted.
pub fn temp_beside(path: &Path, keep_ext: bool) -> io::Result<tempfile::NamedTempFile> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let suffix = match path.extension().filter(|_| keep_ext) {
        Some(ext) => format!(".tmp.{}", ext.to_string_lossy()),
        None => ".tmp".to_string(),
    };
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(&suffix);
    // As `File::create` would (0666 less the umask), not tempfile's owner-only 0600: the
    // file becomes a checkpoint or a report that others on a shared machine read.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.tempfile_in(parent_of(path))
}

/// True for the names [`temp_beside`] gives (`.NAME.XXXXXX.tmp[.EXT]`): what a crash can
/// leave behind, and what the owner of a directory may delete.
pub fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && (name.ends_with(".tmp") || name.contains(".tmp."))
}

/// The file a name that [`temp_beside`] gave was a temp file for: `model.safetensors` for
/// `.model.safetensors.a1B2c3.tmp`, `loss.png` for `.loss.png.a1B2c3.tmp.png`; `None` for
/// any other name. A writer that cleans up after a crash deletes only its own files' temps.
pub fn temp_target(name: &str) -> Option<&str> {
    if !is_temp_name(name) {
        return None;
    }
    let inner = name.strip_prefix('.')?;
    let stem = match inner.rfind(".tmp") {
        Some(at) => &inner[..at],
        None => return None,
    };
    stem.rsplit_once('.').map(|(target, _random)| target)
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

/// Writes `bytes` to `path` whole or not at all (see the crate docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    Pending::write(path, bytes)?.commit()
}

/// A complete, synced temp file beside its target, not yet renamed over it. Dropped
/// uncommitted, it is deleted; [`Pending::keep`] stops that, for a caller whose journal
/// now names it.
#[derive(Debug)]
pub struct Pending {
    temp: tempfile::TempPath,
    target: PathBuf,
}

impl Pending {
    /// Writes `bytes` into a new temp file beside `target` and syncs it.
    pub fn write(target: &Path, bytes: &[u8]) -> io::Result<Self> {
        let mut file = temp_beside(target, false)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        Ok(Self {
            temp: file.into_temp_path(),
            target: target.to_path_buf(),
        })
    }

    /// The temp file's name (in the target's directory).
    pub fn temp_name(&self) -> String {
        self.temp
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    }

    /// The file this one will replace.
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Renames the temp file over the target and syncs the directory.
    pub fn commit(self) -> io::Result<()> {
        let dir = parent_of(&self.target).to_path_buf();
        self.temp.persist(&self.target).map_err(|e| e.error)?;
        sync_dir(&dir)
    }

    /// Keeps the temp file on disk whatever happens next, returning `(temp, target)`: from
    /// here on the caller renames it (or its journal tells the next process to).
    pub fn keep(self) -> io::Result<(PathBuf, PathBuf)> {
        let temp = self.temp.keep().map_err(|e| e.error)?;
        Ok((temp, self.target))
    }
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
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        // Readable by others, as a file made by File::create is (under the usual umask).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let created = dir.path().join("created");
            fs::File::create(&created).unwrap();
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), mode(&created));
        }
        // A missing directory is an error, not a panic.
        assert!(write_atomic(&dir.path().join("no/such/file"), b"x").is_err());
    }

    #[test]
    fn two_pending_writes_of_one_file_do_not_collide() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let a = Pending::write(&path, b"a").unwrap();
        let b = Pending::write(&path, b"b").unwrap();
        assert_ne!(a.temp_name(), b.temp_name());
        assert!(is_temp_name(&a.temp_name()), "{}", a.temp_name());
        assert!(!is_temp_name("state.json"));
        assert_eq!(temp_target(&a.temp_name()), Some("state.json"));
        assert_eq!(temp_target(".loss.png.a1B2c3.tmp.png"), Some("loss.png"));
        assert_eq!(temp_target("state.json"), None);
        b.commit().unwrap();
        a.commit().unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"a");
        // Dropped uncommitted: gone. Kept: stays until renamed.
        drop(Pending::write(&path, b"c").unwrap());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        let (temp, target) = Pending::write(&path, b"d").unwrap().keep().unwrap();
        assert!(temp.exists());
        fs::rename(temp, target).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"d");
    }

    #[test]
    fn a_kept_extension_stays_last() {
        let dir = tempfile::tempdir().unwrap();
        let t = temp_beside(&dir.path().join("loss.png"), true).unwrap();
        let name = t.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with(".loss.png.") && name.ends_with(".tmp.png"),
            "{name}"
        );
        assert!(is_temp_name(&name));
    }
}
