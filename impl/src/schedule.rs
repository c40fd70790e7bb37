//! The seeded fault schedule of a campaign (`sixfold campaign`): a pure function from a seed to
//! a list of faults, so one seed names one schedule and a failure found by a long campaign is
//! replayed by giving its seed again.
//!
//! Nothing here does I/O or reads a clock: [`schedule`] draws every fault, its target and its
//! durations from one splitmix64 generator seeded by the seed, and the campaign driver
//! (`checks/src/campaign.rs`) carries each fault out, heals it, and waits for the cluster to serve
//! again before the next. What the cluster then does depends on thread timing, as any real run
//! does; which faults are injected, in what order, against which members, does not.
//!
//! The menu ([`Kind`]) is the one of issue 12: kill -9 of a segment, an AZ, an AZ plus one more
//! (writes stall: only three segments remain), or the writer; a partition of the writer from the
//! control plane, from its clients or from some segments; slow segments; a pause (SIGSTOP, then
//! SIGCONT) of a segment or of the writer past its lease; a torn or corrupt log tail written while
//! its node is down; a replaced disk; a restart of the control plane; segments restarted after a
//! failover; and a stranger sending bad frames to a port. [`Kind::weight`] says how often each is
//! drawn: the faults that cost a failover (about a second of lease) are drawn less often, so a
//! short campaign still covers the whole menu.

use std::fmt;

/// How many AZs the six segments are spread over (segment `i` is in AZ `i / 2`).
pub const AZS: usize = 3;
/// Storage segments.
pub const SEGMENTS: usize = 6;

/// Which port a stranger's frame goes to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Port {
    /// A storage segment's peer port.
    Segment(usize),
    /// The current writer's peer port.
    WriterPeer,
    /// The current writer's client port.
    WriterClient,
    /// The control plane's heartbeat port.
    ControlPlane,
}

/// What a stranger sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadFrame {
    /// Random bytes behind a plausible length (the checksum cannot match).
    Garbage,
    /// A length header past the frame size limit.
    Oversized,
    /// A well-formed frame from a superseded epoch.
    StaleEpoch,
    /// A well-formed hello from an actor id no cluster has.
    UnknownActor,
}

/// What the first writer of a restarted control plane is cut off from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriterCut {
    /// The control plane: no heartbeats, so it is replaced and lives on as a zombie.
    Control,
    /// Its clients, for a while: requests go unanswered.
    Clients,
    /// These segments, for a while.
    Segments(Vec<usize>),
}

/// One fault of the schedule, with its target and durations (ms).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// kill -9 segments (one, an AZ, or an AZ plus one), restarted `down_ms` later from disk.
    Kill {
        /// The segments killed.
        segs: Vec<usize>,
        /// How long they stay down.
        down_ms: u64,
    },
    /// kill -9 the current writer: the control plane promotes the next epoch.
    KillWriter,
    /// SIGSTOP the writer for `ms` (past its lease), then SIGCONT: a zombie that was replaced.
    PauseWriter {
        /// How long it is stopped.
        ms: u64,
    },
    /// SIGSTOP a segment for `ms`, then SIGCONT.
    PauseSegment {
        /// The segment.
        seg: usize,
        /// How long it is stopped.
        ms: u64,
    },
    /// kill -9 a segment, append `bytes` bytes of a frame that was never finished (a torn
    /// write), restart it.
    TearTail {
        /// The segment.
        seg: usize,
        /// How many bytes of the unfinished frame reach the disk.
        bytes: usize,
    },
    /// kill -9 a segment, append a whole frame whose checksum does not match, restart it.
    CorruptTail {
        /// The segment.
        seg: usize,
        /// The frame's body length.
        len: usize,
    },
    /// kill -9 a segment, delete its disk, restart it empty.
    ReplaceDisk {
        /// The segment.
        seg: usize,
    },
    /// kill -9 the control plane (its members stop with it) and start it again on the same
    /// directory; with a cut, the new control plane's first writer is partitioned.
    RestartControlPlane {
        /// What the first writer of the new control plane is cut off from, if anything.
        cut: Option<WriterCut>,
        /// When the cut starts after that writer starts, and how long it lasts (ms).
        at_ms: u64,
        /// How long the cut lasts (ignored for [`WriterCut::Control`], which is for good).
        for_ms: u64,
    },
    /// Segments restarted (stop, start with a partition from the writer) and cut off from the
    /// writer for `ms`.
    PartitionSegments {
        /// The segments.
        segs: Vec<usize>,
        /// How long the partition lasts.
        ms: u64,
    },
    /// Segments restarted slow (every inbound message held `delay_ms`) for `hold_ms`, then
    /// restarted at full speed.
    SlowSegments {
        /// The segments.
        segs: Vec<usize>,
        /// The delay per message.
        delay_ms: u64,
        /// How long they stay slow.
        hold_ms: u64,
    },
    /// kill -9 the writer, wait for its successor to open, then kill -9 and restart segments.
    RestartAfterFailover {
        /// The segments restarted.
        segs: Vec<usize>,
    },
    /// A stranger sends a bad frame to a port.
    Stranger {
        /// Where.
        port: Port,
        /// What.
        frame: BadFrame,
    },
}

