//! What a shard must remember besides messages: its topics, their channels, paused flags, and
//! each channel's position (the checkpoint), written atomically: temp file, fsync, rename, fsync
//! of the directory.
//!
//! `data-path/sluice.json` records the shard count the data was written with; a data directory
//! written with another count is refused (topics are placed by hash modulo the count).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The top-level description of a data directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataDirInfo {
    /// Format version.
    pub version: u32,
    /// Shards the data was written with.
    pub shards: usize,
}

/// The state of one shard, as saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShardState {
    /// Format version.
    pub version: u32,
    /// The newest topic incarnation issued when this was saved: a topic found in the log with a
    /// newer one was created after the save (and is restored); one with an older one that is
    /// not listed here was deleted (and stays deleted).
    pub last_incarnation: u64,
    /// Its topics.
    pub topics: Vec<TopicState>,
}

/// One topic, as saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TopicState {
    /// Name.
    pub name: String,
    /// Which life of the name this is: records of other incarnations are ignored.
    pub incarnation: u64,
    /// Paused.
    pub paused: bool,
    /// The newest message id published (at the time of saving; 0 when none).
    pub head: u64,
    /// A topic with no channel keeps its messages for a first channel from this id (0: none).
    pub retain_from: u64,
    /// Its channels.
    pub channels: Vec<ChannelState>,
    /// The topic's relocated file (empty: none): ids up to `relocated_upto` are read from it.
    pub relocated: String,
    /// The highest id in the relocated file.
    pub relocated_upto: u64,
}

/// One channel, as saved.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelState {
    /// Name.
    pub name: String,
    /// Paused.
    pub paused: bool,
    /// Every message from this id on that is not scattered below is still to deliver
    /// (fresh, never delivered to this channel).
    pub fresh_from: u64,
    /// Deferred messages below `fresh_from`: (id, due time in ns since the epoch, attempts).
    pub deferred: Vec<(u64, i64, u16)>,
    /// Other live messages below `fresh_from` (in flight or requeued): (id, attempts).
    pub requeued: Vec<(u64, u16)>,
}

/// The file names.
pub const DATA_DIR_INFO: &str = "sluice.json";
/// The per-shard state file.
pub const SHARD_STATE: &str = "state.json";

/// The directory of shard `id`.
pub fn shard_dir(data_path: &Path, id: usize) -> PathBuf {
    data_path.join(format!("shard-{id}"))
}

/// Checks (or, on first use, records) the shard count of a data directory.
///
/// # Errors
/// A message to show the user when the directory was written with another shard count or
/// cannot be read or written.
pub fn check_data_dir(data_path: &Path, shards: usize) -> Result<(), String> {
    std::fs::create_dir_all(data_path)
        .map_err(|e| format!("cannot create data path {}: {e}", data_path.display()))?;
    let path = data_path.join(DATA_DIR_INFO);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let info: DataDirInfo = serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not a sluiced data directory file: {e}",
                    path.display()
                )
            })?;
            if info.shards != shards {
                return Err(format!(
                    "the data in {} was written by {} shards and this sluiced runs {shards}: \
                     topics are placed on shards by hash, so the count cannot change in place; \
                     start with --cores {} (or drain the broker and start on an empty --data-path)",
                    data_path.display(),
                    info.shards,
                    info.shards
                ));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let info = DataDirInfo { version: 1, shards };
            let json = serde_json::to_vec_pretty(&info).map_err(|e| e.to_string())?;
            write_atomically(&path, &json)
                .map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Reads a shard's saved state (empty when there is none yet).
///
/// # Errors
/// A message when the file exists but cannot be read or parsed.
pub fn load_shard_state(dir: &Path) -> Result<ShardState, String> {
    let path = dir.join(SHARD_STATE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("cannot parse {}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ShardState::default()),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

/// Saves a shard's state atomically.
///
/// # Errors
/// The IO error.
pub fn save_shard_state(dir: &Path, state: &ShardState) -> std::io::Result<()> {
    let json = serde_json::to_vec(state).map_err(std::io::Error::other)?;
    write_atomically(&dir.join(SHARD_STATE), &json)
}

/// Writes `data` to `path` so that a crash leaves either the old or the new file: a temp file
/// beside it, fsync, rename over, fsync of the directory.
///
/// # Errors
/// The IO error.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(data)?;
        file.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_count_is_recorded_then_enforced() {
        let dir = std::env::temp_dir().join(format!("sluice-meta-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        check_data_dir(&dir, 2).unwrap();
        check_data_dir(&dir, 2).unwrap();
        let err = check_data_dir(&dir, 3).unwrap_err();
        assert!(err.contains("written by 2 shards"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn shard_state_round_trips_atomically() {
        let dir = std::env::temp_dir().join(format!("sluice-state-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(load_shard_state(&dir).unwrap(), ShardState::default());
        let state = ShardState {
            version: 1,
            last_incarnation: 9,
            topics: vec![TopicState {
                name: "t".into(),
                incarnation: 9,
                head: 12,
                channels: vec![ChannelState {
                    name: "c".into(),
                    fresh_from: 5,
                    requeued: vec![(3, 1)],
                    deferred: vec![(4, 1_700_000_000_000_000_000, 2)],
                    ..ChannelState::default()
                }],
                ..TopicState::default()
            }],
        };
        save_shard_state(&dir, &state).unwrap();
        assert_eq!(load_shard_state(&dir).unwrap(), state);
        assert!(!dir.join("state.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
