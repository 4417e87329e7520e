//! `MemDisk`: an in-memory, fault-injecting [`Disk`] for tests and the simulator.
//!
//! # Fault model
//! State lives in an `Arc<Mutex<..>>`; clones share it, so it outlives a "process" (a log, a
//! broker) that is dropped or killed. Everything random is drawn from one `SmallRng` seeded by the
//! caller, so a seed replays exactly.
//!
//! * **Files** are inodes with two contents: the *current* bytes (what reads return) and the
//!   *durable* bytes (what survives a crash). `sync` makes current durable. Writes, truncations and
//!   extensions are all unsynced until `sync`: a shrinking `truncate` that is not synced can be
//!   undone by a crash.
//! * **Names** (create, rename, remove of files) change a *current* namespace; `sync_dir(dir)` makes
//!   the current entries of `dir` durable. A crash reverts every directory to its durable entries, so
//!   a file created without a `sync_dir` of its parent disappears, and a removed one comes back
//!   (with its durable content).
//! * **Directories** themselves are a simplification: `create_dir_all` and `remove_dir_all` are
//!   durable at once (they are rare, administrative events in the log).
//! * **`crash()`**: every surviving file keeps its durable bytes plus, drawn from the seed, a prefix
//!   of its unsynced bytes cut at a 512-byte sector boundary (or at the point where unsynced data
//!   begins, or at its end). Where the kept prefix is shorter than the old durable content, the old
//!   durable bytes remain beyond it (the new blocks never reached the platter). With probability
//!   `torn_on_crash` the last kept sector is torn: its unsynced bytes become random garbage.
//!   Synced bytes are never damaged by a crash. With probability `lose_unsynced_on_crash` a file
//!   keeps none of its unsynced bytes. Handles opened before a crash are stale: every call on them
//!   fails, so a killed process cannot write into the next one's disk.
//! * **Failed sync ("fsyncgate")**: when `sync` fails (`sync_error`), the file is *poisoned*: the
//!   kernel has dropped the dirty pages and cleared the error, so every later `sync` of it by the
//!   same process reports success but makes nothing durable, and a crash reverts it to its durable
//!   bytes. Callers must treat a failed sync as fatal and never retry; the poisoning makes a
//!   retrying caller lose data in tests instead of passing by luck.
//! * **Clean but lost pages**: when the process dies (`kill_process`) with a poisoned file, the
//!   pages whose write-back failed stay readable in the page cache, but they are clean: the next
//!   process reads them, yet no later `sync` writes them back, only pages it writes itself. A
//!   power loss then reverts that range. Only rewriting the bytes makes them durable again.
//! * **I/O errors**: `write_error` (EIO) and `no_space` (ENOSPC) make a `write_all_at` fail without
//!   writing anything; `read_error` makes a `read_exact_at` fail with EIO; `sync_error` makes `sync`
//!   or `sync_dir` fail with EIO.
//! * **Process death without power loss**: [`MemDisk::kill_process`] makes every open handle
//!   stale and keeps all written bytes (they are in the page cache), which is what `kill -9` of
//!   the broker does on a machine that stays up.
//! * **Latency**: `sync_delay` draws each fsync's duration from `0..=sync_delay_ms_max`; the
//!   flusher sleeps that long in simulated time before syncing, so a crash can land mid-fsync.
//! * **Bit rot**: [`MemDisk::flip_bit`] flips one bit of a file's current and durable bytes.
//! * **Crash points** ([`gregor_core::probe`]): once armed ([`MemDisk::arm_crash_points`]), each
//!   crash point the code passes loses power with the armed chance, up to a budget: the disk
//!   crashes there and then (as [`MemDisk::crash`]) and stays *halted* — every later call fails
//!   with EIO, as on a machine without power — until [`MemDisk::power_on`]; a hook set by the
//!   owner ([`MemDisk::set_power_loss_hook`]) stops the process that was using it.
//! * **Durability oracle**: [`MemDisk::durability_gap`] answers whether a byte range of a file and
//!   the directory entry naming it would survive a power loss now. Directories themselves are
//!   durable at once in this model (above), so a file's entry in its parent is all there is.
//!
//! Every injected fault is counted by kind ([`MemDisk::fault_counts`]).

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use gregor_core::disk::{Disk, DiskFile, FileRef};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Crash tearing happens at this granularity.
pub const SECTOR_BYTES: usize = 512;

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// Probabilities (0.0..=1.0) of each injected fault. All default to 0.0: no faults.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FaultConfig {
    /// A write fails with EIO (nothing written).
    pub write_error: f64,
    /// A read fails with EIO.
    pub read_error: f64,
    /// A `sync` or `sync_dir` fails with EIO (and a failed `sync` poisons the file).
    pub sync_error: f64,
    /// A write fails with ENOSPC (nothing written).
    pub no_space: f64,
    /// On crash, the last kept unsynced sector of a file is garbage.
    pub torn_on_crash: f64,
    /// On crash, a file keeps none of its unsynced bytes.
    pub lose_unsynced_on_crash: f64,
    /// Each `sync` takes a simulated time drawn uniformly from 0..=this (see `DiskFile::sync_delay`).
    pub sync_delay_ms_max: u64,
}

