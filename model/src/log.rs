//! A segment's durable redo log: records kept sorted by LSN, and the SCL derived from them.

use crate::msg::{Key, Lsn, Record, Version};
use serde::{Deserialize, Serialize};

/// The records a segment holds, sorted by LSN with no duplicates. This is what a segment saves
/// (`Out::save`): the model keeps it as the actor's `Storage`, the runtime appends it to disk.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Log {
    records: Vec<Record>,
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
        write!(f, "] scl={}", self.scl())
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

    /// Adds a record; returns false if one with that LSN was already there.
    pub fn insert(&mut self, record: Record) -> bool {
        match self.records.binary_search_by_key(&record.lsn, |r| r.lsn) {
            Ok(_) => false,
            Err(at) => {
                self.records.insert(at, record);
                true
            }
        }
    }

    /// Segment complete LSN: the highest L such that every record 1..=L is present. LSNs are
    /// dense within a protection group, so a gap is simply a missing number.
    pub fn scl(&self) -> Lsn {
        let mut scl = 0;
        for r in &self.records {
            if r.lsn != scl + 1 {
                break;
            }
            scl = r.lsn;
        }
        scl
    }

    /// The newest version of `key` at or below `point` (the initial version if none).
    pub fn read_at(&self, key: Key, point: Lsn) -> Version {
        self.records
            .iter()
            .rev()
            .find(|r| r.key == key && r.lsn <= point)
            .map(|r| Version {
                lsn: r.lsn,
                value: r.value,
            })
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
        }
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
        assert_eq!(log.read_at(0, 2), Version { lsn: 2, value: 20 });
        assert_eq!(log.read_at(0, 0), Version::default());
        assert_eq!(log.read_at(7, 3), Version::default());
    }
}
