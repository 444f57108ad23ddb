//! Reading a topic's messages back, for channels with a backlog: from the shard's log, or from
//! a topic's relocated file (see [`super::relocated`]).
//!
//! Reads go forward from a position in chunks through the io_uring file API, skipping other
//! topics' records, never past the written data, and only ids within `[from, upto]`.

use std::rc::Rc;

use bytes::Bytes;
use glommio::io::BufferedFile;

use super::log::SegmentLog;
use super::record::{self, Read, StoredMessage, FRAME_HEADER_LEN};

/// Bytes read per IO.
pub const READ_CHUNK: usize = 256 * 1024;

/// Where a topic's records are.
pub enum Source<'a> {
    /// The shard's segment log (positions are global log positions).
    Log(&'a SegmentLog),
    /// One file holding only this topic's records, `len` bytes of them.
    File(&'a Rc<BufferedFile>, u64),
}

impl Source<'_> {
    /// The segment holding `pos` (its base and end), within the readable data.
    fn span(&self, pos: u64) -> Option<(u64, u64, u64)> {
        match self {
            Source::Log(log) => {
                let (base, end) = log.segment_at(pos)?;
                Some((base, end, log.written.get()))
            }
            Source::File(_, len) => (pos < *len).then_some((0, *len, *len)),
        }
    }

    fn start(&self, pos: u64) -> u64 {
        match self {
            Source::Log(log) => pos.max(log.first_base().unwrap_or(0)),
            Source::File(..) => pos,
        }
    }

    async fn read_at(&self, base: u64, pos: u64, len: usize) -> Result<Bytes, String> {
        let data = match self {
            Source::Log(log) => {
                let file = log
                    .file(base)
                    .await
                    .map_err(|e| format!("open segment {base}: {e}"))?;
                file.read_at(pos - base, len).await
            }
            Source::File(file, _) => file.read_at(pos, len).await,
        }
        .map_err(|e| format!("read at {pos}: {e}"))?;
        Ok(Bytes::copy_from_slice(&data))
    }
}

/// What a read found.
#[derive(Debug, Default)]
pub struct ReadOut {
    /// The topic's messages with ids in `[from, upto]`, in order (at most the asked number).
    pub messages: Vec<StoredMessage>,
    /// Where to continue: the first message id not returned, and a position at or before its
    /// record.
    pub next: (u64, u64),
    /// The source has nothing more (readable now) at or after `next`.
    pub exhausted: bool,
}

/// The topic a read is for.
pub struct Wanted<'a> {
    /// Topic name.
    pub topic: &'a str,
    /// Its incarnation.
    pub incarnation: u64,
    /// The first id wanted.
    pub from: u64,
    /// The last id wanted (inclusive).
    pub upto: u64,
    /// The most messages to return.
    pub max: usize,
}

/// Reads up to `want.max` messages of a topic scanning `source` from `pos`.
///
/// # Errors
/// A message when a file cannot be read or holds a corrupt record.
pub async fn read_topic(
    source: &Source<'_>,
    want: &Wanted<'_>,
    pos: u64,
) -> Result<ReadOut, String> {
    let mut pos = source.start(pos);
    let mut out = ReadOut {
        messages: Vec::new(),
        next: (want.from, pos),
        exhausted: false,
    };
    while out.messages.len() < want.max {
        let Some((base, seg_end, limit)) = source.span(pos) else {
            break;
        };
        // Skip the gap a reclaimed segment left.
        pos = pos.max(base);
        let end = seg_end.min(limit);
        if pos >= end {
            break; // at the end of what is written
        }
        let len = (end - pos).min(READ_CHUNK as u64) as usize;
        let chunk = source.read_at(base, pos, len).await?;
        let (consumed, full) = take_records(source, want, &chunk, base, pos, end, &mut out).await?;
        if full {
            return Ok(out);
        }
        pos += consumed;
    }
    let next_id = out.messages.last().map_or(want.from, |m| m.key() + 1);
    out.next = (next_id.max(want.from), pos);
    out.exhausted = out.messages.len() < want.max;
    Ok(out)
}

/// Takes the wanted messages of the whole records in `chunk` (read at `pos`). Returns the bytes
/// consumed and whether `out` is full (then `out.next` is set).
async fn take_records(
    source: &Source<'_>,
    want: &Wanted<'_>,
    chunk: &Bytes,
    base: u64,
    pos: u64,
    end: u64,
    out: &mut ReadOut,
) -> Result<(u64, bool), String> {
    let mut offset = 0usize;
    loop {
        let at = pos + offset as u64;
        let (batch, len) = match record::read(&chunk.slice(offset..)) {
            Read::Record(batch, len) => (batch, len),
            Read::Incomplete if offset == 0 => {
                // One record larger than a chunk: read it whole.
                let whole = record_len(chunk).ok_or("unreadable record header")?;
                let big = source
                    .read_at(base, at, whole.min((end - at) as usize))
                    .await?;
                match record::read(&big) {
                    Read::Record(batch, len) => (batch, len),
                    _ => return Err(format!("corrupt or unfinished record at {at}")),
                }
            }
            Read::Incomplete => return Ok((offset as u64, false)),
            // Zeros inside written data: nothing more in this segment.
            Read::End => return Ok((end - pos, false)),
            Read::Corrupt(why) => return Err(format!("{why} at position {at}")),
        };
        if batch.topic == want.topic && batch.incarnation == want.incarnation {
            let wanted = batch
                .messages
                .into_iter()
                .filter(|m| (want.from..=want.upto).contains(&m.key()));
            for m in wanted {
                if out.messages.len() >= want.max {
                    out.next = (m.key(), at);
                    return Ok((offset as u64, true));
                }
                out.messages.push(m);
            }
        }
        offset += len;
        if offset >= chunk.len() {
            return Ok((offset as u64, false));
        }
    }
}

fn record_len(chunk: &Bytes) -> Option<usize> {
    let header = chunk.get(..FRAME_HEADER_LEN)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    Some(FRAME_HEADER_LEN + len as usize)
}