/// The kinds of fault, as the campaign's table groups them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// kill -9 one segment.
    KillSegment,
    /// kill -9 both segments of an AZ.
    KillAz,
    /// kill -9 an AZ and one more segment.
    KillAzPlusOne,
    /// kill -9 the writer.
    KillWriter,
    /// Partition the writer from the control plane.
    PartitionWriterControl,
    /// Partition the writer from its clients.
    PartitionWriterClients,
    /// Partition the writer from some segments.
    PartitionWriterSegments,
    /// Slow segments.
    SlowSegments,
    /// SIGSTOP/SIGCONT the writer past its lease.
    PauseWriter,
    /// SIGSTOP/SIGCONT a segment.
    PauseSegment,
    /// A torn log tail while the node is down.
    TearTail,
    /// A corrupt log tail while the node is down.
    CorruptTail,
    /// A replaced disk.
    ReplaceDisk,
    /// Restart the control plane.
    RestartControlPlane,
    /// Restart segments after a failover.
    RestartAfterFailover,
    /// A stranger's bad frame.
    Stranger,
}

impl Kind {
    /// Every kind, in the table's order.
    pub const ALL: [Kind; 16] = [
        Kind::KillSegment,
        Kind::KillAz,
        Kind::KillAzPlusOne,
        Kind::KillWriter,
        Kind::PartitionWriterControl,
        Kind::PartitionWriterClients,
        Kind::PartitionWriterSegments,
        Kind::SlowSegments,
        Kind::PauseWriter,
        Kind::PauseSegment,
        Kind::TearTail,
        Kind::CorruptTail,
        Kind::ReplaceDisk,
        Kind::RestartControlPlane,
        Kind::RestartAfterFailover,
        Kind::Stranger,
    ];

    /// How often it is drawn, relative to the others. A fault that costs a failover (the
    /// writer's lease must run out: about a second) or a control-plane restart (about two) is
    /// drawn less often than one that costs a process restart (tens of ms).
    pub fn weight(self) -> u64 {
        match self {
            Kind::KillSegment => 12,
            Kind::KillAz => 8,
            Kind::KillAzPlusOne => 5,
            Kind::KillWriter => 3,
            Kind::PartitionWriterControl => 2,
            Kind::PartitionWriterClients => 2,
            Kind::PartitionWriterSegments => 6,
            Kind::SlowSegments => 5,
            Kind::PauseWriter => 3,
            Kind::PauseSegment => 8,
            Kind::TearTail => 6,
            Kind::CorruptTail => 6,
            Kind::ReplaceDisk => 6,
            Kind::RestartControlPlane => 2,
            Kind::RestartAfterFailover => 2,
            Kind::Stranger => 16,
        }
    }

