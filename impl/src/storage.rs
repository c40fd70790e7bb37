//! A segment's durable log on disk: an append-only file of checksummed frames.
//!
//! Each frame is `u32 length (LE) | u32 crc32c of payload (LE) | payload`, the payload being one
//! [`Record`] as JSON (self-describing, so records that gain fields later still parse). The model
//! hands the runtime the *whole* log on every `Out::save`; [`SegmentStore::save`] compares it with
//! what is already on disk and appends only the records that are new, then the host calls
//! [`SegmentStore::sync`] (fsync) before any message produced after the save leaves the process.
//!
//! On open the file is read front to back and reading stops at the first frame that is torn
//! (incomplete header or payload), fails its checksum, or does not parse. Everything from that
//! offset on is cut off (the file is truncated there and the cut is reported), so a corrupt record
//! is never handed to the actor and therefore never served. Records after a corrupt one are
//! dropped with it: the log is only trusted as a prefix.

use sixfold_model::log::Log;
use sixfold_model::msg::{Lsn, Record};
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest payload a frame may declare; anything larger is corruption, not a record.
pub const MAX_RECORD_PAYLOAD: u32 = 64 * 1024;

/// Bytes of frame header before the payload (length + crc).
pub const FRAME_HEADER: usize = 8;

/// Why the store could not be used: all I/O, with the path, so the operator knows which file.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// Opening, reading, writing, syncing or truncating the log file failed.
    #[error("segment log {path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// What recovery found at the end of the file and cut off, for the log line operators read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dropped {
    /// Offset of the first byte dropped (the file now ends here).
    pub offset: u64,
    /// How many bytes were dropped.
    pub bytes: u64,
    /// Why reading stopped there.
    pub reason: String,
}

/// The result of opening a store: what was recovered and what was dropped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// The recovered log (`None` when the file held no valid record).
    pub log: Option<Log>,
    /// Frames read successfully.
    pub frames: usize,
    /// The torn or corrupt tail that was cut off, if any.
    pub dropped: Option<Dropped>,
}

/// An open segment log file.
#[derive(Debug)]
pub struct SegmentStore {
    path: PathBuf,
    file: File,
    on_disk: HashSet<Lsn>,
    dirty: bool,
    bytes_written: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes one record as a frame.
pub fn encode_frame(record: &Record) -> Vec<u8> {
    let payload = serde_json::to_vec(record).expect("records always serialize");
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload.len());
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    frame
}

/// Decodes the frames of `bytes` up to the first bad one: the records, and where and why
/// decoding stopped if it did not reach the end.
pub fn decode_frames(bytes: &[u8]) -> (Vec<Record>, Option<(usize, String)>) {
    let mut records = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER {
            return (records, Some((at, "torn frame header".into())));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_RECORD_PAYLOAD {
            return (
                records,
                Some((at, format!("implausible frame length {len}"))),
            );
        }
        let end = FRAME_HEADER + len as usize;
        if rest.len() < end {
            return (records, Some((at, "torn frame payload".into())));
        }
        let payload = &rest[FRAME_HEADER..end];
        if crc32c::crc32c(payload) != crc {
            return (records, Some((at, "checksum mismatch".into())));
        }
        match serde_json::from_slice::<Record>(payload) {
            Ok(r) => records.push(r),
            Err(e) => return (records, Some((at, format!("unparsable record: {e}")))),
        }
        at += end;
    }
    (records, None)
}

