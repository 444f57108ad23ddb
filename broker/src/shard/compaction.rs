//! Compaction: keeping a slow or abandoned channel from pinning the whole shard log.
//!
//! After every state save the shard looks at which topics still need each segment. When the
//! segments that one topic alone keeps alive add up to at least twice that topic's own live
//! bytes (and two segments), it copies the topic's live messages into a relocated file (see
//! `storage::relocated`) and the pinned segments become reclaimable. Each copy costs the topic's
//! live bytes and frees at least twice as much, so the extra writing stays below half of the
//! shard's own traffic, and the disk holds the slow topic's backlog rather than every topic's.

use std::collections::HashMap;
use std::rc::Rc;

use super::storage::Needs;
use super::Shard;
use crate::storage::reader::{read_topic, Source, Wanted};
use crate::storage::record;
use crate::storage::relocated::{self, Relocated};

/// Messages copied per read during a relocation.
const COPY_BATCH: usize = 4096;

/// A topic to relocate: its live ids `from..=upto`.
#[derive(Debug, Clone)]
pub struct RelocationJob {
    topic: String,
    incarnation: u64,
    from: u64,
    upto: u64,
}

impl Shard {
    /// The topic most worth relocating now, if any is (see the module doc).
    pub fn relocation_candidate(&self, needs: &HashMap<String, Needs>) -> Option<RelocationJob> {
        let spans = self.log.segment_spans();
        let (_, older) = spans.split_last()?;
        let mut alone: HashMap<&str, u64> = HashMap::new();
        let mut live: HashMap<&str, u64> = HashMap::new();
        for (_, len, topics) in older {
            let mut needers = topics
                .iter()
                .filter(|(name, span)| needs.get(*name).is_some_and(|n| n.needs(span)));
            let first = needers.next();
            let more = needers.next().is_some();
            for (name, span) in topics
                .iter()
                .filter(|(n, s)| needs.get(*n).is_some_and(|x| x.needs(s)))
            {
                *live.entry(name.as_str()).or_default() += span.bytes;
            }
            if let (Some((name, _)), false) = (first, more) {
                *alone.entry(name.as_str()).or_default() += len;
            }
        }
        let floor = 2 * self.opts.max_bytes_per_file;
        let (topic, _) = alone
            .into_iter()
            .filter(|(t, pinned)| {
                let own = live.get(t).copied().unwrap_or(0);
                *pinned >= floor && *pinned >= 2 * own
            })
            .max_by_key(|&(_, pinned)| pinned)?;
        let need = needs.get(topic)?;
        let head = self.topics.borrow().get(topic)?.head();
        Some(RelocationJob {
            topic: topic.to_owned(),
            incarnation: need.incarnation,
            from: need.low,
            upto: head,
        })
    }

    /// Copies the job's messages out, switches the topic to them and saves; the pinned segments
    /// are then reclaimed by the save.
    pub async fn relocate(self: Rc<Self>, job: RelocationJob) {
        tracing::info!(
            "TOPIC({}): relocating its live messages out of the shard log (compaction)",
            job.topic
        );
        let copied = self.copy_out(&job).await;
        let relocation = match copied {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("TOPIC({}): relocation failed - {e}", job.topic);
                self.relocating.set(false);
                return;
            }
        };
        let name = relocation.name.clone();
        let previous = {
            let mut topics = self.topics.borrow_mut();
            match topics.get_mut(&job.topic) {
                Some(t) if t.incarnation() == job.incarnation => Some(t.set_relocated(relocation)),
                _ => None,
            }
        };
        let Some(previous) = previous else {
            // The topic went away meanwhile.
            let _ = std::fs::remove_file(self.log.dir().join(&name));
            self.relocating.set(false);
            return;
        };
        tracing::info!(
            "TOPIC({}): relocated ids {}..={} to {name} (previous: {:?})",
            job.topic,
            job.from,
            job.upto,
            previous.as_ref().map(|p| &p.name)
        );
        self.state_changed();
        self.save_state().await;
        if let Some(old) = previous {
            let _ = std::fs::remove_file(self.log.dir().join(&old.name));
        }
        self.relocating.set(false);
    }

    async fn copy_out(&self, job: &RelocationJob) -> Result<Relocated, String> {
        // Every record up to the job's `upto` must be written before it can be read back.
        let appended = self.log.appended();
        self.log
            .written
            .wait_for(appended)
            .await
            .map_err(|_| "the log failed".to_owned())?;
        let name = relocated::file_name(&job.topic, job.incarnation, job.upto);
        let mut writer = relocated::Writer::create(self.log.dir(), &name).await?;
        let mut from = job.from;
        let mut log_pos: Option<u64> = None;
        while from <= job.upto {
            let (current, pos) = self.copy_source(job, from, log_pos)?;
            let want = Wanted {
                topic: &job.topic,
                incarnation: job.incarnation,
                from,
                upto: current.as_ref().map_or(job.upto, |c| c.2.min(job.upto)),
                max: COPY_BATCH,
            };
            let out = match &current {
                Some((file, len, _)) => read_topic(&Source::File(file, *len), &want, pos).await,
                None => read_topic(&Source::Log(&self.log), &want, pos).await,
            };
            let out = match out {
                Ok(o) => o,
                Err(e) => {
                    writer.discard();
                    return Err(e);
                }
            };
            if current.is_none() {
                log_pos = Some(out.next.1);
            }
            let (Some(first), Some(last)) = (out.messages.first(), out.messages.last()) else {
                match current {
                    // Past the old relocated file: continue in the log.
                    Some((_, _, old_upto)) => from = old_upto + 1,
                    None => break,
                }
                continue;
            };
            let (first_id, next) = (first.key(), last.key() + 1);
            let mut buf = Vec::new();
            let msgs = out.messages.iter().map(|m| (&m.msg, m.due_ns));
            record::put_batch(&mut buf, &job.topic, job.incarnation, msgs);
            if let Err(e) = writer.append(first_id, buf).await {
                writer.discard();
                return Err(e);
            }
            from = next;
        }
        writer.finish(name, job.upto).await
    }

    /// Where to read id `from` of the job's topic: its current relocated file (file, length,
    /// last id) and a position in it, or the log and a log position.
    #[allow(clippy::type_complexity)]
    fn copy_source(
        &self,
        job: &RelocationJob,
        from: u64,
        log_pos: Option<u64>,
    ) -> Result<(Option<(Rc<glommio::io::BufferedFile>, u64, u64)>, u64), String> {
        let topics = self.topics.borrow();
        let topic = topics
            .get(&job.topic)
            .filter(|t| t.incarnation() == job.incarnation)
            .ok_or("the topic went away")?;
        match topic.relocated().filter(|r| from <= r.upto) {
            Some(r) => Ok((Some((r.file.clone(), r.len, r.upto)), r.index_lookup(from))),
            None => Ok((None, log_pos.unwrap_or_else(|| topic.index_lookup(from)))),
        }
    }
}
