//! Start-up: reading a shard's segments back, cutting a torn tail, reporting corruption.
//!
//! Runs before the shard accepts connections, with plain blocking file IO (nothing else runs on
//! the shard yet). A torn tail (the last write of the newest segment cut short, or zero padding)
//! is cut off and reported; a record that is complete but fails its checksum anywhere is
//! reported as corruption (log, `/stats`, `/ping` answers 500) and reading of that segment stops
//! there: nothing is ever skipped silently.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::Path;

use bytes::Bytes;

use super::log::{Segment, TopicSpan, SEGMENT_SUFFIX};
use super::record::{self, Read};

/// What a topic looks like in the log.
#[derive(Debug, Clone, Default)]
pub struct TopicInLog {
    /// Incarnation of its newest record.
    pub incarnation: u64,
    /// Highest message id per incarnation.
    pub max_id: HashMap<u64, u64>,
    /// Sparse index per incarnation: (first message id of a record, its position), ascending.
    pub index: HashMap<u64, Vec<(u64, u64)>>,
    /// Per incarnation, runs of records: (lowest id, highest id, messages), one per index
    /// interval, to estimate how many messages lie at or after an id.
    pub runs: HashMap<u64, Vec<(u64, u64, u64)>>,
}

impl TopicInLog {
    /// About how many messages of `incarnation` have an id at or after `from` (exact for whole
    /// runs, interpolated by id inside the run holding `from`).
    pub fn count_from(&self, incarnation: u64, from: u64) -> u64 {
        let Some(runs) = self.runs.get(&incarnation) else {
            return 0;
        };
        runs.iter()
            .map(|&(low, high, count)| {
                if low >= from {
                    count
                } else if high < from {
                    0
                } else {
                    let part = (high - from + 1) as f64 / (high - low + 1) as f64;
                    (count as f64 * part).ceil() as u64
                }
            })
            .sum()
    }
}

/// The result of reading a shard's log.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The segments, oldest first, with what they hold.
    pub segments: Vec<Segment>,
    /// The position after the last valid record.
    pub end: u64,
    /// Topics found, by name.
    pub topics: HashMap<String, TopicInLog>,
    /// Corruption found (one line each); empty when healthy.
    pub corruption: Vec<String>,
    /// Torn tails cut (one line each).
    pub cut: Vec<String>,
}

/// A new index entry at most every this many bytes of a topic's records.
pub const INDEX_EVERY_BYTES: u64 = 256 * 1024;

/// Reads every segment of `dir`.
///
/// # Errors
/// A message when the directory or a segment cannot be read at all.
pub fn scan(dir: &Path) -> Result<Recovered, String> {
    let mut bases = list_segments(dir)?;
    bases.sort_unstable();
    let mut out = Recovered::default();
    let last = bases.last().copied();
    for base in bases {
        let path = super::log::segment_path(dir, base);
        let data = read_file(&path)?;
        let (valid, topics, problem) = scan_segment(base, &data, &mut out.topics);
        match problem {
            Some(Problem::Torn) if Some(base) == last => {
                cut_tail(&path, valid)?;
                out.cut.push(format!(
                    "{}: cut torn tail at offset {valid} ({} bytes)",
                    path.display(),
                    data.len() as u64 - valid
                ));
            }
            Some(Problem::Torn) => out.corruption.push(format!(
                "{}: incomplete record at offset {valid} in a segment that is not the newest",
                path.display()
            )),
            Some(Problem::Corrupt(why)) => out
                .corruption
                .push(format!("{}: {why} at offset {valid}", path.display())),
            None => {}
        }
        out.end = base + valid;
        out.segments.push(Segment::recovered(base, valid, topics));
    }
    for line in &out.cut {
        tracing::warn!("STORAGE: {line}");
    }
    for line in &out.corruption {
        tracing::error!("STORAGE: corruption: {line}");
    }
    Ok(out)
}