/// How many faults of each kind were injected so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FaultCounts {
    pub write_error: u64,
    pub read_error: u64,
    pub sync_error: u64,
    pub no_space: u64,
    pub torn_on_crash: u64,
    pub lose_unsynced_on_crash: u64,
    pub bit_flips: u64,
    pub crashes: u64,
    pub process_kills: u64,
    /// Power losses at crash points (also counted in `crashes`).
    pub crash_points: u64,
}

/// What the owner of a disk does when a crash point cuts its power (stop the process using it).
pub type PowerLossHook = Arc<dyn Fn(&'static str) + Send + Sync>;

struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    /// Lowest byte changed since the last sync. Invariant: `durable[..d] == data[..d]`.
    dirty_from: Option<usize>,
    poisoned: bool,
    /// Start of a range that reads return but that is not durable and not dirty either (its
    /// write-back failed in an earlier process). Invariant: `durable[..l] == data[..l]` for
    /// `l = min(dirty_from, lost_from)`.
    lost_from: Option<usize>,
    open_handles: usize,
}

struct State {
    rng: SmallRng,
    faults: FaultConfig,
    counts: FaultCounts,
    dirs: BTreeSet<PathBuf>,
    names: BTreeMap<PathBuf, u64>,
    durable_names: BTreeMap<PathBuf, u64>,
    /// How many entries of `names` and `durable_names` together refer to each inode, so that
    /// dropping an unreachable inode does not scan every name. Changed only through
    /// `link`/`unlink`; recounted after a crash.
    links: BTreeMap<u64, u32>,
    /// Paths whose current entry was created, replaced or removed since their directory was
    /// last synced: all `sync_dir` has to look at, however many files the directory holds.
    unsynced_entries: BTreeSet<PathBuf>,
    inodes: BTreeMap<u64, Inode>,
    next_ino: u64,
    /// Bumped by every crash; handles from an older epoch are stale.
    epoch: u64,
    /// Power was lost at a crash point and not restored: every call fails.
    halted: bool,
    crash_point_chance: f64,
    crash_points_left: u32,
    power_loss_hook: Option<PowerLossHook>,
}

impl State {
    fn roll(&mut self, p: f64) -> bool {
        p > 0.0 && self.rng.random::<f64>() < p
    }

    /// The names of the files and directories right inside `dir`, sorted.
    fn children(&self, dir: &Path) -> Vec<String> {
        let mut out = BTreeSet::new();
        for p in self.names.keys().chain(self.dirs.iter()) {
            if p.parent() == Some(dir) {
                if let Some(name) = p.file_name().and_then(|n| n.to_str()) {
                    out.insert(name.to_string());
                }
            }
        }
        out.into_iter().collect()
    }

    /// Drops an inode nobody can reach any more (no name, no durable name, no open handle).
    fn gc(&mut self, ino: u64) {
        debug_assert_eq!(
            self.links.get(&ino).copied().unwrap_or(0) as usize,
            self.names.values().chain(self.durable_names.values()).filter(|&&i| i == ino).count(),
            "link count of inode {ino}"
        );
        let referenced = self.links.contains_key(&ino) || self.inodes.get(&ino).is_some_and(|n| n.open_handles > 0);
        if !referenced {
            self.inodes.remove(&ino);
        }
    }

    fn names_mut(&mut self, durable: bool) -> &mut BTreeMap<PathBuf, u64> {
        if durable {
            &mut self.durable_names
        } else {
            &mut self.names
        }
    }

    /// Points `path` at `ino` in the current (or durable) namespace; returns the inode it
    /// pointed at before, which the caller should `gc`.
    fn link(&mut self, durable: bool, path: PathBuf, ino: u64) -> Option<u64> {
        *self.links.entry(ino).or_insert(0) += 1;
        if !durable {
            self.unsynced_entries.insert(path.clone());
        }
        let old = self.names_mut(durable).insert(path, ino);
        if let Some(o) = old {
            self.drop_link(o);
        }
        old
    }

