//! A segment's durable redo log: records kept sorted by LSN, the volume epoch the segment has
//! seen and the truncation ranges it knows of, and the SCL derived from them.

use crate::protocol::msg::{
    Epoch, Key, Lsn, Record, Truncation, Version, VolumeEpoch, FIRST_EPOCH,
};
use serde::{Deserialize, Serialize};

/// The records a segment holds, sorted by LSN with no duplicates, with the segment's volume
/// epoch and known truncations. This is what a segment saves (`Out::save`): the model keeps it
/// as the actor's `Storage`, the runtime appends it to disk. Epoch and truncations are durable
/// because fencing and truncation must survive a segment's restart.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Log {
    records: Vec<Record>,
    #[serde(default = "first_epoch")]
    epoch: Epoch,
    #[serde(default)]
    truncations: Vec<Truncation>,
}

fn first_epoch() -> Epoch {
    FIRST_EPOCH
}

/// An empty log in the volume's first epoch.
impl Default for Log {
    fn default() -> Self {
        Log {
            records: Vec::new(),
            epoch: FIRST_EPOCH,
            truncations: Vec::new(),
        }
    }
}

/// Short on purpose: the explorer and counterexamples print states with `{:?}`.
/// `Log[1=10 2=20] scl=2` lists LSN=value pairs and the SCL.
impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Log[")?;
        for (i, r) in self.records.iter().enumerate() {
            let sep = if i == 0 { "" } else { " " };
            if r.key == 0 {
                write!(f, "{sep}{}={}", r.lsn, r.value)?;
            } else {
                write!(f, "{sep}{}:k{}={}", r.lsn, r.key, r.value)?;
            }
        }
        write!(f, "] scl={}", self.scl())?;
        if self.epoch != FIRST_EPOCH {
            write!(f, " e{}", self.epoch)?;
        }
        for t in &self.truncations {
            write!(f, " void({},{}]", t.after, t.upto)?;
        }
        Ok(())
    }
}

impl Log {
    /// The records, in LSN order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Whether the log holds a record with this LSN.
    pub fn contains(&self, lsn: Lsn) -> bool {
        self.records.binary_search_by_key(&lsn, |r| r.lsn).is_ok()
    }

    /// The newest volume epoch the segment has seen.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The truncation ranges the segment knows of, oldest first.
    pub fn truncations(&self) -> &[Truncation] {
        &self.truncations
    }

    /// Whether a known truncation voids this record.
    pub fn voided(&self, record: &Record) -> bool {
        self.truncations.iter().any(|t| t.voids(record))
    }

    /// Raise the epoch to `epoch` if it is newer; returns whether it changed.
    pub fn raise_epoch(&mut self, epoch: Epoch) -> bool {
        let newer = epoch > self.epoch;
        if newer {
            self.epoch = epoch;
        }
        newer
    }

    /// Learn truncation ranges: remember them and drop every record they void. Returns whether
    /// anything changed.
    pub fn learn(&mut self, truncations: &[Truncation]) -> bool {
        let mut changed = false;
        for t in truncations {
            if !self.truncations.contains(t) {
                self.truncations.push(*t);
                changed = true;
            }
        }
        if changed {
            self.truncations.sort();
            let truncations = &self.truncations;
            self.records
                .retain(|r| !truncations.iter().any(|t| t.voids(r)));
        }
        changed
    }

    /// Adopt a writer's view of the volume: its epoch, if newer, and its truncations. A
    /// writer of a newer epoch than the segment has seen brings the truncations that stand:
    /// the segment forgets any older one it knew and the writer did not. Such a truncation was
    /// declared by a writer superseded before it could commit (found by the `failover` model
    /// with two failovers: writer 2 opens late, after writer 3 has recovered and served a read
    /// of LSN 1, and its truncation, reaching a segment writer 3 never asked, voided LSN 1
    /// there); every truncation on a write quorum is in the newer writer's list, since its
    /// recovery read a quorum that meets it.
    pub fn adopt(&mut self, volume: &VolumeEpoch) -> bool {
        let newer = volume.number > self.epoch;
        let raised = self.raise_epoch(volume.number);
        let stale = newer
            && self
                .truncations
                .iter()
                .any(|t| !volume.truncations.contains(t));
        if stale {
            self.truncations.retain(|t| volume.truncations.contains(t));
        }
        self.learn(&volume.truncations) | raised | stale
    }

    /// Adds a record; returns false if one with that LSN was already there or a known
    /// truncation voids it.
    pub fn insert(&mut self, record: Record) -> bool {
        if self.voided(&record) {
            return false;
        }
        self.insert_unchecked(record)
    }

    /// Adds a record whatever the truncations say (only the `gossip-ignores-truncation` mutant
    /// does this); returns false if one with that LSN was already there.
    pub fn insert_unchecked(&mut self, record: Record) -> bool {
        match self.records.binary_search_by_key(&record.lsn, |r| r.lsn) {
            Ok(_) => false,
            Err(at) => {
                self.records.insert(at, record);
                true
            }
        }
    }

