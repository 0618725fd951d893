//! Advisory locks (`flock`) whose file names the holder.

use std::fmt;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Why a lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error("{path} is held by {holder}")]
    Held {
        /// The lock file.
        path: PathBuf,
        /// Who holds it, as the holder recorded it.
        holder: Holder,
    },
    /// The file system has no advisory locks, so nothing can keep two processes apart.
    #[error("cannot lock {path}: this file system does not support advisory locks (flock); use a local disk, or a shared file system with locking (NFS with its lock service)")]
    Unsupported {
        /// The lock file.
        path: PathBuf,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}")]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The operating-system error.
        source: io::Error,
    },
}

/// Who holds a lock: what the holder wrote into the lock file with [`Lock::claim`]
/// (`pid 1234 on node07 since 2026-12-01 11:00:00 UTC`), or that it wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder(pub String);

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.trim() {
            "" => f.write_str("a process that has not said who it is"),
            s => f.write_str(s),
        }
    }
}

impl Holder {
    fn read(path: &Path) -> Self {
        Holder(
            fs::read_to_string(path)
                .unwrap_or_default()
                .trim()
                .to_string(),
        )
    }
}

/// An advisory lock on a file, released when dropped or when the process ends, however it
/// ends (on a shared file system, when the file server notices that the node is gone).
#[derive(Debug)]
pub struct Lock {
    file: File,
    path: PathBuf,
}

fn lock_error(path: &Path, e: io::Error) -> LockError {
    match e.kind() {
        io::ErrorKind::Unsupported => LockError::Unsupported {
            path: path.to_path_buf(),
        },
        _ => LockError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

fn open_rw(path: &Path) -> Result<File, LockError> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| lock_error(path, e))
}

impl Lock {
    /// Takes the exclusive lock of `path` (created if missing) without waiting; a lock held
    /// elsewhere is [`LockError::Held`], naming the holder.
    pub fn try_exclusive(path: &Path) -> Result<Self, LockError> {
        let file = open_rw(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Self {
                file,
                path: path.to_path_buf(),
            }),
            Err(TryLockError::WouldBlock) => Err(LockError::Held {
                path: path.to_path_buf(),
                holder: Holder::read(path),
            }),
            Err(TryLockError::Error(e)) => Err(lock_error(path, e)),
        }
    }

    /// Takes the exclusive lock of `path` (created if missing), waiting for other holders.
    pub fn exclusive(path: &Path) -> Result<Self, LockError> {
        let file = open_rw(path)?;
        file.lock().map_err(|e| lock_error(path, e))?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
        })
    }

    /// Takes a shared lock of `path`, waiting for an exclusive holder, without writing
    /// anything: the file is opened read-only, and a missing file is `Ok(None)` (no writer
    /// that uses this lock has been there).
    pub fn shared(path: &Path) -> Result<Option<Self>, LockError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(lock_error(path, e)),
        };
        file.lock_shared().map_err(|e| lock_error(path, e))?;
        Ok(Some(Self {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// Whether some process holds `path` exclusively, and who, found without writing
    /// anything (a missing file is held by nobody).
    pub fn holder(path: &Path) -> Result<Option<Holder>, LockError> {
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(lock_error(path, e)),
        };
        match file.try_lock_shared() {
            Ok(()) => Ok(None),
            Err(TryLockError::WouldBlock) => Ok(Some(Holder::read(path))),
            Err(TryLockError::Error(e)) => Err(lock_error(path, e)),
        }
    }

    /// Records this process as the holder (host, pid and time), for the message that a
    /// refused process prints.
    pub fn claim(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        let mut f = &self.file;
        f.write_all(
            format!(
                "pid {} on {} since {}\n",
                std::process::id(),
                hostname(),
                utc_now()
            )
            .as_bytes(),
        )
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// This machine's name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`), or `unknown host`.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown host".into())
}

/// The current time as `YYYY-MM-DD HH:MM:SS UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 as a (year, month, day) of the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_names_its_holder_and_a_reader_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        assert!(Lock::shared(&path).unwrap().is_none());
        assert!(!path.exists(), "a reader created the lock file");
        assert_eq!(Lock::holder(&path).unwrap(), None);
        let mut held = Lock::try_exclusive(&path).unwrap();
        held.claim().unwrap();
        let who = Lock::holder(&path).unwrap().unwrap().to_string();
        assert!(
            who.starts_with(&format!("pid {} on ", std::process::id())),
            "{who}"
        );
        assert!(who.contains(&hostname()) && who.ends_with(" UTC"), "{who}");
        match Lock::try_exclusive(&path) {
            Err(LockError::Held { holder, .. }) => assert_eq!(holder.to_string(), who),
            other => panic!("{other:?}"),
        }
        drop(held);
        let _shared = Lock::shared(&path).unwrap().unwrap();
        let _another = Lock::shared(&path).unwrap().unwrap();
        assert!(matches!(
            Lock::try_exclusive(&path),
            Err(LockError::Held { .. })
        ));
    }

    #[test]
    fn dates_are_the_calendar_ones() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_788), (2026, 12, 1));
    }
}