    /// Removes `path` from the current (or durable) namespace; returns the inode it pointed at,
    /// which the caller should `gc`.
    fn unlink(&mut self, durable: bool, path: &Path) -> Option<u64> {
        let ino = self.names_mut(durable).remove(path)?;
        if !durable {
            self.unsynced_entries.insert(path.to_path_buf());
        }
        self.drop_link(ino);
        Some(ino)
    }

    fn drop_link(&mut self, ino: u64) {
        match self.links.get_mut(&ino) {
            Some(n) if *n > 1 => *n -= 1,
            _ => {
                self.links.remove(&ino);
            }
        }
    }

    fn recount_links(&mut self) {
        self.links.clear();
        for &ino in self.names.values().chain(self.durable_names.values()) {
            *self.links.entry(ino).or_insert(0) += 1;
        }
    }

    fn dir_exists(&self, dir: &Path) -> bool {
        dir.as_os_str().is_empty() || self.dirs.contains(dir)
    }

    fn crash(&mut self) {
        self.counts.crashes += 1;
        self.epoch += 1;
        self.names = self.durable_names.clone();
        self.unsynced_entries.clear();
        self.recount_links();
        let live: BTreeSet<u64> = self.names.values().copied().collect();
        self.inodes.retain(|ino, _| live.contains(ino));
        let inos: Vec<u64> = self.inodes.keys().copied().collect();
        for ino in inos {
            let Some(mut node) = self.inodes.remove(&ino) else { continue };
            node.open_handles = 0;
            if node.lost_from.is_some() {
                // The lost range never reached the platter: keep only what is durable.
                node.data = node.durable.clone();
                node.dirty_from = None;
                node.lost_from = None;
            }
            if let Some(p) = node.dirty_from {
                let lose = node.poisoned || {
                    let lose = self.roll(self.faults.lose_unsynced_on_crash);
                    if lose {
                        self.counts.lose_unsynced_on_crash += 1;
                    }
                    lose
                };
                let result = if lose {
                    node.durable.clone()
                } else {
                    // Candidate cut points: where unsynced data starts, each sector boundary in
                    // the unsynced range, and its end.
                    let len = node.data.len();
                    let mut cuts = vec![p];
                    let mut s = (p / SECTOR_BYTES + 1) * SECTOR_BYTES;
                    while s < len {
                        cuts.push(s);
                        s += SECTOR_BYTES;
                    }
                    if len > p {
                        cuts.push(len);
                    }
                    let k = cuts[self.rng.random_range(0..cuts.len())];
                    let mut r = node.data[..k].to_vec();
                    if node.durable.len() > k {
                        r.extend_from_slice(&node.durable[k..]);
                    }
                    if k > p && self.roll(self.faults.torn_on_crash) {
                        self.counts.torn_on_crash += 1;
                        let sector_start = ((k - 1) / SECTOR_BYTES) * SECTOR_BYTES;
                        let from = sector_start.max(p);
                        self.rng.fill(&mut r[from..k]);
                    }
                    r
                };
                node.data = result.clone();
                node.durable = result;
            }
            node.dirty_from = None;
            node.poisoned = false;
            self.inodes.insert(ino, node);
        }
    }
}

/// The in-memory disk. `Clone` shares the state.
#[derive(Clone)]
pub struct MemDisk {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for MemDisk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemDisk").finish_non_exhaustive()
    }
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panicking test thread must not take every later disk call down with it.
    state.lock().unwrap_or_else(|e| e.into_inner())
}