impl SegmentStore {
    /// Opens (creating if needed) the log at `path`, recovers its valid prefix and truncates any
    /// torn or corrupt tail.
    pub fn open(path: &Path) -> Result<(SegmentStore, Recovery), StorageError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(path))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(io(path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io(path))?;
        let (records, stop) = decode_frames(&bytes);
        let mut dropped = None;
        if let Some((offset, reason)) = stop {
            file.set_len(offset as u64).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
            dropped = Some(Dropped {
                offset: offset as u64,
                bytes: (bytes.len() - offset) as u64,
                reason,
            });
        }
        file.seek(SeekFrom::End(0)).map_err(io(path))?;
        let frames = records.len();
        let mut log = Log::default();
        let mut on_disk = HashSet::new();
        for r in records {
            on_disk.insert(r.lsn);
            log.insert(r);
        }
        let store = SegmentStore {
            path: path.to_path_buf(),
            file,
            on_disk,
            dirty: false,
            bytes_written: 0,
        };
        let log = (!log.records().is_empty()).then_some(log);
        Ok((
            store,
            Recovery {
                log,
                frames,
                dropped,
            },
        ))
    }

    /// Makes `log` the durable log: appends the records not yet on disk (without syncing; call
    /// [`SegmentStore::sync`] before releasing messages). If `log` no longer holds a record that is
    /// on disk (a future protocol that truncates), the file is rewritten atomically instead.
    pub fn save(&mut self, log: &Log) -> Result<(), StorageError> {
        let records = log.records();
        let missing = records.len().checked_sub(self.on_disk.len());
        let Some(mut missing) = missing else {
            return self.rewrite(log);
        };
        let mut new = Vec::new();
        // New records are usually at the end: walk back until all of them are found.
        for r in records.iter().rev() {
            if missing == 0 {
                break;
            }
            if !self.on_disk.contains(&r.lsn) {
                new.push(*r);
                missing -= 1;
            }
        }
        if missing > 0 {
            return self.rewrite(log);
        }
        let mut buf = Vec::new();
        for r in new.iter().rev() {
            buf.extend_from_slice(&encode_frame(r));
            self.on_disk.insert(r.lsn);
        }
        if !buf.is_empty() {
            self.file.write_all(&buf).map_err(io(&self.path))?;
            self.bytes_written += buf.len() as u64;
            self.dirty = true;
        }
        Ok(())
    }

    fn rewrite(&mut self, log: &Log) -> Result<(), StorageError> {
        let tmp = self.path.with_extension("rewrite");
        let mut buf = Vec::new();
        for r in log.records() {
            buf.extend_from_slice(&encode_frame(r));
        }
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&buf).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.on_disk = log.records().iter().map(|r| r.lsn).collect();
        self.bytes_written += buf.len() as u64;
        self.dirty = false;
        Ok(())
    }

    /// fsyncs the appended records, if any were appended since the last sync.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.file.sync_data().map_err(io(&self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Bytes appended to the file since it was opened (for the benchmark's I/O figures).
    pub fn bytes_written(&self) -> u64 {
        self.bytes_written
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: Lsn) -> Record {
        Record {
            lsn,
            key: 1,
            value: lsn * 100,
            epoch: sixfold_model::msg::FIRST_EPOCH,
        }
    }

    fn log_of(lsns: &[Lsn]) -> Log {
        let mut l = Log::default();
        for &n in lsns {
            l.insert(rec(n));
        }
        l
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("sixfold-store-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d.join("segment.log")
    }

    #[test]
    fn appends_only_new_records_and_recovers_them() {
        let p = tmp("append");
        let (mut s, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, None);
        s.save(&log_of(&[1, 2])).unwrap();
        s.sync().unwrap();
        let after_two = std::fs::metadata(&p).unwrap().len();
        s.save(&log_of(&[1, 2, 4])).unwrap();
        s.save(&log_of(&[1, 2, 3, 4])).unwrap();
        s.sync().unwrap();
        let frame = encode_frame(&rec(3)).len() as u64;
        assert_eq!(std::fs::metadata(&p).unwrap().len(), after_two + 2 * frame);
        drop(s);
        let (_, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, Some(log_of(&[1, 2, 3, 4])));
        assert_eq!(r.dropped, None);
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        let p = tmp("torn");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        s.save(&log_of(&[1, 2, 3])).unwrap();
        s.sync().unwrap();
        drop(s);
        let full = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full - 3).unwrap();
        drop(f);
        let (_, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, Some(log_of(&[1, 2])));
        let d = r.dropped.unwrap();
        assert_eq!(d.reason, "torn frame payload");
        assert_eq!(d.offset + d.bytes, full - 3);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), d.offset);
    }

    #[test]
    fn corrupt_byte_is_caught_by_the_crc_and_never_recovered() {
        let p = tmp("corrupt");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        s.save(&log_of(&[1, 2, 3])).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut bytes = std::fs::read(&p).unwrap();
        let second = encode_frame(&rec(1)).len();
        // Flip a digit of record 2's value: still valid JSON, so only the crc can tell.
        let at = second
            + FRAME_HEADER
            + bytes[second + FRAME_HEADER..]
                .iter()
                .position(|b| *b == b'2')
                .unwrap();
        bytes[at] = b'7';
        std::fs::write(&p, &bytes).unwrap();
        let (_, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, Some(log_of(&[1])));
        let d = r.dropped.unwrap();
        assert_eq!(d.reason, "checksum mismatch");
        assert_eq!(d.offset, second as u64);
    }

    #[test]
    fn garbage_length_is_not_trusted() {
        let p = tmp("garbage");
        std::fs::write(&p, [0xff; 32]).unwrap();
        let (_, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, None);
        assert!(r.dropped.unwrap().reason.contains("implausible"));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
    }

    #[test]
    fn shrinking_log_rewrites_the_file() {
        let p = tmp("rewrite");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        s.save(&log_of(&[1, 2, 3])).unwrap();
        s.save(&log_of(&[1, 2])).unwrap();
        s.save(&log_of(&[1, 2, 5])).unwrap();
        s.sync().unwrap();
        drop(s);
        let (_, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, Some(log_of(&[1, 2, 5])));
    }
}
