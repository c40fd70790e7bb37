//! A segment's durable log on disk: an append-only file of checksummed frames, one per save.
//!
//! **What is durable is what the model saves.** The model hands the runtime the whole [`Log`] on
//! every `Out::save`: records, the volume epoch the segment has seen, and the truncation ranges it
//! knows of. Fencing and truncation must survive a restart (a segment that came back in an older
//! epoch would accept a superseded writer), so all three are on disk. [`SegmentStore::save`]
//! compares the new log with a mirror of what the file holds and appends one frame, an
//! [`Entry::Delta`] of what changed (a raised epoch, new truncations, new records). Replaying
//! the deltas rebuilds
//! exactly the saved log; the store checks this on every save (the mirror must equal the log it
//! was given) and, if a save is not expressible as a delta (the log lost a record no truncation
//! voids, or its epoch went down), rewrites the file atomically as one [`Entry::Snapshot`]. The
//! host calls [`SegmentStore::sync`] (fsync) before any message produced after the save leaves the
//! process, so an epoch raise or a learnt truncation is on disk before the `SclReport`, `Ack` or
//! `Fenced` that depends on it.
//!
//! **Frames.** `u32 length (LE) | u32 crc32c of body (LE) | body`, body = `u8` [`DISK_VERSION`]
//! then the [`Entry`] in postcard (compact: a record is a dozen bytes, not the ~150 of JSON). One
//! save is one frame, so a torn write loses whole saves: the file always reopens to a state some
//! save had.
//!
//! **Recovery.** On open the file is read front to back and reading stops at the first frame that
//! is torn (incomplete header or body), fails its checksum, has an unknown version or does not
//! decode. Everything from that offset on is cut off (the file is truncated there and the cut is
//! reported), so a corrupt entry is never handed to the actor and therefore never served. Frames
//! after a corrupt one are dropped with it: the log is only trusted as a prefix.

use serde::{Deserialize, Serialize};
use sixfold_model::protocol::log::Log;
use sixfold_model::protocol::msg::{Epoch, Record, Truncation};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Largest body a frame may declare; anything larger is corruption, not a save. A snapshot of
/// the whole log is one frame, so this bounds a segment's log at about a million records.
pub const MAX_FRAME_BODY: u32 = 16 << 20;

/// Bytes of frame header before the body (length + crc).
pub const FRAME_HEADER: usize = 8;

/// Version of the on-disk encoding, the first byte of every frame body.
pub const DISK_VERSION: u8 = 1;

/// What one save changed. Applied in field order on reopen: raise the epoch, learn the
/// truncations (dropping what they void), then add the records.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// The new epoch, if the save raised it.
    pub epoch: Option<Epoch>,
    /// Truncation ranges learnt by this save.
    pub truncations: Vec<Truncation>,
    /// Records added by this save, in LSN order.
    pub records: Vec<Record>,
}

impl Delta {
    /// Applies this delta to `log`, as reopening the file does.
    pub fn apply(&self, log: &mut Log) {
        if let Some(e) = self.epoch {
            log.raise_epoch(e);
        }
        log.learn(&self.truncations);
        for r in &self.records {
            log.insert_unchecked(*r);
        }
    }

    /// Whether the save changed nothing on disk.
    pub fn is_empty(&self) -> bool {
        self.epoch.is_none() && self.truncations.is_empty() && self.records.is_empty()
    }
}

/// One frame's content.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// What one save changed.
    Delta(Delta),
    /// The whole log: the only frame of a rewritten file.
    Snapshot(Log),
}

impl Entry {
    /// Applies this entry to `log`, as reopening the file does.
    pub fn apply(&self, log: &mut Log) {
        match self {
            Entry::Delta(d) => d.apply(log),
            Entry::Snapshot(l) => *log = l.clone(),
        }
    }
}

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
    /// The recovered log (`None` when the file held no valid frame: a fresh disk).
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
    /// What replaying the file gives: the last saved log.
    disk: Log,
    dirty: bool,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Encodes one entry as a frame.