    /// Its name in the table.
    pub fn name(self) -> &'static str {
        match self {
            Kind::KillSegment => "kill -9 a segment",
            Kind::KillAz => "kill -9 an AZ",
            Kind::KillAzPlusOne => "kill -9 an AZ + 1",
            Kind::KillWriter => "kill -9 the writer",
            Kind::PartitionWriterControl => "writer cut from control",
            Kind::PartitionWriterClients => "writer cut from clients",
            Kind::PartitionWriterSegments => "writer cut from segments",
            Kind::SlowSegments => "slow segments",
            Kind::PauseWriter => "SIGSTOP the writer",
            Kind::PauseSegment => "SIGSTOP a segment",
            Kind::TearTail => "torn log tail",
            Kind::CorruptTail => "corrupt log tail",
            Kind::ReplaceDisk => "replace a disk",
            Kind::RestartControlPlane => "restart control plane",
            Kind::RestartAfterFailover => "failover, then restarts",
            Kind::Stranger => "stranger's bad frame",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Fault {
    /// Its kind.
    pub fn kind(&self) -> Kind {
        match self {
            Fault::Kill { segs, .. } => match segs.len() {
                1 => Kind::KillSegment,
                2 => Kind::KillAz,
                _ => Kind::KillAzPlusOne,
            },
            Fault::KillWriter => Kind::KillWriter,
            Fault::PauseWriter { .. } => Kind::PauseWriter,
            Fault::PauseSegment { .. } => Kind::PauseSegment,
            Fault::TearTail { .. } => Kind::TearTail,
            Fault::CorruptTail { .. } => Kind::CorruptTail,
            Fault::ReplaceDisk { .. } => Kind::ReplaceDisk,
            Fault::RestartControlPlane { cut, .. } => match cut {
                None => Kind::RestartControlPlane,
                Some(WriterCut::Control) => Kind::PartitionWriterControl,
                Some(WriterCut::Clients) => Kind::PartitionWriterClients,
                Some(WriterCut::Segments(_)) => Kind::PartitionWriterSegments,
            },
            Fault::PartitionSegments { .. } => Kind::PartitionWriterSegments,
            Fault::SlowSegments { .. } => Kind::SlowSegments,
            Fault::RestartAfterFailover { .. } => Kind::RestartAfterFailover,
            Fault::Stranger { .. } => Kind::Stranger,
        }
    }
}

impl fmt::Display for Fault {
    /// One line: what is done to whom.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fault::Kill { segs, down_ms } => {
                write!(f, "kill -9 segments {segs:?}, down {down_ms} ms")
            }
            Fault::KillWriter => write!(f, "kill -9 the writer"),
            Fault::PauseWriter { ms } => write!(f, "SIGSTOP the writer for {ms} ms"),
            Fault::PauseSegment { seg, ms } => write!(f, "SIGSTOP segment {seg} for {ms} ms"),
            Fault::TearTail { seg, bytes } => {
                write!(f, "segment {seg}: kill -9, torn tail of {bytes} byte(s)")
            }
            Fault::CorruptTail { seg, len } => {
                write!(
                    f,
                    "segment {seg}: kill -9, corrupt {len}-byte frame at the tail"
                )
            }
            Fault::ReplaceDisk { seg } => write!(f, "segment {seg}: kill -9, empty disk"),
            Fault::RestartControlPlane { cut, at_ms, for_ms } => {
                write!(f, "kill -9 the control plane and restart it")?;
                match cut {
                    None => Ok(()),
                    Some(WriterCut::Control) => write!(
                        f,
                        "; its first writer cut from the control plane at {at_ms} ms"
                    ),
                    Some(WriterCut::Clients) => write!(
                        f,
                        "; its first writer cut from clients at {at_ms} ms for {for_ms} ms"
                    ),
                    Some(WriterCut::Segments(s)) => write!(
                        f,
                        "; its first writer cut from segments {s:?} at {at_ms} ms for {for_ms} ms"
                    ),
                }
            }
            Fault::PartitionSegments { segs, ms } => {
                write!(f, "segments {segs:?} cut from the writer for {ms} ms")
            }
            Fault::SlowSegments {
                segs,
                delay_ms,
                hold_ms,
            } => write!(
                f,
                "segments {segs:?} slowed by {delay_ms} ms a message for {hold_ms} ms"
            ),
            Fault::RestartAfterFailover { segs } => {
                write!(
                    f,
                    "kill -9 the writer, then kill -9 and restart segments {segs:?}"
                )
            }
            Fault::Stranger { port, frame } => write!(f, "stranger: {frame:?} frame to {port:?}"),
        }
    }
}

