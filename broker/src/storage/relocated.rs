//! A topic's relocated file: its live messages copied, in id order, out of the shard's log.
//!
//! One append-only log per shard means a slow or abandoned channel pins every segment written
//! since its oldest live message, however little of each segment is its own topic's. When that
//! pinned garbage grows large against the topic's own live data, the shard copies the topic's
//! live messages up to its current head (`upto`) into `relocated-<topic>-<incarnation>-<upto>.seg`
//! (same record format), switches the topic's reads for ids `<= upto` to that file, saves its
//! state, and the old segments become reclaimable. The disk then holds the slow topic's own
//! backlog (once more, at most, during a copy), not the traffic of every other topic.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use bytes::Bytes;
use glommio::io::BufferedFile;

use super::record::{self, Read};

/// The index granularity inside a relocated file.
const INDEX_EVERY_BYTES: u64 = 256 * 1024;

/// A topic's relocated messages.
pub struct Relocated {
    /// The file name (in the shard directory).
    pub name: String,
    /// The highest id it holds: reads of ids `<= upto` come from it.
    pub upto: u64,
    /// The open file.
    pub file: Rc<BufferedFile>,
    /// Its length.
    pub len: u64,
    /// Sparse index: (first message id of a record, position), ascending.
    pub index: Vec<(u64, u64)>,
}

impl std::fmt::Debug for Relocated {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relocated")
            .field("name", &self.name)
            .field("upto", &self.upto)
            .field("len", &self.len)
            .finish()
    }
}

impl Relocated {
    /// A position at or before the record holding `id`.
    pub fn index_lookup(&self, id: u64) -> u64 {
        let at = self.index.partition_point(|&(first, _)| first <= id);
        at.checked_sub(1)
            .and_then(|i| self.index.get(i))
            .map_or(0, |&(_, pos)| pos)
    }
}

/// The file name of a relocation of `topic` up to id `upto`.
pub fn file_name(topic: &str, incarnation: u64, upto: u64) -> String {
    format!("relocated-{topic}-{incarnation}-{upto}.seg")
}

/// Whether a file name is a relocated file.
pub fn is_relocated_name(name: &str) -> bool {
    name.starts_with("relocated-") && name.ends_with(".seg")
}

/// Writes a relocated file, batch by batch.
pub struct Writer {
    path: PathBuf,
    file: Rc<BufferedFile>,
    len: u64,
    index: Vec<(u64, u64)>,
}

impl Writer {
    /// Creates (truncates) the file.
    ///
    /// # Errors
    /// The IO error, as text.
    pub async fn create(dir: &Path, name: &str) -> Result<Writer, String> {
        let path = dir.join(name);
        let file = glommio::io::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .buffered_open(&path)
            .await
            .map_err(|e| format!("create {}: {e}", path.display()))?;
        Ok(Writer {
            path,
            file: Rc::new(file),
            len: 0,
            index: Vec::new(),
        })
    }

    /// Appends one record holding messages from id `first_id` on.
    ///
    /// # Errors
    /// The IO error, as text (also for a short write).
    pub async fn append(&mut self, first_id: u64, record: Vec<u8>) -> Result<(), String> {
        let len = record.len();
        if self
            .index
            .last()
            .is_none_or(|&(_, p)| self.len - p >= INDEX_EVERY_BYTES)
        {
            self.index.push((first_id, self.len));
        }
        let n = self
            .file
            .write_at(record, self.len)
            .await
            .map_err(|e| format!("write {}: {e}", self.path.display()))?;
        if n != len {
            return Err(format!("write {}: short write", self.path.display()));
        }
        self.len += len as u64;
        Ok(())
    }

    /// Syncs the file and its directory; the relocation can then be switched to.
    ///
    /// # Errors
    /// The IO error, as text.
    pub async fn finish(self, name: String, upto: u64) -> Result<Relocated, String> {
        self.file
            .fdatasync()
            .await
            .map_err(|e| format!("fsync {}: {e}", self.path.display()))?;
        if let Some(dir) = self.path.parent() {
            super::log::sync_dir(dir).map_err(|e| format!("fsync {}: {e}", dir.display()))?;
        }
        Ok(Relocated {
            name,
            upto,
            file: self.file,
            len: self.len,
            index: self.index,
        })
    }

    /// Abandons a relocation: removes the file.
    pub fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Opens a relocated file named in the saved state and indexes it.
///
/// # Errors
/// A message when it cannot be read or holds anything but whole, valid records.
pub async fn open(dir: &Path, name: &str, upto: u64) -> Result<Relocated, String> {
    let path = dir.join(name);
    let data = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let data = Bytes::from(data);
    let mut index: Vec<(u64, u64)> = Vec::new();
    let mut pos = 0usize;
    while pos < data.len() {
        match record::read(&data.slice(pos..)) {
            Read::Record(batch, len) => {
                let first = batch
                    .messages
                    .first()
                    .map(super::record::StoredMessage::key);
                let due = index
                    .last()
                    .is_none_or(|&(_, p)| pos as u64 - p >= INDEX_EVERY_BYTES);
                if let (Some(first), true) = (first, due) {
                    index.push((first, pos as u64));
                }
                pos += len;
            }
            Read::End => break,
            Read::Incomplete | Read::Corrupt(_) => {
                return Err(format!("{}: bad record at offset {pos}", path.display()))
            }
        }
    }
    let file = glommio::io::OpenOptions::new()
        .read(true)
        .buffered_open(&path)
        .await
        .map_err(|e| format!("open {}: {e}", path.display()))?;
    Ok(Relocated {
        name: name.to_owned(),
        upto,
        file: Rc::new(file),
        len: pos as u64,
        index,
    })
}