fn min_opt(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.min(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn powered_off() -> io::Error {
    io::Error::other("simulated machine lost power at a crash point")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{}: no such file or directory", path.display()))
}

impl MemDisk {
    /// An empty disk whose random choices are drawn from `seed`.
    pub fn new(seed: u64, faults: FaultConfig) -> MemDisk {
        MemDisk {
            state: Arc::new(Mutex::new(State {
                rng: SmallRng::seed_from_u64(seed),
                faults,
                counts: FaultCounts::default(),
                dirs: BTreeSet::new(),
                names: BTreeMap::new(),
                durable_names: BTreeMap::new(),
                links: BTreeMap::new(),
                unsynced_entries: BTreeSet::new(),
                inodes: BTreeMap::new(),
                next_ino: 1,
                epoch: 0,
                halted: false,
                crash_point_chance: 0.0,
                crash_points_left: 0,
                power_loss_hook: None,
            })),
        }
    }

    /// Replaces the fault probabilities (e.g. to stop injecting before a final check).
    pub fn set_faults(&self, faults: FaultConfig) {
        lock(&self.state).faults = faults;
    }

    /// Simulates the death of the process using the disk (kill -9) while the machine stays up:
    /// every open handle becomes stale, but nothing is lost, because the written pages are in the
    /// operating system's cache. Compare [`MemDisk::crash`] (power loss).
    pub fn kill_process(&self) {
        let mut st = lock(&self.state);
        st.counts.process_kills += 1;
        st.epoch += 1;
        let inos: Vec<u64> = st.inodes.keys().copied().collect();
        for ino in inos {
            if let Some(n) = st.inodes.get_mut(&ino) {
                n.open_handles = 0;
                if n.poisoned {
                    n.poisoned = false;
                    n.lost_from = min_opt(n.lost_from, n.dirty_from.take());
                }
            }
            st.gc(ino);
        }
    }

    /// Simulates power loss / kill -9 + reboot. See the module doc for what survives.
    pub fn crash(&self) {
        lock(&self.state).crash();
    }

    /// Flips bit `bit` (0..8) of byte `byte_offset` of the file at `path`, at rest.
    pub fn flip_bit(&self, path: &Path, byte_offset: u64, bit: u8) -> io::Result<()> {
        let mut st = lock(&self.state);
        let ino = *st.names.get(path).ok_or_else(|| not_found(path))?;
        let node = st.inodes.get_mut(&ino).ok_or_else(|| not_found(path))?;
        let at = usize::try_from(byte_offset).map_err(|_| io::Error::other("offset too large"))?;
        if at >= node.data.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "flip_bit beyond end of file"));
        }
        let mask = 1u8 << (bit % 8);
        node.data[at] ^= mask;
        if at < node.durable.len() {
            node.durable[at] ^= mask;
        }
        st.counts.bit_flips += 1;
        Ok(())
    }

    /// Faults injected so far, by kind.
    pub fn fault_counts(&self) -> FaultCounts {
        lock(&self.state).counts.clone()
    }

    /// Current length of a file (test helper).
    pub fn file_len(&self, path: &Path) -> io::Result<u64> {
        let st = lock(&self.state);
        let ino = st.names.get(path).ok_or_else(|| not_found(path))?;
        Ok(st.inodes.get(ino).map_or(0, |n| n.data.len() as u64))
    }

    /// Arms the crash points: each one reached loses power with probability `chance`, at most
    /// `budget` times; `budget` 0 disarms them.
    pub fn arm_crash_points(&self, chance: f64, budget: u32) {
        let mut st = lock(&self.state);
        st.crash_point_chance = chance;
        st.crash_points_left = budget;
    }

    /// Sets what happens to the process using the disk when a crash point cuts the power. The
    /// hook runs right after the crash, outside the disk's lock.
    pub fn set_power_loss_hook(&self, hook: PowerLossHook) {
        lock(&self.state).power_loss_hook = Some(hook);
    }

    /// Restores power after a crash point's power loss (the machine reboots).
    pub fn power_on(&self) {
        lock(&self.state).halted = false;
    }

    /// Whether a crash point cut the power and it was not restored yet.
    pub fn is_halted(&self) -> bool {
        lock(&self.state).halted
    }

    /// The durability oracle: why bytes `range` of the file at `path`, or its directory entry,
    /// would not survive a power loss now (`None`: they would). Bytes count as durable only if
    /// no unsynced write, truncation or lost write-back touches them; the entry only if the
    /// durable namespace names the same file.
    pub fn durability_gap(&self, path: &Path, range: std::ops::Range<u64>) -> Option<String> {
        let st = lock(&self.state);
        let Some(&ino) = st.names.get(path) else {
            return Some(format!("{}: no such file", path.display()));
        };
        match st.durable_names.get(path) {
            Some(&d) if d == ino => {}
            Some(_) => return Some(format!("{}: its directory entry is not durable (a power loss brings back the file it replaced)", path.display())),
            None => return Some(format!("{}: its directory entry is not durable (a power loss removes it)", path.display())),
        }
        let n = st.inodes.get(&ino)?;
        let end = usize::try_from(range.end).unwrap_or(usize::MAX);
        if let Some(from) = min_opt(n.dirty_from, n.lost_from).filter(|&d| d < end) {
            let why = if n.lost_from == Some(from) { "its write-back failed" } else { "never fsynced" };
            return Some(format!(
                "{} bytes {}..{}: not durable from byte {from} ({why}; file {} bytes, {} durable)",
                path.display(),
                range.start,
                range.end,
                n.data.len(),
                n.durable.len()
            ));
        }
        if n.durable.len() < end {
            return Some(format!("{} bytes {}..{}: only {} bytes are durable", path.display(), range.start, range.end, n.durable.len()));
        }
        None
    }

    /// The names in directory `dir` now (empty if there is none), also while a crash point
    /// keeps the power off: for the simulator's observers, which must not change the disk.
    pub fn peek_dir(&self, dir: &Path) -> Vec<String> {
        let st = lock(&self.state);
        if st.dirs.contains(dir) { st.children(dir) } else { Vec::new() }
    }

    /// The length of the file at `path` and its bytes `range` now (`None`: no such file, or the
    /// range passes its end), also while a crash point keeps the power off; no handle is opened
    /// and no fault drawn.
    pub fn peek(&self, path: &Path, range: std::ops::Range<u64>) -> Option<(u64, Vec<u8>)> {
        let st = lock(&self.state);
        let n = st.inodes.get(st.names.get(path)?)?;
        let (start, end) = (usize::try_from(range.start).ok()?, usize::try_from(range.end).ok()?);
        Some((n.data.len() as u64, n.data.get(start..end)?.to_vec()))
    }

    /// Whether any file has unsynced data or any directory unsynced entries (test helper).
    pub fn has_unsynced(&self) -> bool {
        let st = lock(&self.state);
        st.names != st.durable_names || st.inodes.values().any(|n| n.dirty_from.is_some())
    }
}