/// The splitmix64 generator behind a schedule: small, fixed, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// `k` distinct segments, sorted.
    fn segments(&mut self, k: usize) -> Vec<usize> {
        let mut all: Vec<usize> = (0..SEGMENTS).collect();
        for i in 0..k {
            let j = i + self.below(SEGMENTS - i);
            all.swap(i, j);
        }
        let mut v = all[..k].to_vec();
        v.sort_unstable();
        v
    }

    fn kind(&mut self) -> Kind {
        let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
        let mut roll = self.next() % total;
        for k in Kind::ALL {
            if roll < k.weight() {
                return k;
            }
            roll -= k.weight();
        }
        unreachable!("the roll is below the total weight")
    }
}

/// The longest a writer may hold a lease it was last granted (`writer::LEASE` plus the grant
/// window, rounded up): a writer paused for longer has certainly been replaced.
pub const PAST_LEASE_MS: u64 = 800;

/// The `n` faults of seed `seed`, in order. The same seed and `n` give the same list, and the
/// first `n` faults of a longer schedule of the same seed are this one.
pub fn schedule(seed: u64, n: usize) -> Vec<Fault> {
    let mut rng = Rng(seed);
    (0..n).map(|_| draw(&mut rng)).collect()
}

/// One fault: its kind, then its targets and durations.
fn draw(r: &mut Rng) -> Fault {
    match r.kind() {
        Kind::KillSegment => Fault::Kill {
            segs: r.segments(1),
            down_ms: r.range(0, 150),
        },
        Kind::KillAz => {
            let az = r.below(AZS);
            Fault::Kill {
                segs: vec![2 * az, 2 * az + 1],
                down_ms: r.range(0, 200),
            }
        }
        Kind::KillAzPlusOne => {
            let az = r.below(AZS);
            let others: Vec<usize> = (0..SEGMENTS).filter(|s| s / 2 != az).collect();
            let mut segs = vec![2 * az, 2 * az + 1, others[r.below(others.len())]];
            segs.sort_unstable();
            Fault::Kill {
                segs,
                down_ms: r.range(20, 250),
            }
        }
        Kind::KillWriter => Fault::KillWriter,
        Kind::PauseWriter => Fault::PauseWriter {
            ms: r.range(PAST_LEASE_MS, PAST_LEASE_MS + 600),
        },
        Kind::PauseSegment => Fault::PauseSegment {
            seg: r.below(SEGMENTS),
            ms: r.range(20, 400),
        },
        Kind::TearTail => Fault::TearTail {
            seg: r.below(SEGMENTS),
            bytes: r.range(1, 40) as usize,
        },
        Kind::CorruptTail => Fault::CorruptTail {
            seg: r.below(SEGMENTS),
            len: r.range(1, 64) as usize,
        },
        Kind::ReplaceDisk => Fault::ReplaceDisk {
            seg: r.below(SEGMENTS),
        },
        Kind::RestartControlPlane => restart_control_plane(r, None),
        Kind::PartitionWriterControl => restart_control_plane(r, Some(WriterCut::Control)),
        Kind::PartitionWriterClients => restart_control_plane(r, Some(WriterCut::Clients)),
        Kind::PartitionWriterSegments => {
            let k = 1 + r.below(2);
            let segs = r.segments(k);
            // One in four through the writer's own fault spec (a restarted control plane's
            // first writer), the rest from the segments' side, which costs no failover.
            if r.below(4) == 0 {
                restart_control_plane(r, Some(WriterCut::Segments(segs)))
            } else {
                Fault::PartitionSegments {
                    segs,
                    ms: r.range(50, 400),
                }
            }
        }
        Kind::SlowSegments => Fault::SlowSegments {
            segs: {
                let k = 1 + r.below(2);
                r.segments(k)
            },
            delay_ms: r.range(5, 50),
            hold_ms: r.range(50, 300),
        },
        Kind::RestartAfterFailover => {
            let k = 1 + r.below(SEGMENTS);
            Fault::RestartAfterFailover {
                segs: r.segments(k),
            }
        }
        Kind::Stranger => {
            let port = match r.below(4) {
                0 => Port::Segment(r.below(SEGMENTS)),
                1 => Port::WriterPeer,
                2 => Port::WriterClient,
                _ => Port::ControlPlane,
            };
            let frame = [
                BadFrame::Garbage,
                BadFrame::Oversized,
                BadFrame::StaleEpoch,
                BadFrame::UnknownActor,
            ][r.below(4)];
            Fault::Stranger { port, frame }
        }
    }
}

