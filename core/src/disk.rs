//! The disk seam: the small file API the partition log needs.
//!
//! Production uses `FileDisk` (gregor-storage, real files); tests and the simulator use the
//! fault-injecting `MemDisk` (gregor-storage), which models what a real disk does on a crash.
//!
//! # Durability contract
//! * Data written with [`DiskFile::write_at`] is durable only after [`DiskFile::sync`] returns `Ok`.
//!   Until then a crash may lose it entirely, keep a prefix of it, or tear it (garbage in place of
//!   the lost part).
//! * After a failed `sync`, the file's unsynced contents are unknown. Callers must treat that as a
//!   fatal error for the file and never retry the sync and carry on serving from memory
//!   ("fsyncgate"): the kernel may already have dropped the dirty pages.
//! * Creating, renaming and removing a file is durable only after [`Disk::sync_dir`] on its parent.
//! * Reads return what was written, whether synced or not, unless the medium flipped bits: every
//!   reader of persistent data verifies a checksum.

use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use crate::bugs::{self, Bug};
use crate::probe::{self, CrashPoint};

/// An open file. All methods take `&self` so a file can be synced from one task while another
/// appends to it (group commit).
pub trait DiskFile: Send + Sync + 'static {
    /// Current length in bytes.
    fn len(&self) -> io::Result<u64>;
    /// Reads exactly `buf.len()` bytes at `offset`; a short file is `UnexpectedEof`.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    /// Cuts the file to `len` bytes.
    fn truncate(&self, len: u64) -> io::Result<()>;
    /// Makes everything written so far durable (fdatasync). See the module contract on failure.
    fn sync(&self) -> io::Result<()>;
    /// How long the next `sync` should take in simulated time. Real disks return zero (their
    /// latency is real); the simulator's disk draws one from its seed, so that a crash can land
    /// while a sync is in progress.
    fn sync_delay(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// A handle to an open file.
pub type FileRef = Arc<dyn DiskFile>;

/// A directory tree of files.
pub trait Disk: Send + Sync + 'static {
    /// Creates a directory and its parents; existing directories are fine.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file for reading and writing, creating it (empty) if `create` and it is missing.
    fn open(&self, path: &Path, create: bool) -> io::Result<FileRef>;
    /// Names (not paths) of the entries of a directory, sorted.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Whether a file or directory exists.
    fn exists(&self, path: &Path) -> bool;
    /// Atomically replaces `to` with `from`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything below it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;

    /// Simulator probe (see [`crate::probe`]): why bytes `range` of the file at `path`, or the
    /// directory entries naming it, would not survive a power loss right now; `None` if they
    /// would, or if this disk cannot tell (real disks keep this default). Never called outside
    /// simulator builds.
    fn durability_gap(&self, path: &Path, range: Range<u64>) -> Option<String> {
        let _ = (path, range);
        None
    }

    /// Simulator crash point (see [`crate::probe`]): the simulated disk may lose power here.
    /// Real disks keep this default (nothing). Never called outside simulator builds.
    fn crash_point(&self, point: &'static str) {
        let _ = point;
    }
}

/// Shared handle to a disk.
pub type SharedDisk = Arc<dyn Disk>;

/// Replaces the file at `path` with `contents` atomically and durably: write a new temporary
/// file, sync it, rename it over `path`, sync the directory. A crash at any point leaves either
/// the old or the new contents, never a mix.
///
/// The temporary file is always a new one: one left by an earlier attempt may be a file whose
/// fsync failed, and syncing that file again proves nothing (see the contract on [`Disk`]), so
/// it is removed, never reused.
pub fn write_atomic(disk: &dyn Disk, path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no parent"))?;
    let mut tmp_name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?
        .to_os_string();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    if disk.exists(&tmp) {
        disk.remove_file(&tmp)?;
    }
    let file = disk.open(&tmp, true)?;
    file.write_all_at(contents, 0)?;
    file.sync()?;
    drop(file);
    disk.rename(&tmp, path)?;
    probe::crash_point(disk, CrashPoint::Rename);
    if !bugs::active(Bug::SkipDirFsyncAfterRename) {
        disk.sync_dir(dir)?;
    }
    // The caller may rely on the new contents from here on: they and their name must be durable.
    let _ = probe::check_durable(disk, "write_atomic returned", path, 0..contents.len() as u64);
    probe::crash_point(disk, CrashPoint::CheckpointWrite);
    Ok(())
}

/// Reads a whole file.
pub fn read_all(disk: &dyn Disk, path: &Path) -> io::Result<Vec<u8>> {
    let file = disk.open(path, false)?;
    let len = file.len()?;
    let len = usize::try_from(len).map_err(|_| io::Error::other("file too large"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)?;
    Ok(buf)
}