pub fn encode_frame(entry: &Entry) -> Vec<u8> {
    let mut body = vec![DISK_VERSION];
    body.extend(postcard::to_stdvec(entry).expect("entries always serialize"));
    let mut frame = Vec::with_capacity(FRAME_HEADER + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// Decodes the body of one frame whose checksum matched.
fn decode_body(body: &[u8]) -> Result<Entry, String> {
    match body.split_first() {
        Some((&DISK_VERSION, rest)) => match postcard::take_from_bytes::<Entry>(rest) {
            Ok((entry, [])) => Ok(entry),
            Ok(_) => Err("trailing bytes after the entry".into()),
            Err(e) => Err(format!("undecodable entry: {e}")),
        },
        Some((v, _)) => Err(format!(
            "disk format version {v} (this build reads {DISK_VERSION})"
        )),
        None => Err("empty frame body".into()),
    }
}

/// Where and why decoding stopped before the end: the offset of the bad frame, and the reason.
pub type Stop = (usize, String);

/// Decodes the frames of `bytes` up to the first bad one: each entry with the offset where its
/// frame ends, and where and why decoding stopped if it did not reach the end.
pub fn decode_frames(bytes: &[u8]) -> (Vec<(Entry, usize)>, Option<Stop>) {
    let mut entries = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < FRAME_HEADER {
            return (entries, Some((at, "torn frame header".into())));
        }
        let len = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
        let crc = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
        if len == 0 || len > MAX_FRAME_BODY {
            let reason = format!("implausible frame length {len}");
            return (entries, Some((at, reason)));
        }
        let end = FRAME_HEADER + len as usize;
        if rest.len() < end {
            return (entries, Some((at, "torn frame body".into())));
        }
        let body = &rest[FRAME_HEADER..end];
        if crc32c::crc32c(body) != crc {
            return (entries, Some((at, "checksum mismatch".into())));
        }
        match decode_body(body) {
            Ok(e) => entries.push((e, at + end)),
            Err(reason) => return (entries, Some((at, reason))),
        }
        at += end;
    }
    (entries, None)
}

/// The records of `log` that `disk` lacks, in LSN order. New records are usually at the end,
/// so the walk goes back from there until as many as the logs differ in length are found.
fn new_records(disk: &Log, log: &Log) -> Vec<Record> {
    let mut missing = log.records().len().saturating_sub(disk.records().len());
    let mut new = Vec::new();
    for r in log.records().iter().rev() {
        if missing == 0 {
            break;
        }
        if !disk.contains(r.lsn) {
            new.push(*r);
            missing -= 1;
        }
    }
    new.reverse();
    new
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
        let (entries, stop) = decode_frames(&bytes);
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
        let mut disk = Log::default();
        for (e, _) in &entries {
            e.apply(&mut disk);
        }
        let log = (!entries.is_empty()).then(|| disk.clone());
        let store = SegmentStore {
            path: path.to_path_buf(),
            file,
            disk,
            dirty: false,
        };
        let frames = entries.len();
        Ok((
            store,
            Recovery {
                log,
                frames,
                dropped,
            },
        ))
    }

    /// Makes `log` the durable log: appends one frame with what changed since the last save
    /// (without syncing; call [`SegmentStore::sync`] before releasing messages). If no delta
    /// leads from the file's log to `log`, the file is rewritten atomically instead.
    pub fn save(&mut self, log: &Log) -> Result<(), StorageError> {
        let mut delta = Delta {
            epoch: (log.epoch() > self.disk.epoch()).then_some(log.epoch()),
            truncations: log
                .truncations()
                .iter()
                .filter(|t| !self.disk.truncations().contains(t))
                .copied()
                .collect(),
            records: Vec::new(),
        };
        delta.apply(&mut self.disk);
        delta.records = new_records(&self.disk, log);
        for r in &delta.records {
            self.disk.insert_unchecked(*r);
        }
        if self.disk != *log {
            return self.rewrite(log);
        }
        if !delta.is_empty() {
            let frame = encode_frame(&Entry::Delta(delta));
            self.file.write_all(&frame).map_err(io(&self.path))?;
            self.dirty = true;
        }
        Ok(())
    }

    /// Replaces the file by one snapshot frame of `log`: written aside, fsynced, renamed over
    /// the log, and the directory fsynced, so a crash leaves either the old file or the new.
    fn rewrite(&mut self, log: &Log) -> Result<(), StorageError> {
        let tmp = self.path.with_extension("rewrite");
        let frame = encode_frame(&Entry::Snapshot(log.clone()));
        let mut f = File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(&frame).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        if let Some(dir) = self.path.parent() {
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(dir))?;
        }
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        self.disk = log.clone();
        self.dirty = false;
        Ok(())
    }

    /// Cuts the file back to the last frame after which it held `target` (`None`: no frame at
    /// all), dropping the saves after it; returns whether such a frame boundary exists (if not,
    /// nothing changes). A host killed mid-batch may have written saves whose steps never reached
    /// its trace; none of their messages left the process, so undoing them is as if those steps
    /// never happened, and the restart then starts from the last save the trace shows.
    pub fn rollback_to(&mut self, target: Option<&Log>) -> Result<bool, StorageError> {
        let bytes = std::fs::read(&self.path).map_err(io(&self.path))?;
        let (entries, _) = decode_frames(&bytes);
        let mut log = Log::default();
        let mut cut = target.is_none().then(|| (0, Log::default()));
        for (e, end) in &entries {
            e.apply(&mut log);
            if Some(&log) == target {
                cut = Some((*end, log.clone()));
            }
        }
        let Some((offset, log)) = cut else {
            return Ok(false);
        };
        self.file.set_len(offset as u64).map_err(io(&self.path))?;
        self.file.sync_all().map_err(io(&self.path))?;
        self.disk = log;
        self.dirty = false;
        Ok(true)
    }

    /// fsyncs the appended frames, if any were appended since the last sync.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.file.sync_data().map_err(io(&self.path))?;
            self.dirty = false;
        }
        Ok(())
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sixfold_model::protocol::msg::{Lsn, FIRST_EPOCH};

    fn rec(lsn: Lsn) -> Record {
        Record {
            lsn,
            key: 1,
            value: lsn * 100,
            epoch: FIRST_EPOCH,
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

    fn reopen(p: &Path) -> Recovery {
        SegmentStore::open(p).unwrap().1
    }

    #[test]
    fn one_frame_per_save_and_recovered_exactly() {
        let p = tmp("append");
        let (mut s, r) = SegmentStore::open(&p).unwrap();
        assert_eq!(r.log, None);
        s.save(&log_of(&[1, 2])).unwrap();
        s.sync().unwrap();
        let after_two = std::fs::metadata(&p).unwrap().len();
        s.save(&log_of(&[1, 2, 4])).unwrap();
        s.save(&log_of(&[1, 2, 3, 4])).unwrap();
        s.save(&log_of(&[1, 2, 3, 4])).unwrap();
        s.sync().unwrap();
        let one = encode_frame(&Entry::Delta(Delta {
            records: vec![rec(3)],
            ..Delta::default()
        }));
        assert_eq!(
            std::fs::metadata(&p).unwrap().len(),
            after_two + 2 * one.len() as u64,
            "two saves that add a record each, one that adds nothing"
        );
        drop(s);
        let r = reopen(&p);
        assert_eq!(r.log, Some(log_of(&[1, 2, 3, 4])));
        assert_eq!((r.frames, r.dropped), (3, None));
    }

    #[test]
    fn epoch_and_truncations_survive_a_restart() {
        let p = tmp("fence");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        let mut log = log_of(&[1, 2, 3]);
        s.save(&log).unwrap();
        log.raise_epoch(2);
        s.save(&log).unwrap();
        let t = Truncation {
            epoch: 2,
            after: 1,
            upto: 9,
        };
        log.learn(&[t]);
        log.insert(Record {
            epoch: 2,
            ..rec(10)
        });
        s.save(&log).unwrap();
        s.sync().unwrap();
        drop(s);
        let back = reopen(&p).log.unwrap();
        assert_eq!(back, log);
        assert_eq!((back.epoch(), back.truncations()), (2, &[t][..]));
        assert_eq!(
            back.scl(),
            10,
            "the range counts as complete after a restart"
        );
    }

    #[test]
    fn torn_tail_is_truncated_and_reported() {
        let p = tmp("torn");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        s.save(&log_of(&[1, 2])).unwrap();
        s.save(&log_of(&[1, 2, 3])).unwrap();
        s.sync().unwrap();
        drop(s);
        let full = std::fs::metadata(&p).unwrap().len();
        let f = OpenOptions::new().write(true).open(&p).unwrap();
        f.set_len(full - 3).unwrap();
        drop(f);
        let r = reopen(&p);
        assert_eq!(r.log, Some(log_of(&[1, 2])));
        let d = r.dropped.unwrap();
        assert_eq!(d.reason, "torn frame body");
        assert_eq!(d.offset + d.bytes, full - 3);
        assert_eq!(std::fs::metadata(&p).unwrap().len(), d.offset);
    }

    #[test]
    fn corrupt_byte_is_caught_by_the_crc_and_never_recovered() {
        let p = tmp("corrupt");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        s.save(&log_of(&[1])).unwrap();
        s.save(&log_of(&[1, 2])).unwrap();
        s.save(&log_of(&[1, 2, 3])).unwrap();
        s.sync().unwrap();
        drop(s);
        let mut bytes = std::fs::read(&p).unwrap();
        let first = std::fs::metadata(&p).unwrap().len() as usize / 3;
        bytes[first + FRAME_HEADER + 2] ^= 0x01;
        std::fs::write(&p, &bytes).unwrap();
        let r = reopen(&p);
        assert_eq!(r.log, Some(log_of(&[1])));
        let d = r.dropped.unwrap();
        assert_eq!(d.reason, "checksum mismatch");
        assert_eq!(d.offset, first as u64);
    }

    #[test]
    fn garbage_and_unknown_versions_are_not_trusted() {
        let p = tmp("garbage");
        std::fs::write(&p, [0xff; 32]).unwrap();
        let r = reopen(&p);
        assert_eq!(r.log, None);
        assert!(r.dropped.unwrap().reason.contains("implausible"));
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        let mut frame = encode_frame(&Entry::Snapshot(log_of(&[1])));
        frame[FRAME_HEADER] = DISK_VERSION + 1;
        let crc = crc32c::crc32c(&frame[FRAME_HEADER..]);
        frame[4..8].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&p, &frame).unwrap();
        let reason = reopen(&p).dropped.unwrap().reason;
        assert_eq!(reason, "disk format version 2 (this build reads 1)");
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
        let r = reopen(&p);
        assert_eq!(r.log, Some(log_of(&[1, 2, 5])));
        assert_eq!(r.frames, 2, "a snapshot, then a delta");
    }

    #[test]
    fn rollback_cuts_back_to_a_saved_log() {
        let p = tmp("rollback");
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        for n in 1..=3 {
            s.save(&log_of(&(1..=n).collect::<Vec<_>>())).unwrap();
        }
        assert!(s.rollback_to(Some(&log_of(&[1, 2]))).unwrap());
        assert!(!s.rollback_to(Some(&log_of(&[7]))).unwrap(), "never saved");
        s.save(&log_of(&[1, 2, 4])).unwrap();
        drop(s);
        assert_eq!(reopen(&p).log, Some(log_of(&[1, 2, 4])));
        let (mut s, _) = SegmentStore::open(&p).unwrap();
        assert!(s.rollback_to(None).unwrap());
        drop(s);
        assert_eq!(reopen(&p).log, None);
    }

    /// One change a segment may make to its log between saves.
    #[derive(Clone, Debug)]
    enum Change {
        Insert(Lsn, Epoch),
        InsertUnchecked(Lsn, Epoch),
        Raise(Epoch),
        Learn(Epoch, Lsn, Lsn),
        Lag,
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            4 => (1..12u64, 1..3u32).prop_map(|(l, e)| Change::Insert(l, e)),
            1 => (1..12u64, 1..3u32).prop_map(|(l, e)| Change::InsertUnchecked(l, e)),
            1 => (1..4u32).prop_map(Change::Raise),
            1 => (2..4u32, 0..8u64, 1..6u64).prop_map(|(e, a, n)| Change::Learn(e, a, a + n)),
            1 => Just(Change::Lag),
        ]
    }

    /// Applies a change; `Lag` returns an older log (what the ack-before-persist mutant saves).
    fn step(log: &mut Log, older: &Log, c: &Change) -> Log {
        let r = |lsn, epoch| Record {
            lsn,
            key: 0,
            value: lsn * 10 + u64::from(epoch),
            epoch,
        };
        match *c {
            Change::Insert(l, e) => {
                let _ = log.insert(r(l, e));
            }
            Change::InsertUnchecked(l, e) => {
                let _ = log.insert_unchecked(r(l, e));
            }
            Change::Raise(e) => {
                let _ = log.raise_epoch(e);
            }
            Change::Learn(epoch, after, upto) => {
                let _ = log.learn(&[Truncation { epoch, after, upto }]);
            }
            Change::Lag => return older.clone(),
        }
        log.clone()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Any sequence of saves, then a reopen, gives back the last saved log; after a torn or
        /// corrupt tail, a log some earlier save had (or none), never anything else.
        #[test]
        fn reopen_gives_a_saved_log(
            changes in prop::collection::vec(change(), 1..24),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
        ) {
            let p = tmp("prop");
            let (mut s, _) = SegmentStore::open(&p).unwrap();
            let (mut log, mut saved) = (Log::default(), vec![None]);
            for c in &changes {
                let older = saved.last().cloned().flatten().unwrap_or_default();
                let out = step(&mut log, &older, c);
                s.save(&out).unwrap();
                saved.push(Some(out));
            }
            s.sync().unwrap();
            drop(s);
            let last = saved.last().unwrap().clone().unwrap();
            prop_assert_eq!(reopen(&p).log.unwrap_or_default(), last);
            let bytes = std::fs::read(&p).unwrap();
            let had = |s: &Option<Log>| s.clone().unwrap_or_default();
            let earlier = |got: Option<Log>| saved.iter().any(|s| had(s) == had(&got));
            std::fs::write(&p, &bytes[..cut.index(bytes.len() + 1)]).unwrap();
            prop_assert!(earlier(reopen(&p).log), "torn tail gave a log no save had");
            let mut corrupt = bytes.clone();
            if !corrupt.is_empty() {
                corrupt[flip.index(bytes.len())] ^= 0x40;
            }
            std::fs::write(&p, &corrupt).unwrap();
            prop_assert!(earlier(reopen(&p).log), "corrupt byte gave a log no save had");
        }
    }
}