fn restart_control_plane(r: &mut Rng, cut: Option<WriterCut>) -> Fault {
    Fault::RestartControlPlane {
        cut,
        at_ms: r.range(100, 400),
        for_ms: r.range(200, 800),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        assert_eq!(schedule(1, 500), schedule(1, 500));
        assert_ne!(schedule(1, 500), schedule(2, 500));
        assert_eq!(schedule(7, 1000)[..200], schedule(7, 200)[..]);
    }

    #[test]
    fn a_short_schedule_covers_the_whole_menu_in_proportion() {
        let s = schedule(1, 1000);
        let mut count: BTreeMap<Kind, usize> = BTreeMap::new();
        for f in &s {
            *count.entry(f.kind()).or_default() += 1;
        }
        assert_eq!(count.len(), Kind::ALL.len(), "{count:?}");
        let total: u64 = Kind::ALL.iter().map(|k| k.weight()).sum();
        let strangers = count[&Kind::Stranger] as f64 / 1000.0;
        let expected = Kind::Stranger.weight() as f64 / total as f64;
        assert!(
            (strangers - expected).abs() < 0.04,
            "{strangers} vs {expected}"
        );
        // 200 faults of the CI campaign: every kind of seed 1 shows up.
        let kinds: std::collections::BTreeSet<Kind> =
            schedule(1, 200).iter().map(Fault::kind).collect();
        assert_eq!(kinds.len(), Kind::ALL.len(), "{kinds:?}");
    }

    #[test]
    fn targets_are_what_each_kind_says() {
        for f in schedule(3, 2000) {
            match &f {
                Fault::Kill { segs, .. } => {
                    assert!(segs.windows(2).all(|w| w[0] < w[1]), "{f}");
                    assert!(segs.iter().all(|&s| s < SEGMENTS));
                    if segs.len() >= 2 {
                        let az = segs.iter().find(|&&s| segs.contains(&(s ^ 1))).copied();
                        assert!(az.is_some(), "an AZ is killed whole: {f}");
                    }
                }
                Fault::PauseWriter { ms } => assert!(*ms >= PAST_LEASE_MS, "{f}"),
                Fault::RestartAfterFailover { segs } | Fault::PartitionSegments { segs, .. } => {
                    assert!(
                        !segs.is_empty() && segs.iter().all(|&s| s < SEGMENTS),
                        "{f}"
                    );
                }
                _ => {}
            }
        }
    }
}