enum Problem {
    Torn,
    Corrupt(&'static str),
}

/// Reads the records of one segment; returns the valid length, the topics in it and how it ended.
fn scan_segment(
    base: u64,
    data: &Bytes,
    topics: &mut HashMap<String, TopicInLog>,
) -> (u64, HashMap<String, TopicSpan>, Option<Problem>) {
    let mut spans: HashMap<String, TopicSpan> = HashMap::new();
    let mut last_indexed: HashMap<(String, u64), u64> = HashMap::new();
    let mut pos = 0usize;
    loop {
        let rest = data.slice(pos..);
        match record::read(&rest) {
            Read::Record(batch, len) => {
                let (Some(first), Some(last)) = (batch.messages.first(), batch.messages.last())
                else {
                    pos += len;
                    continue;
                };
                let (first_id, max_seq) = (first.key(), last.key());
                let at = base + pos as u64;
                let topic = topics.entry(batch.topic.clone()).or_default();
                topic.incarnation = batch.incarnation;
                let seq = topic.max_id.entry(batch.incarnation).or_insert(max_seq);
                *seq = (*seq).max(max_seq);
                let key = (batch.topic.clone(), batch.incarnation);
                let due = last_indexed
                    .get(&key)
                    .is_none_or(|p| at - p >= INDEX_EVERY_BYTES);
                let runs = topic.runs.entry(batch.incarnation).or_default();
                match runs.last_mut() {
                    Some(run) if !due && run.1 < first_id => {
                        run.1 = max_seq;
                        run.2 += batch.messages.len() as u64;
                    }
                    _ => runs.push((first_id, max_seq, batch.messages.len() as u64)),
                }
                if due {
                    topic
                        .index
                        .entry(batch.incarnation)
                        .or_default()
                        .push((first_id, at));
                    last_indexed.insert(key, at);
                }
                let span = TopicSpan {
                    incarnation: batch.incarnation,
                    max_id: max_seq,
                    bytes: 0,
                };
                super::log::note_span(&mut spans, &batch.topic, span, len as u64);
                pos += len;
            }
            Read::End => return (pos as u64, spans, None),
            Read::Incomplete if rest.is_empty() => return (pos as u64, spans, None),
            Read::Incomplete => return (pos as u64, spans, Some(Problem::Torn)),
            Read::Corrupt(why) => return (pos as u64, spans, Some(Problem::Corrupt(why))),
        }
    }
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, String> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    let mut bases = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SEGMENT_SUFFIX)) else {
            continue;
        };
        if let Ok(base) = stem.parse::<u64>() {
            bases.push(base);
        }
    }
    Ok(bases)
}

fn read_file(path: &Path) -> Result<Bytes, String> {
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(Bytes::from(data))
}

fn cut_tail(path: &Path, len: u64) -> Result<(), String> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot cut {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_proto::{Message, MessageId};

    fn write_segment(dir: &Path, base: u64, records: &[(&str, u64, usize)]) -> Vec<u8> {
        let mut data = Vec::new();
        for (topic, seq, count) in records {
            let msgs: Vec<Message> = (0..*count)
                .map(|i| Message {
                    id: MessageId::from_u64(seq + i as u64),
                    timestamp: 1,
                    attempts: 0,
                    body: Bytes::from(vec![b'x'; 40]),
                })
                .collect();
            record::put_batch(&mut data, topic, 1, msgs.iter().map(|m| (m, 0)));
        }
        std::fs::write(super::super::log::segment_path(dir, base), &data).unwrap();
        data
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-recovery-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn clean_segments_are_read_whole() {
        let dir = temp_dir("clean");
        let first = write_segment(&dir, 0, &[("a", 0, 3), ("b", 0, 2)]);
        write_segment(&dir, first.len() as u64, &[("a", 3, 4)]);
        let r = scan(&dir).unwrap();
        assert!(r.corruption.is_empty() && r.cut.is_empty());
        assert_eq!(r.segments.len(), 2);
        assert_eq!(r.topics["a"].max_id[&1], 6);
        assert_eq!(r.topics["b"].max_id[&1], 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_from_an_id_are_counted_for_stats() {
        let dir = temp_dir("count");
        write_segment(&dir, 0, &[("a", 100, 10), ("b", 0, 5), ("a", 110, 10)]);
        let r = scan(&dir).unwrap();
        let a = &r.topics["a"];
        assert_eq!(a.count_from(1, 0), 20);
        assert_eq!(a.count_from(1, 110), 10);
        assert_eq!(a.count_from(1, 120), 0);
        // Inside a run the count is interpolated by id, never below the exact figure here.
        assert!(a.count_from(1, 105) >= 15);
        assert_eq!(a.count_from(2, 0), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_torn_tail_is_cut_at_every_offset() {
        let dir = temp_dir("torn");
        let data = write_segment(&dir, 0, &[("a", 0, 2), ("a", 2, 2)]);
        let path = super::super::log::segment_path(&dir, 0);
        let first_len = {
            let Read::Record(_, len) = record::read(&Bytes::from(data.clone())) else {
                panic!()
            };
            len
        };
        for cut in first_len + 1..data.len() {
            std::fs::write(&path, &data[..cut]).unwrap();
            let r = scan(&dir).unwrap();
            assert!(r.corruption.is_empty(), "cut {cut}: {:?}", r.corruption);
            assert_eq!(r.cut.len(), 1, "cut {cut}");
            assert_eq!(r.end, first_len as u64);
            assert_eq!(std::fs::metadata(&path).unwrap().len(), first_len as u64);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn zero_padding_after_the_data_is_not_corruption() {
        let dir = temp_dir("padding");
        let mut data = write_segment(&dir, 0, &[("a", 0, 2)]);
        let len = data.len() as u64;
        data.extend_from_slice(&[0u8; 4096]);
        std::fs::write(super::super::log::segment_path(&dir, 0), &data).unwrap();
        let r = scan(&dir).unwrap();
        assert!(r.corruption.is_empty());
        assert_eq!(r.end, len);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_flipped_bit_in_an_older_record_is_reported() {
        let dir = temp_dir("flip");
        let mut data = write_segment(&dir, 0, &[("a", 0, 2), ("a", 2, 2)]);
        data[20] ^= 0x10;
        std::fs::write(super::super::log::segment_path(&dir, 0), &data).unwrap();
        let r = scan(&dir).unwrap();
        assert_eq!(r.corruption.len(), 1, "{:?}", r);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
