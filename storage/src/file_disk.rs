//! `FileDisk`: the production adapter of the disk seam over real files (`std::fs`).
//!
//! This is the only file in gregor-storage allowed to touch `std::fs`. It adds no policy: each
//! method is one system call (or a short sequence) with the durability meaning the
//! [`gregor_core::disk`] contract gives it. `sync` is `fdatasync`; `sync_dir` opens the directory
//! and `fsync`s it, which is what makes creations, renames and removals durable on Linux.
//!
//! [`FileDisk::lock_dir`] is Kafka's log-directory lock: an exclusive OS lock (`flock`) on the
//! directory's `.lock` file, held for the life of the returned [`DirLock`]. The kernel drops it
//! when the process ends in any way (`kill -9` included), so a crashed broker never leaves a
//! stale lock, while a second broker on the same directory cannot start. The lock is not part of
//! the [`Disk`] seam: the simulator runs each broker on its own in-memory disk, where there is no
//! other process to exclude.
#![allow(clippy::disallowed_methods)]

use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_core::disk::{Disk, DiskFile, FileRef};

/// Real files. Paths are used as given (absolute or relative to the working directory).
#[derive(Debug, Default, Clone, Copy)]
pub struct FileDisk;

impl FileDisk {
    pub fn new() -> Self {
        FileDisk
    }

    /// Creates `dir` if needed and takes the exclusive lock on its [`LOCK_FILE_NAME`] file,
    /// without waiting: a lock held by another process (or another handle in this one) is an
    /// error of kind `WouldBlock` whose message names the directory.
    pub fn lock_dir(&self, dir: &Path) -> io::Result<DirLock> {
        fs::create_dir_all(dir)?;
        let path = dir.join(LOCK_FILE_NAME);
        let file = fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path)?;
        match file.try_lock() {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                format!(
                    "log directory {} is in use by another process: the lock on {} is held (is another broker running on this directory?)",
                    dir.display(),
                    path.display()
                ),
            )),
            Err(fs::TryLockError::Error(e)) => Err(io::Error::new(e.kind(), format!("cannot lock {}: {e}", path.display()))),
        }
    }
}

/// Kafka's name for the lock file in each log directory.
pub const LOCK_FILE_NAME: &str = ".lock";

/// A held log-directory lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct DirLock {
    _file: fs::File,
    path: PathBuf,
}

impl DirLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

struct RealFile {
    file: fs::File,
}

impl DiskFile for RealFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(&self.file, buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        FileExt::write_all_at(&self.file, buf, offset)
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }
}

impl Disk for FileDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn open(&self, path: &Path, create: bool) -> io::Result<FileRef> {
        let file = fs::OpenOptions::new().read(true).write(true).create(create).truncate(false).open(path)?;
        Ok(Arc::new(RealFile { file }))
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(path)? {
            // Names that are not UTF-8 cannot be ours; skip them rather than fail the listing.
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
    fn exists(&self, path: &Path) -> bool {
        fs::metadata(path).is_ok()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        fs::File::open(path)?.sync_all()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::disk::{read_all, write_atomic};

    #[test]
    fn real_files_round_trip() {
        let dir = std::env::temp_dir().join(format!("gregor-file-disk-test-{}", std::process::id()));
        let d = FileDisk::new();
        d.create_dir_all(&dir).unwrap();
        let f = d.open(&dir.join("a.log"), true).unwrap();
        f.write_all_at(b"hello world", 0).unwrap();
        f.write_all_at(b"W", 6).unwrap();
        f.sync().unwrap();
        let mut buf = [0u8; 5];
        f.read_exact_at(&mut buf, 6).unwrap();
        assert_eq!(&buf, b"World");
        assert!(f.read_exact_at(&mut buf, 10).is_err());
        f.truncate(5).unwrap();
        assert_eq!(f.len().unwrap(), 5);
        write_atomic(&d, &dir.join("ckpt"), b"x").unwrap();
        assert_eq!(read_all(&d, &dir.join("ckpt")).unwrap(), b"x");
        assert_eq!(d.list_dir(&dir).unwrap(), vec!["a.log".to_string(), "ckpt".to_string()]);
        d.sync_dir(&dir).unwrap();
        d.remove_dir_all(&dir).unwrap();
        assert!(!d.exists(&dir));
    }

    #[test]
    fn a_locked_directory_cannot_be_locked_again_until_released() {
        let dir = std::env::temp_dir().join(format!("gregor-file-disk-lock-{}", std::process::id()));
        let d = FileDisk::new();
        let first = d.lock_dir(&dir).unwrap();
        assert_eq!(first.path(), dir.join(".lock"));
        let err = d.lock_dir(&dir).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock);
        assert!(err.to_string().contains(&dir.display().to_string()), "{err}");
        drop(first);
        let again = d.lock_dir(&dir).unwrap();
        drop(again);
        d.remove_dir_all(&dir).unwrap();
    }
}