struct MemFile {
    state: Arc<Mutex<State>>,
    ino: u64,
    epoch: u64,
}

impl MemFile {
    fn with<T>(&self, f: impl FnOnce(&mut State, u64) -> io::Result<T>) -> io::Result<T> {
        let mut st = lock(&self.state);
        if st.epoch != self.epoch || !st.inodes.contains_key(&self.ino) {
            return Err(io::Error::other("stale file handle (opened before a crash)"));
        }
        f(&mut st, self.ino)
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let mut st = lock(&self.state);
        if st.epoch == self.epoch {
            if let Some(n) = st.inodes.get_mut(&self.ino) {
                n.open_handles = n.open_handles.saturating_sub(1);
            }
            st.gc(self.ino);
        }
    }
}

fn node(st: &mut State, ino: u64) -> &mut Inode {
    st.inodes.get_mut(&ino).expect("inode checked by MemFile::with")
}

impl DiskFile for MemFile {
    fn len(&self) -> io::Result<u64> {
        self.with(|st, ino| Ok(node(st, ino).data.len() as u64))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.with(|st, ino| {
            if st.roll(st.faults.read_error) {
                st.counts.read_error += 1;
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let n = node(st, ino);
            let start = usize::try_from(offset).map_err(|_| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            let end = start.checked_add(buf.len()).ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            if end > n.data.len() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "read past end of file"));
            }
            buf.copy_from_slice(&n.data[start..end]);
            Ok(())
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.with(|st, ino| {
            if st.roll(st.faults.no_space) {
                st.counts.no_space += 1;
                return Err(io::Error::from_raw_os_error(ENOSPC));
            }
            if st.roll(st.faults.write_error) {
                st.counts.write_error += 1;
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let n = node(st, ino);
            let start = usize::try_from(offset).map_err(|_| io::Error::other("offset too large"))?;
            let end = start + buf.len();
            let old_len = n.data.len();
            if end > old_len {
                n.data.resize(end, 0);
            }
            n.data[start..end].copy_from_slice(buf);
            let changed = start.min(old_len);
            n.dirty_from = Some(n.dirty_from.map_or(changed, |d| d.min(changed)));
            Ok(())
        })
    }

    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|st, ino| {
            let n = node(st, ino);
            let len = usize::try_from(len).map_err(|_| io::Error::other("length too large"))?;
            let changed = len.min(n.data.len());
            n.data.resize(len, 0);
            n.dirty_from = Some(n.dirty_from.map_or(changed, |d| d.min(changed)));
            Ok(())
        })
    }

    fn sync_delay(&self) -> std::time::Duration {
        let mut st = lock(&self.state);
        let max = st.faults.sync_delay_ms_max;
        if max == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_millis(st.rng.random_range(0..=max))
    }

