//! One archive file of `sluice to-file`: opened under the first free revision, written
//! through a buffer (and a gzip encoder), made durable on [`OutputFile::sync`], and on close
//! moved from the work directory to the output directory without overwriting.
//!
//! Mirrors `apps/nsq_to_file/file_logger.go` `updateFile`, `Sync`, `Close` and
//! `exclusiveRename`: `<REV>` becomes `-000000`, `-000001`…; gzip and interval rotation never
//! append to an existing file (`O_EXCL`), plain files do (`O_APPEND`); each sync of a gzip
//! file ends the current gzip member, so the file is a concatenation of complete members plus
//! at most one torn member after a crash (`gzip -d` and [`flate2::read::MultiGzDecoder`]
//! read the complete ones). Beyond upstream, the directory is fsynced after a file is created
//! and after it is moved, so that a synced file's name survives a power failure too.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, ErrorKind, Write};
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

/// Buffer between the encoder (or the messages) and the file.
const BUFFER_BYTES: usize = 64 * 1024;

/// How many revisions are tried before giving up on a name.
const MAX_REVISIONS: u32 = 1_000_000;

/// Where the bytes go: straight to the buffered file, or through a gzip member.
enum Writer {
    Plain(BufWriter<File>),
    /// Between members (after a sync): nothing buffered.
    GzipIdle(BufWriter<File>),
    GzipMember(GzEncoder<BufWriter<File>>),
}

/// How files are named and opened (the parts of the options this file needs).
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Where files are written while open.
    pub work_dir: PathBuf,
    /// Where closed files are moved.
    pub output_dir: PathBuf,
    /// `Some(level)` to gzip.
    pub gzip_level: Option<u32>,
    /// Never append to an existing file (gzip or interval rotation).
    pub exclusive: bool,
    /// `--rotate-size` (0: off): an existing file already past it is skipped.
    pub rotate_size: u64,
}

/// An open archive file.
pub struct OutputFile {
    path: PathBuf,
    /// `path` relative to the work directory (for the move).
    relative: PathBuf,
    /// The name template with `<REV>` still in it (for renames on conflict).
    template: String,
    rev: u32,
    writer: Option<Writer>,
    level: u32,
    /// Bytes as upstream counts them: the size at open plus the bytes given to `write`.
    size: u64,
}

impl OutputFile {
    /// Opens `template` (a file name with `<REV>`, relative to the work directory) under the
    /// first revision from `rev` on that is free; returns the file and the revision used.
    ///
    /// # Errors
    /// Directories or files that cannot be created.
    pub fn open(spec: &FileSpec, template: &str, mut rev: u32) -> io::Result<OutputFile> {
        let attempts = rev.saturating_add(MAX_REVISIONS);
        while rev < attempts {
            let relative = PathBuf::from(template.replace("<REV>", &format!("-{rev:06}")));
            let path = spec.work_dir.join(&relative);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            if spec.work_dir != spec.output_dir {
                let out = spec.output_dir.join(&relative);
                if let Some(parent) = out.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                if out.exists() {
                    rev += 1;
                    continue;
                }
            }
            let mut options = OpenOptions::new();
            if spec.exclusive {
                options.write(true).create_new(true);
            } else {
                options.append(true).create(true);
            }
            let file = match options.open(&path) {
                Ok(file) => file,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                    rev += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let size = file.metadata()?.len();
            if spec.rotate_size > 0 && size > spec.rotate_size {
                rev += 1;
                continue;
            }
            sync_parent(&path)?;
            let buffered = BufWriter::with_capacity(BUFFER_BYTES, file);
            let writer = match spec.gzip_level {
                Some(_) => Writer::GzipIdle(buffered),
                None => Writer::Plain(buffered),
            };
            return Ok(OutputFile {
                path,
                relative,
                template: template.to_owned(),
                rev,
                writer: Some(writer),
                level: spec.gzip_level.unwrap_or(6),
                size,
            });
        }
        Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("no free revision for {template} after {MAX_REVISIONS} tries"),
        ))
    }

    /// The path in the work directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The revision this file was opened under.
    pub fn rev(&self) -> u32 {
        self.rev
    }

    /// Bytes counted toward `--rotate-size`.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends bytes (buffered: durable only after [`OutputFile::sync`]).
    ///
    /// # Errors
    /// A failed write.
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        let writer = match self.writer.take() {
            Some(Writer::GzipIdle(file)) => {
                Writer::GzipMember(GzEncoder::new(file, Compression::new(self.level)))
            }
            Some(other) => other,
            None => return Err(closed()),
        };
        let writer = self.writer.insert(writer);
        match writer {
            Writer::Plain(file) | Writer::GzipIdle(file) => file.write_all(bytes)?,
            Writer::GzipMember(encoder) => encoder.write_all(bytes)?,
        }
        self.size += bytes.len() as u64;
        Ok(())
    }

    /// Makes everything written so far durable: ends the gzip member, writes the buffer and
    /// fsyncs the file.
    ///
    /// # Errors
    /// A failed write or fsync; the file must then be abandoned.
    pub fn sync(&mut self) -> io::Result<()> {
        let writer = match self.writer.take() {
            Some(Writer::GzipMember(encoder)) => Writer::GzipIdle(encoder.finish()?),
            Some(other) => other,
            None => return Err(closed()),
        };
        match self.writer.insert(writer) {
            Writer::Plain(file) | Writer::GzipIdle(file) => {
                file.flush()?;
                file.get_ref().sync_data()
            }
            Writer::GzipMember(_) => Err(closed()),
        }
    }

    /// Syncs, closes and moves the file to the output directory (under the next free
    /// revision if its name is taken there); returns where it ended up.
    ///
    /// # Errors
    /// A failed sync or move.
    pub fn close(mut self, spec: &FileSpec) -> io::Result<PathBuf> {
        self.sync()?;
        drop(self.writer.take());
        if spec.work_dir == spec.output_dir {
            return Ok(self.path);
        }
        let mut rev = self.rev;
        let mut dst = spec.output_dir.join(&self.relative);
        let attempts = rev.saturating_add(MAX_REVISIONS);
        loop {
            match exclusive_rename(&self.path, &dst) {
                Ok(()) => {
                    sync_parent(&dst)?;
                    return Ok(dst);
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists && rev < attempts => {
                    rev += 1;
                    let name = self.template.replace("<REV>", &format!("-{rev:06}"));
                    dst = spec.output_dir.join(name);
                }
                Err(e) => return Err(e),
            }
        }
    }
}

