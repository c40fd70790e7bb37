//! What a campaign does to and reads from a segment's disk: the log file's SCL, read without
//! disturbing the running segment (to know a restarted or replaced segment has caught up before
//! the next fault), and the torn or corrupt tails it writes while the segment is down.
//!
//! A tail is *added*, never cut out of what was saved: a torn tail is the first bytes of a frame
//! that was never finished, a corrupt one a whole frame whose checksum does not match, which is
//! what a crash in the middle of a write leaves. Cutting into frames that were saved and synced
//! would be losing part of a disk, which the model knows only as losing all of it (see
//! `replace a disk`), and replay would rightly refuse a restart from a log no save left.

use sixfold_impl::storage::{decode_frames, encode_frame, Delta, Entry};
use sixfold_model::protocol::log::Log;
use sixfold_model::protocol::msg::{Lsn, Record};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The log file of segment `id` in `dir`.
pub fn log_path(dir: &Path, id: usize) -> PathBuf {
    dir.join(format!("node-{id}")).join("segment.log")
}

/// Reads a segment's log file incrementally: the frames after the last one read, while the file
/// is the same file (a rewrite or a restart, which may cut it, starts over).
#[derive(Default)]
pub struct DiskWatch {
    ino: u64,
    offset: usize,
    log: Log,
}

impl DiskWatch {
    /// Forgets what was read (the segment restarted: recovery may have cut the file).
    pub fn reset(&mut self) {
        *self = DiskWatch::default();
    }

    /// The SCL of what `path` holds now (0 if it does not exist). A frame being written is not
    /// read until it is whole.
    pub fn scl(&mut self, path: &Path) -> Lsn {
        let Ok(meta) = std::fs::metadata(path) else {
            self.reset();
            return 0;
        };
        if meta.ino() != self.ino || (meta.len() as usize) < self.offset {
            self.reset();
            self.ino = meta.ino();
        }
        if let Ok(bytes) = read_from(path, self.offset) {
            let (entries, _) = decode_frames(&bytes);
            let base = self.offset;
            for (e, end) in entries {
                e.apply(&mut self.log);
                self.offset = base + end;
            }
        }
        self.log.scl()
    }
}

/// The bytes of `path` from `offset` on.
fn read_from(path: &Path, offset: usize) -> std::io::Result<Vec<u8>> {
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset as u64))?;
    let mut out = Vec::new();
    f.read_to_end(&mut out)?;
    Ok(out)
}

/// Appends the first `bytes` bytes of a frame that was never finished to the log at `path`.
pub fn tear_tail(path: &Path, bytes: usize) -> std::io::Result<usize> {
    let frame = encode_frame(&Entry::Delta(Delta {
        epoch: None,
        truncations: Vec::new(),
        records: vec![Record {
            lsn: 1 << 40,
            key: 0,
            value: 666,
            epoch: 1,
        }],
    }));
    let n = bytes.clamp(1, frame.len() - 1);
    append(path, &frame[..n])?;
    Ok(n)
}

/// Appends a whole frame of `len` body bytes whose checksum does not match them.
pub fn corrupt_tail(path: &Path, len: usize) -> std::io::Result<()> {
    let body: Vec<u8> = (0..len.max(1))
        .map(|i| (i as u8).wrapping_mul(37))
        .collect();
    let crc = crc32c_of(&body) ^ 0xdead_beef;
    let mut frame = (body.len() as u32).to_le_bytes().to_vec();
    frame.extend_from_slice(&crc.to_le_bytes());
    frame.extend_from_slice(&body);
    append(path, &frame)
}

fn crc32c_of(b: &[u8]) -> u32 {
    // The storage's own frame encoding computes it; a valid frame's header holds it.
    let f = sixfold_impl::wire::frame_raw(b);
    u32::from_le_bytes(f[4..8].try_into().expect("4 bytes"))
}

fn append(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_tails_are_dropped_by_decoding_and_the_scl_is_read_incrementally() {
        let dir = std::env::temp_dir().join(format!("sixfold-disk-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = log_path(&dir, 0);
        let rec = |lsn| Record {
            lsn,
            key: 1,
            value: lsn * 10,
            epoch: 1,
        };
        let delta = |lsns: &[u64]| {
            encode_frame(&Entry::Delta(Delta {
                epoch: None,
                truncations: Vec::new(),
                records: lsns.iter().map(|&l| rec(l)).collect(),
            }))
        };
        let mut w = DiskWatch::default();
        assert_eq!(w.scl(&path), 0, "no file yet");
        append(&path, &delta(&[1, 2])).unwrap();
        assert_eq!(w.scl(&path), 2);
        tear_tail(&path, 5).unwrap();
        assert_eq!(w.scl(&path), 2, "a torn frame is not read");
        let bytes = std::fs::read(&path).unwrap();
        let (entries, stop) = decode_frames(&bytes);
        assert_eq!(entries.len(), 1);
        assert_eq!(stop.unwrap().1, "torn frame header");
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        corrupt_tail(&path, 12).unwrap();
        let (_, stop) = decode_frames(&std::fs::read(&path).unwrap());
        assert_eq!(stop.unwrap().1, "checksum mismatch");
        w.reset();
        assert_eq!(w.scl(&path), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
