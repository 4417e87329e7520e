//! `.broker-epoch-clean-shutdown` in the metadata log directory: the broker epoch of a session
//! that ended in a clean shutdown, written last when the broker closes and taken (read, then
//! removed durably) when it starts. The broker sends it as `PreviousBrokerEpoch` when it
//! registers again, as Kafka's `.kafka_cleanshutdown` file does; without it (a crash, a lost
//! or replaced disk, a damaged file) the controller treats the restart as unclean and the
//! broker's replicas stop being eligible leader replicas (KIP-966, see
//! `crate::controller::elr`), because they may lack records they held before.

use std::path::Path;

use gregor_core::disk::{read_all, write_atomic, Disk};

pub const FILE_NAME: &str = ".broker-epoch-clean-shutdown";

/// Records that the session at `epoch` ends cleanly now.
pub fn write(disk: &dyn Disk, dir: &Path, epoch: i64) -> std::io::Result<()> {
    write_atomic(disk, &dir.join(FILE_NAME), format!("broker.epoch={epoch}\n").as_bytes())
}

/// The epoch of the previous session if it ended cleanly, else -1. The file is removed (and the
/// removal made durable) first, so a crash of this session is never taken for a clean end.
pub fn take(disk: &dyn Disk, dir: &Path) -> i64 {
    let path = dir.join(FILE_NAME);
    if !disk.exists(&path) {
        return -1;
    }
    let epoch = read_all(disk, &path).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|t| decode(&t));
    if let Err(e) = disk.remove_file(&path).and_then(|()| disk.sync_dir(dir)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot remove the clean-shutdown marker; registering as after an unclean shutdown");
        return -1;
    }
    epoch.unwrap_or_else(|| {
        tracing::warn!(path = %path.display(), "ignoring a damaged clean-shutdown marker");
        -1
    })
}

fn decode(text: &str) -> Option<i64> {
    text.strip_suffix('\n')?.strip_prefix("broker.epoch=")?.parse().ok().filter(|e| *e >= 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_exact_marker_is_read() {
        assert_eq!(decode("broker.epoch=42\n"), Some(42));
        for bad in ["broker.epoch=42", "broker.epoch=-3\n", "epoch=4\n", "broker.epoch=x\n", ""] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
    }
}