    fn sync(&self) -> io::Result<()> {
        self.with(|st, ino| {
            if node(st, ino).poisoned {
                // fsyncgate: the error was reported once; the dirty pages are gone.
                return Ok(());
            }
            if st.roll(st.faults.sync_error) {
                st.counts.sync_error += 1;
                node(st, ino).poisoned = true;
                return Err(io::Error::from_raw_os_error(EIO));
            }
            let n = node(st, ino);
            if let Some(d) = n.dirty_from.take() {
                let same = min_opt(Some(d), n.lost_from).unwrap_or(d);
                debug_assert!(same <= n.durable.len() && same <= n.data.len() && n.durable[..same] == n.data[..same]);
                if n.lost_from.is_some_and(|l| d <= l) {
                    n.lost_from = None; // rewritten: the lost range is written back with the rest
                }
                // Bytes in a still-lost range keep their old durable content (zeros past its end).
                n.durable.resize(d, 0);
                n.durable.extend_from_slice(&n.data[d..]);
            }
            Ok(())
        })
    }
}

impl Disk for MemDisk {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        for a in path.ancestors() {
            if a.as_os_str().is_empty() {
                continue;
            }
            if st.names.contains_key(a) {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "a file is in the way"));
            }
            st.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn open(&self, path: &Path, create: bool) -> io::Result<FileRef> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        if st.dirs.contains(path) {
            return Err(io::Error::new(io::ErrorKind::IsADirectory, "is a directory"));
        }
        let ino = match st.names.get(path) {
            Some(&ino) => ino,
            None if create => {
                if !st.dir_exists(path.parent().unwrap_or(Path::new(""))) {
                    return Err(not_found(path));
                }
                let ino = st.next_ino;
                st.next_ino += 1;
                st.inodes.insert(
                    ino,
                    Inode { data: Vec::new(), durable: Vec::new(), dirty_from: None, poisoned: false, lost_from: None, open_handles: 0 },
                );
                st.link(false, path.to_path_buf(), ino);
                ino
            }
            None => return Err(not_found(path)),
        };
        let epoch = st.epoch;
        if let Some(n) = st.inodes.get_mut(&ino) {
            n.open_handles += 1;
        }
        Ok(Arc::new(MemFile { state: self.state.clone(), ino, epoch }))
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        Ok(st.children(path))
    }

    fn exists(&self, path: &Path) -> bool {
        let st = lock(&self.state);
        st.names.contains_key(path) || st.dirs.contains(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        if !st.dir_exists(to.parent().unwrap_or(Path::new(""))) {
            return Err(not_found(to));
        }
        let ino = st.unlink(false, from).ok_or_else(|| not_found(from))?;
        if let Some(old) = st.link(false, to.to_path_buf(), ino) {
            st.gc(old);
        }
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        let ino = st.unlink(false, path).ok_or_else(|| not_found(path))?;
        st.gc(ino);
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        st.dirs.retain(|d| !d.starts_with(path));
        let mut gone = Vec::new();
        for durable in [false, true] {
            let below: Vec<PathBuf> = st.names_mut(durable).keys().filter(|p| p.starts_with(path)).cloned().collect();
            for p in below {
                gone.extend(st.unlink(durable, &p));
            }
        }
        st.unsynced_entries.retain(|p| !p.starts_with(path));
        for ino in gone {
            st.gc(ino);
        }
        Ok(())
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut st = lock(&self.state);
        if st.halted {
            return Err(powered_off());
        }
        if !st.dirs.contains(path) {
            return Err(not_found(path));
        }
        let p_fail = st.faults.sync_error;
        if st.roll(p_fail) {
            st.counts.sync_error += 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        // Make the durable entries of `path` equal its current ones. Only entries changed since
        // the last sync can differ. Paths order by component, so everything below `path` sorts
        // right after it.
        let changed: Vec<PathBuf> = st
            .unsynced_entries
            .range::<Path, _>((Bound::Excluded(path), Bound::Unbounded))
            .take_while(|p| p.starts_with(path))
            .filter(|p| p.parent() == Some(path))
            .cloned()
            .collect();
        let mut released = Vec::new();
        for p in changed {
            st.unsynced_entries.remove(&p);
            match st.names.get(&p).copied() {
                Some(ino) if st.durable_names.get(&p) != Some(&ino) => released.extend(st.link(true, p, ino)),
                Some(_) => {}
                None => released.extend(st.unlink(true, &p)),
            }
        }
        for ino in released {
            st.gc(ino);
        }
        debug_assert!(
            {
                let inside = |m: &BTreeMap<PathBuf, u64>| -> Vec<(PathBuf, u64)> {
                    m.iter().filter(|(p, _)| p.parent() == Some(path)).map(|(p, &i)| (p.clone(), i)).collect()
                };
                inside(&st.names) == inside(&st.durable_names)
            },
            "sync_dir left {} with durable entries unlike its current ones",
            path.display()
        );
        Ok(())
    }

    fn durability_gap(&self, path: &Path, range: std::ops::Range<u64>) -> Option<String> {
        MemDisk::durability_gap(self, path, range)
    }

    fn crash_point(&self, point: &'static str) {
        let hook = {
            let mut st = lock(&self.state);
            if st.halted || st.crash_points_left == 0 {
                return;
            }
            let chance = st.crash_point_chance;
            if !st.roll(chance) {
                return;
            }
            st.crash_points_left -= 1;
            st.counts.crash_points += 1;
            st.crash();
            st.halted = true;
            st.power_loss_hook.clone()
        };
        if let Some(hook) = hook {
            hook(point);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_core::disk::{read_all, write_atomic};

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn synced_data_survives_unsynced_may_not() {
        for seed in 0..50 {
            let d = MemDisk::new(seed, FaultConfig { torn_on_crash: 0.5, ..Default::default() });
            d.create_dir_all(&p("/a")).unwrap();
            let f = d.open(&p("/a/f"), true).unwrap();
            d.sync_dir(&p("/a")).unwrap();
            f.write_all_at(&[1u8; 1000], 0).unwrap();
            f.sync().unwrap();
            f.write_all_at(&[2u8; 3000], 1000).unwrap();
            d.crash();
            assert!(f.len().is_err(), "stale handle must fail");
            let got = read_all(&d, &p("/a/f")).unwrap();
            assert!(got.len() >= 1000 && got.len() <= 4000);
            assert!(got[..1000].iter().all(|&b| b == 1), "synced bytes damaged");
            let cut = got.len();
            assert!(cut == 1000 || cut == 4000 || cut.is_multiple_of(SECTOR_BYTES));
            // Everything but the last kept sector is exactly what was written.
            let sound = ((cut.saturating_sub(1)) / SECTOR_BYTES * SECTOR_BYTES).max(1000);
            assert!(got[1000..sound].iter().all(|&b| b == 2));
        }
    }

    #[test]
    fn names_need_sync_dir() {
        let d = MemDisk::new(1, FaultConfig::default());
        d.create_dir_all(&p("/a")).unwrap();
        let f = d.open(&p("/a/x"), true).unwrap();
        f.write_all_at(b"hello", 0).unwrap();
        f.sync().unwrap();
        drop(f);
        d.crash();
        assert!(!d.exists(&p("/a/x")), "creation without sync_dir survived");
        write_atomic(&d, &p("/a/y"), b"v1").unwrap();
        d.remove_file(&p("/a/y")).unwrap();
        d.crash();
        assert_eq!(read_all(&d, &p("/a/y")).unwrap(), b"v1", "unsynced removal was kept");
        write_atomic(&d, &p("/a/y"), b"v2").unwrap();
        d.crash();
        assert_eq!(read_all(&d, &p("/a/y")).unwrap(), b"v2");
        assert_eq!(d.list_dir(&p("/a")).unwrap(), vec!["y".to_string()]);
    }

    #[test]
    fn failed_sync_poisons_file() {
        let d = MemDisk::new(7, FaultConfig { sync_error: 1.0, ..Default::default() });
        d.create_dir_all(&p("/a")).unwrap();
        let f = d.open(&p("/a/f"), true).unwrap();
        f.write_all_at(b"data", 0).unwrap();
        assert!(f.sync().is_err());
        d.set_faults(FaultConfig::default());
        assert!(f.sync().is_ok(), "a retried sync reports success");
        d.sync_dir(&p("/a")).unwrap();
        d.crash();
        assert_eq!(read_all(&d, &p("/a/f")).unwrap(), b"", "poisoned data became durable");
        assert_eq!(d.fault_counts().sync_error, 1);
    }

    #[test]
    fn write_atomic_after_a_failed_attempt_is_durable() {
        // The first attempt's fsync fails and poisons its temporary file; a second attempt must
        // not reuse that file, or its "successful" sync would make nothing durable.
        let d = MemDisk::new(9, FaultConfig { sync_error: 1.0, ..Default::default() });
        d.create_dir_all(&p("/a")).unwrap();
        assert!(write_atomic(&d, &p("/a/meta"), b"first").is_err());
        d.set_faults(FaultConfig::default());
        write_atomic(&d, &p("/a/meta"), b"second").unwrap();
        d.crash();
        assert_eq!(read_all(&d, &p("/a/meta")).unwrap(), b"second");
        assert_eq!(d.list_dir(&p("/a")).unwrap(), vec!["meta".to_string()]);
    }

    #[test]
    fn durability_gap_names_unsynced_bytes_and_entries() {
        let d = MemDisk::new(5, FaultConfig::default());
        d.create_dir_all(&p("/a")).unwrap();
        let f = d.open(&p("/a/f"), true).unwrap();
        f.write_all_at(&[1u8; 100], 0).unwrap();
        f.sync().unwrap();
        let gap = d.durability_gap(&p("/a/f"), 0..100).expect("the new name is not durable yet");
        assert!(gap.contains("directory entry"), "{gap}");
        d.sync_dir(&p("/a")).unwrap();
        assert_eq!(d.durability_gap(&p("/a/f"), 0..100), None);
        f.write_all_at(&[2u8; 50], 100).unwrap();
        assert_eq!(d.durability_gap(&p("/a/f"), 0..100), None, "bytes before the unsynced write stay durable");
        let gap = d.durability_gap(&p("/a/f"), 0..120).expect("the appended bytes are not synced");
        assert!(gap.contains("from byte 100"), "{gap}");
        f.sync().unwrap();
        assert_eq!(d.durability_gap(&p("/a/f"), 0..150), None);
        // A rename replaces the durable file only once the directory is synced.
        let g = d.open(&p("/a/g.tmp"), true).unwrap();
        g.write_all_at(b"new", 0).unwrap();
        g.sync().unwrap();
        d.rename(&p("/a/g.tmp"), &p("/a/f")).unwrap();
        assert!(d.durability_gap(&p("/a/f"), 0..3).is_some_and(|g| g.contains("brings back")));
        d.sync_dir(&p("/a")).unwrap();
        assert_eq!(d.durability_gap(&p("/a/f"), 0..3), None);
        // A failed fsync leaves the bytes not durable, however often it is retried.
        d.set_faults(FaultConfig { sync_error: 1.0, ..Default::default() });
        g.write_all_at(b"more", 3).unwrap();
        assert!(g.sync().is_err());
        d.set_faults(FaultConfig::default());
        assert!(g.sync().is_ok());
        assert!(d.durability_gap(&p("/a/f"), 0..7).is_some());
    }

    #[test]
    fn a_crash_point_cuts_the_power_until_power_on() {
        let d = MemDisk::new(11, FaultConfig::default());
        d.create_dir_all(&p("/a")).unwrap();
        let hits = Arc::new(Mutex::new(Vec::new()));
        let seen = hits.clone();
        d.set_power_loss_hook(Arc::new(move |point| seen.lock().unwrap().push(point)));
        d.crash_point("disarmed");
        assert!(!d.is_halted());
        d.arm_crash_points(1.0, 1);
        let f = d.open(&p("/a/f"), true).unwrap();
        f.write_all_at(b"unsynced", 0).unwrap();
        d.crash_point("here");
        assert!(d.is_halted());
        assert_eq!(*hits.lock().unwrap(), vec!["here"]);
        assert!(f.write_all_at(b"x", 0).is_err(), "a handle from before the power loss must be stale");
        assert!(d.open(&p("/a/f"), true).is_err() && d.sync_dir(&p("/a")).is_err(), "a machine without power does nothing");
        d.power_on();
        assert!(!d.exists(&p("/a/f")), "the unsynced creation was lost with the power");
        d.crash_point("budget spent");
        assert!(!d.is_halted());
        assert_eq!(d.fault_counts().crash_points, 1);
    }

    #[test]
    fn unsynced_truncate_can_be_undone_and_bit_flips() {
        let d = MemDisk::new(3, FaultConfig { lose_unsynced_on_crash: 1.0, ..Default::default() });
        d.create_dir_all(&p("/a")).unwrap();
        write_atomic(&d, &p("/a/f"), b"abcdef").unwrap();
        let f = d.open(&p("/a/f"), false).unwrap();
        f.truncate(2).unwrap();
        drop(f);
        d.crash();
        assert_eq!(read_all(&d, &p("/a/f")).unwrap(), b"abcdef");
        d.flip_bit(&p("/a/f"), 0, 0).unwrap();
        d.crash();
        assert_eq!(read_all(&d, &p("/a/f")).unwrap(), b"`bcdef");
        let e = MemDisk::new(3, FaultConfig { write_error: 1.0, ..Default::default() });
        e.create_dir_all(&p("/a")).unwrap();
        let g = e.open(&p("/a/g"), true).unwrap();
        assert_eq!(g.write_all_at(b"x", 0).unwrap_err().raw_os_error(), Some(EIO));
        assert_eq!(g.len().unwrap(), 0);
    }
}