    /// Segment complete LSN: the highest L such that every LSN in 1..=L holds a record or lies in
    /// a known truncation range. LSNs are dense within a protection group apart from truncated
    /// ranges, so a gap is simply a missing number.
    pub fn scl(&self) -> Lsn {
        let mut scl = 0;
        let mut records = self.records.iter().peekable();
        let mut truncations = self.truncations.iter().peekable();
        loop {
            if let Some(t) = truncations.peek() {
                if t.after <= scl {
                    scl = scl.max(t.upto);
                    truncations.next();
                    continue;
                }
            }
            match records.peek() {
                Some(r) if r.lsn <= scl => {
                    records.next();
                }
                Some(r) if r.lsn == scl + 1 => {
                    scl = r.lsn;
                    records.next();
                }
                _ => return scl,
            }
        }
    }

    /// The highest LSN the segment knows something about: its newest record or the end of its
    /// newest truncation. Above SCL, it means the segment can see a gap.
    pub fn horizon(&self) -> Lsn {
        let newest = self.records.last().map_or(0, |r| r.lsn);
        let voided = self.truncations.iter().map(|t| t.upto).max().unwrap_or(0);
        newest.max(voided)
    }

    /// The newest version of `key` at or below `point` (the initial version if none).
    pub fn read_at(&self, key: Key, point: Lsn) -> Version {
        self.records
            .iter()
            .rev()
            .find(|r| r.key == key && r.lsn <= point)
            .map(Record::version)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(lsn: Lsn) -> Record {
        Record {
            lsn,
            key: 0,
            value: lsn * 10,
            epoch: FIRST_EPOCH,
        }
    }

    #[test]
    fn truncation_voids_old_records_and_counts_as_complete() {
        let mut log = Log::default();
        for l in [1, 2, 3] {
            log.insert(rec(l));
        }
        let t = Truncation {
            epoch: 2,
            after: 1,
            upto: 9,
        };
        assert!(log.adopt(&VolumeEpoch {
            number: 2,
            truncations: vec![t],
        }));
        assert_eq!(log.records().len(), 1, "records 2 and 3 are voided");
        assert_eq!(log.scl(), 9);
        assert!(!log.insert(rec(5)), "an old record in the range is refused");
        let new = Record {
            epoch: 2,
            ..rec(10)
        };
        assert!(log.insert(new));
        assert_eq!(log.scl(), 10);
        assert_eq!(log.epoch(), 2);
        let mut gap = Log::default();
        gap.learn(&[t]);
        assert_eq!(gap.scl(), 0, "record 1 is missing below the range");
        assert_eq!(gap.horizon(), 9);
    }

    #[test]
    fn scl_stops_at_the_first_gap() {
        let mut log = Log::default();
        assert_eq!(log.scl(), 0);
        log.insert(rec(2));
        assert_eq!(log.scl(), 0);
        log.insert(rec(1));
        assert_eq!(log.scl(), 2);
        log.insert(rec(4));
        assert_eq!(log.scl(), 2);
        assert!(!log.insert(rec(4)));
        assert_eq!(log.records().len(), 3);
    }

    #[test]
    fn read_at_respects_the_point() {
        let mut log = Log::default();
        for l in 1..=3 {
            log.insert(rec(l));
        }
        assert_eq!(log.read_at(0, 2), rec(2).version());
        assert_eq!(log.read_at(0, 0), Version::default());
        assert_eq!(log.read_at(7, 3), Version::default());
    }
    fn at(lsn: Lsn, epoch: Epoch) -> Record {
        Record { epoch, ..rec(lsn) }
    }

    fn void(epoch: Epoch, after: Lsn, upto: Lsn) -> Truncation {
        Truncation { epoch, after, upto }
    }

    /// A log saved before epochs and truncations were durable reads back in the first epoch.
    #[test]
    fn an_old_saved_log_reads_back_in_the_first_epoch() {
        let log: Log = serde_json::from_str(r#"{"records":[]}"#).unwrap();
        assert_eq!(log.epoch(), FIRST_EPOCH);
        assert!(log.truncations().is_empty());
        assert_eq!(log, Log::default());
    }

    #[test]
    fn raise_epoch_reports_only_a_newer_epoch() {
        let mut log = Log::default();
        assert!(
            !log.raise_epoch(FIRST_EPOCH),
            "the same epoch changes nothing"
        );
        assert!(log.raise_epoch(3));
        assert_eq!(log.epoch(), 3);
        assert!(!log.raise_epoch(2), "an older epoch is ignored");
        assert_eq!(log.epoch(), 3);
    }

    #[test]
    fn learn_reports_news_keeps_truncations_sorted_and_drops_only_voided_records() {
        let mut log = Log::default();
        for r in [at(1, 1), at(2, 1), at(3, 2)] {
            assert!(log.insert(r));
        }
        assert!(!log.learn(&[]), "nothing learnt");
        let late = void(3, 2, 4);
        let early = void(2, 1, 3);
        assert!(log.learn(&[late]));
        assert_eq!(
            log.records(),
            &[at(1, 1), at(2, 1)],
            "LSN 3 of epoch 2 is void"
        );
        assert!(!log.learn(&[late]), "a known truncation is no news");
        assert!(log.learn(&[late, early]));
        assert_eq!(log.truncations(), &[early, late], "oldest first");
        assert_eq!(log.records(), &[at(1, 1)], "LSN 2 of epoch 1 is void too");
        assert!(log.voided(&at(2, 1)));
        assert!(!log.voided(&at(1, 1)), "at or below the kept VDL");
        assert!(!log.voided(&at(5, 3)), "the recovering epoch's own record");
    }

    #[test]
    fn adopt_reports_each_kind_of_change() {
        let t2 = void(2, 1, 9);
        let vol = |number, truncations: &[Truncation]| VolumeEpoch {
            number,
            truncations: truncations.to_vec(),
        };
        let mut log = Log::default();
        assert!(!log.adopt(&VolumeEpoch::first()), "the volume as created");
        assert!(log.adopt(&vol(2, &[])), "a newer epoch alone");
        assert_eq!(log.epoch(), 2);
        assert!(!log.adopt(&vol(2, &[])));
        assert!(log.adopt(&vol(2, &[t2])), "a truncation alone");
        assert!(!log.adopt(&vol(2, &[t2])));
        assert!(!log.adopt(&vol(1, &[])), "an older writer forgets nothing");
        assert_eq!(log.truncations(), &[t2]);
        // A newer writer that does not list t2: the segment forgets it.
        let mut only_stale = log.clone();
        assert!(only_stale.adopt(&vol(3, &[])), "a newer epoch that forgets");
        assert!(only_stale.truncations().is_empty());
        assert_eq!(only_stale.epoch(), 3);
        // The same epoch does not make the segment forget what it knows.
        let mut same = log.clone();
        assert!(same.adopt(&vol(2, &[void(2, 3, 11)])));
        assert_eq!(same.truncations().len(), 2);
        // A newer writer listing t2 keeps it; a newer one listing more adds the rest.
        let mut keeps = log.clone();
        let t3 = void(3, 4, 12);
        assert!(keeps.adopt(&vol(3, &[t2, t3])));
        assert_eq!(keeps.truncations(), &[t2, t3]);
    }

    /// A truncation that a newer writer does not list is forgotten: what it voided may be
    /// inserted again.
    #[test]
    fn a_forgotten_truncation_no_longer_refuses_records() {
        let mut log = Log::default();
        log.learn(&[void(2, 0, 8)]);
        log.epoch = 2;
        assert!(!log.insert(at(1, 1)));
        assert!(log.adopt(&VolumeEpoch {
            number: 3,
            truncations: Vec::new(),
        }));
        assert!(log.insert(at(1, 1)));
        assert!(log.contains(1));
        assert!(!log.contains(2));
    }

    #[test]
    fn insert_unchecked_ignores_truncations_but_not_duplicates() {
        let mut log = Log::default();
        log.learn(&[void(2, 0, 8)]);
        assert!(!log.insert(at(3, 1)));
        assert!(log.insert_unchecked(at(3, 1)));
        assert!(!log.insert_unchecked(at(3, 1)));
        assert!(log.insert_unchecked(at(1, 1)));
        assert_eq!(log.records(), &[at(1, 1), at(3, 1)], "kept in LSN order");
    }

    #[test]
    fn scl_counts_truncated_ranges_and_records_inside_them() {
        let mut log = Log::default();
        log.learn(&[void(2, 0, 3)]);
        assert_eq!(log.scl(), 3, "a range starting at 0 is complete");
        assert!(
            log.insert(at(2, 2)),
            "a record of the recovering epoch inside its range"
        );
        assert_eq!(log.scl(), 3, "a record at or below SCL is skipped");
        assert!(log.insert(at(4, 2)));
        assert_eq!(log.scl(), 4);
        assert!(log.insert(at(6, 2)));
        assert_eq!(log.scl(), 4, "LSN 5 is missing");
        assert_eq!(log.horizon(), 6);
        let mut two = Log::default();
        two.learn(&[void(2, 0, 2), void(3, 2, 5)]);
        assert_eq!(two.scl(), 5, "ranges chain");
        assert_eq!(two.horizon(), 5);
        let mut apart = Log::default();
        assert!(apart.insert(rec(1)));
        apart.learn(&[void(2, 2, 5)]);
        assert_eq!(apart.scl(), 1, "LSN 2 is missing below the range");
        assert_eq!(apart.horizon(), 5);
        assert!(apart.insert(at(2, 2)));
        assert_eq!(apart.scl(), 5);
        assert_eq!(Log::default().horizon(), 0);
    }

    #[test]
    fn read_at_picks_the_newest_version_of_its_key() {
        let mut log = Log::default();
        let other = Record {
            key: 7,
            value: 70,
            ..rec(2)
        };
        for r in [rec(1), other, rec(3)] {
            log.insert(r);
        }
        assert_eq!(
            log.read_at(0, 2),
            rec(1).version(),
            "LSN 2 is another key's"
        );
        assert_eq!(log.read_at(7, 3), other.version());
        assert_eq!(log.read_at(7, 1), Version::default());
        assert_eq!(log.read_at(0, 9), rec(3).version());
    }
}