fn closed() -> io::Error {
    io::Error::other("the file is closed")
}

/// Moves `src` to `dst` unless `dst` exists (upstream: a hard link, then an unlink).
fn exclusive_rename(src: &Path, dst: &Path) -> io::Result<()> {
    if let Some(parent) = dst.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::hard_link(src, dst)?;
    std::fs::remove_file(src)
}

/// Fsyncs the directory holding `path`, so the name of a new file is durable.
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => File::open(".")?.sync_all(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("sluice-output-file-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn spec(dir: &Path, gzip: bool) -> FileSpec {
        FileSpec {
            work_dir: dir.join("work"),
            output_dir: dir.join("out"),
            gzip_level: gzip.then_some(6),
            exclusive: gzip,
            rotate_size: 0,
        }
    }

    #[test]
    fn gzip_members_concatenate_and_the_move_never_overwrites() {
        let dir = temp_dir("gzip");
        let spec = spec(&dir, true);
        let mut file = OutputFile::open(&spec, "t<REV>.log.gz", 0).unwrap();
        assert_eq!(file.rev(), 0);
        file.write(b"one\n").unwrap();
        file.sync().unwrap();
        file.sync().unwrap();
        file.write(b"two\n").unwrap();
        assert_eq!(file.size(), 8);
        // Something else already took the name in the output directory.
        std::fs::create_dir_all(&spec.output_dir).unwrap();
        std::fs::write(spec.output_dir.join("t-000000.log.gz"), b"x").unwrap();
        let moved = file.close(&spec).unwrap();
        assert_eq!(moved, spec.output_dir.join("t-000001.log.gz"));
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(File::open(&moved).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "one\ntwo\n");
        assert!(!spec.work_dir.join("t-000000.log.gz").exists());
        // A name taken in the output directory is skipped at open.
        let next = OutputFile::open(&spec, "t<REV>.log.gz", 0).unwrap();
        assert_eq!(next.rev(), 2);
    }

    #[test]
    fn plain_files_append_unless_past_the_rotate_size() {
        let dir = temp_dir("plain");
        let mut spec = spec(&dir, false);
        spec.output_dir = spec.work_dir.clone();
        let mut file = OutputFile::open(&spec, "t<REV>.log", 0).unwrap();
        file.write(b"0123456789\n").unwrap();
        file.close(&spec).unwrap();
        let again = OutputFile::open(&spec, "t<REV>.log", 0).unwrap();
        assert_eq!((again.rev(), again.size()), (0, 11));
        spec.rotate_size = 5;
        let rotated = OutputFile::open(&spec, "t<REV>.log", 0).unwrap();
        assert_eq!((rotated.rev(), rotated.size()), (1, 0));
    }
}
