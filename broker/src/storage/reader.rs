//! Reading a topic's messages back from the log, for channels with a backlog.
//!
//! Reads go forward from a position in chunks through the io_uring file API, skipping other
//! topics' records, and never past the `written` watermark.

use bytes::Bytes;

use super::log::SegmentLog;
use super::record::{self, Read, StoredMessage, FRAME_HEADER_LEN};

/// Bytes read per IO.
pub const READ_CHUNK: usize = 256 * 1024;

/// What a read found.
#[derive(Debug, Default)]
pub struct ReadOut {
    /// The topic's messages with ids from `from` on, in order (at most the asked number).
    pub messages: Vec<StoredMessage>,
    /// Where to continue: the first message id not returned, and a log position at or before
    /// its record.
    pub next: (u64, u64),
}

/// Reads up to `max` messages of `topic` (this `incarnation`) with ids from `from` on,
/// scanning the log from `pos`.
///
/// # Errors
/// A message when a segment cannot be read or holds a corrupt record.
pub async fn read_topic(
    log: &SegmentLog,
    topic: &str,
    incarnation: u64,
    from: u64,
    pos: u64,
    max: usize,
) -> Result<ReadOut, String> {
    let limit = log.written.get();
    let mut pos = pos.max(log.first_base().unwrap_or(0));
    let mut out = ReadOut {
        messages: Vec::new(),
        next: (from, pos),
    };
    while pos < limit && out.messages.len() < max {
        let Some((base, seg_end)) = log.segment_at(pos) else {
            break;
        };
        let end = seg_end.min(limit);
        if pos >= end {
            pos = seg_end;
            continue;
        }
        let chunk = read_at(log, base, pos, (end - pos).min(READ_CHUNK as u64) as usize).await?;
        let mut offset = 0usize;
        loop {
            let at = pos + offset as u64;
            match record::read(&chunk.slice(offset..)) {
                Read::Record(batch, len) => {
                    if batch.topic == topic && batch.incarnation == incarnation {
                        for m in batch.messages.into_iter().filter(|m| m.key() >= from) {
                            if out.messages.len() >= max {
                                out.next = (m.key(), at);
                                return Ok(out);
                            }
                            out.messages.push(m);
                        }
                    }
                    offset += len;
                }
                Read::Incomplete if offset == 0 => {
                    // One record larger than a chunk: read it whole.
                    let whole = record_len(&chunk).ok_or("unreadable record header")?;
                    let big = read_at(log, base, at, whole.min((end - at) as usize)).await?;
                    if big.len() < whole {
                        return Err(format!("record at {at} runs past the written data"));
                    }
                    let Read::Record(batch, len) = record::read(&big) else {
                        return Err(format!("corrupt record at {at}"));
                    };
                    if batch.topic == topic && batch.incarnation == incarnation {
                        out.messages
                            .extend(batch.messages.into_iter().filter(|m| m.key() >= from));
                    }
                    offset += len;
                    break;
                }
                Read::Incomplete => break,
                // Zeros inside written data: nothing more in this segment.
                Read::End => {
                    offset = (seg_end - pos) as usize;
                    break;
                }
                Read::Corrupt(why) => return Err(format!("{why} at log position {at}")),
            }
        }
        pos += offset as u64;
    }
    let next_id = out.messages.last().map_or(from, |m| m.key() + 1);
    out.next = (next_id.max(from), pos);
    Ok(out)
}

fn record_len(chunk: &Bytes) -> Option<usize> {
    let header = chunk.get(..FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    Some(FRAME_HEADER_LEN + len as usize)
}

async fn read_at(log: &SegmentLog, base: u64, pos: u64, len: usize) -> Result<Bytes, String> {
    let file = log
        .file(base)
        .await
        .map_err(|e| format!("open segment {base}: {e}"))?;
    let data = file
        .read_at(pos - base, len)
        .await
        .map_err(|e| format!("read segment {base} at {}: {e}", pos - base))?;
    Ok(Bytes::copy_from_slice(&data))
}
