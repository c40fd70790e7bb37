//! Fault injection for one member: seeded message loss, seeded delay, and scheduled partitions.
//!
//! Real loopback networks do not lose or delay anything, so the failover tests need a way to make
//! them. A member started with a [`Faults`] spec passes every message it sends to a peer through
//! [`FaultNet`], which drops it with probability `drop`, holds it for a uniformly random time up
//! to `delay` (keeping each link FIFO, as TCP would), or drops it because a partition cuts the
//! member off from that peer. Partitions also cover the two links that are not peer links: the
//! control plane (heartbeats and grants are neither sent nor taken) and clients (requests are
//! ignored and replies are not sent). Messages from a partitioned peer are dropped on arrival too,
//! so a partition is symmetric even when only one side is configured.
//!
//! Everything random comes from one xorshift generator seeded by `seed`, so a spec names one
//! schedule of faults (up to thread timing). The same seed also seeds the member's own random
//! decisions, the host's timer durations and open choices ([`runtime_seed`]), so one seed names
//! one run. The model's `--lossy` network contains every loss, and its unordered network every
//! delay, so none of this steps outside what is checked.
//!
//! The spec is a comma-separated list, e.g. `seed=7,drop=0.01,delay=20,partition=control+clients@1500`:
//! - `seed=N`: the generator's seed (default [`DEFAULT_SEED`]);
//! - `drop=P`: probability (0..1) that a peer message is lost;
//! - `delay=MS`: the largest extra delay of a peer message, in ms;
//! - `partition=T+T…@FROM[-UNTIL]`: from FROM ms after the member started (until UNTIL ms, or for
//!   good) cut it off from the targets `control`, `clients`, `segN` (segment N) or `peers` (every
//!   peer). The key may repeat.

use sixfold_model::protocol::msg::Msg;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The seed of a spec that names none, and of a member started without a spec.
pub const DEFAULT_SEED: u64 = 1;

/// The seed of a member's own random decisions (the host's timer durations within their ranges
/// and its picks among open choices): the seed of its fault spec, or [`DEFAULT_SEED`] without
/// one, mixed with its actor id (splitmix64's finalizer over `seed ^ (id + 1) * K`), so that
/// members given the same spec do not share a sequence and the fault net's own generator is not
/// repeated. A fixed function: the same seed and id give the same decisions in every run. Never
/// 0, which is a xorshift generator's fixed point.
pub fn runtime_seed(faults: Option<&Faults>, actor: usize) -> u64 {
    let seed = faults.map_or(DEFAULT_SEED, |f| f.seed);
    let mut z = seed
        ^ (actor as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

/// Something a member can be cut off from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The control plane (lease heartbeats and grants).
    Control,
    /// Every client connection.
    Clients,
    /// The peer with this actor id.
    Peer(usize),
    /// Every peer.
    Peers,
}

/// One scheduled partition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partition {
    /// What it cuts the member off from.
    pub targets: Vec<Target>,
    /// When it starts, after the member started.
    pub from: Duration,
    /// When it heals, if ever.
    pub until: Option<Duration>,
}

/// A member's fault spec (see the module docs for the text form).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Faults {
    /// Seed of the generator behind drops and delays.
    pub seed: u64,
    /// Probability that a peer message is lost.
    pub drop: f64,
    /// Largest extra delay of a peer message.
    pub delay: Duration,
    /// Scheduled partitions.
    pub partitions: Vec<Partition>,
}

/// Why a fault spec could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("bad fault spec {item:?}: {reason}")]
pub struct FaultSpecError {
    /// The offending item.
    pub item: String,
    /// What is wrong with it.
    pub reason: String,
}

impl std::str::FromStr for Faults {
    type Err = FaultSpecError;

    fn from_str(s: &str) -> Result<Faults, FaultSpecError> {
        let mut f = Faults {
            seed: DEFAULT_SEED,
            ..Faults::default()
        };
        for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let err = |reason: &str| FaultSpecError {
                item: item.to_string(),
                reason: reason.to_string(),
            };
            let (k, v) = item
                .split_once('=')
                .ok_or_else(|| err("expected KEY=VALUE"))?;
            match k {
                "seed" => f.seed = v.parse().map_err(|_| err("not a number"))?,
                "drop" => {
                    f.drop = v.parse().map_err(|_| err("not a number"))?;
                    if !(0.0..=1.0).contains(&f.drop) {
                        return Err(err("drop is a probability, 0..=1"));
                    }
                }
                "delay" => f.delay = Duration::from_millis(v.parse().map_err(|_| err("not ms"))?),
                "partition" => {
                    let (targets, when) = v
                        .split_once('@')
                        .ok_or_else(|| err("expected TARGETS@FROM[-UNTIL]"))?;
                    let targets = targets
                        .split('+')
                        .map(|t| match t {
                            "control" => Ok(Target::Control),
                            "clients" => Ok(Target::Clients),
                            "peers" => Ok(Target::Peers),
                            t => t
                                .strip_prefix("seg")
                                .and_then(|n| n.parse().ok())
                                .map(Target::Peer)
                                .ok_or_else(|| err("targets are control, clients, peers, segN")),
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    let ms = |x: &str| {
                        x.parse::<u64>()
                            .map(Duration::from_millis)
                            .map_err(|_| err("times are ms"))
                    };
                    let (from, until) = match when.split_once('-') {
                        Some((a, b)) => (ms(a)?, Some(ms(b)?)),
                        None => (ms(when)?, None),
                    };
                    f.partitions.push(Partition {
                        targets,
                        from,
                        until,
                    });
                }
                _ => return Err(err("keys are seed, drop, delay, partition")),
            }
        }
        Ok(f)
    }
}

/// What happens to one message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// It goes out now.
    Now,
    /// It goes out at this instant.
    At(Instant),
    /// It is lost.
    Lost,
}

/// A member's faults in effect: the spec, its clock and generator, and the messages held back.
pub struct FaultNet {
    spec: Faults,
    started: Instant,
    rng: u64,
    /// Per destination, the release time of the last delayed message (keeps links FIFO).
    last: std::collections::HashMap<usize, Instant>,
    held: VecDeque<(Instant, usize, Msg, u64)>,
}

impl FaultNet {
    /// Starts the schedule now.
    pub fn new(spec: Faults) -> FaultNet {
        let rng = spec.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        FaultNet {
            spec,
            started: Instant::now(),
            rng,
            last: Default::default(),
            held: VecDeque::new(),
        }
    }

    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// Whether the member is cut off from `target` now.
    pub fn cut(&self, target: Target) -> bool {
        let t = self.started.elapsed();
        self.spec.partitions.iter().any(|p| {
            t >= p.from
                && p.until.is_none_or(|u| t < u)
                && p.targets.iter().any(|x| {
                    *x == target || (*x == Target::Peers && matches!(target, Target::Peer(_)))
                })
        })
    }

    /// Decides the fate of a message to peer `dst`.
    pub fn fate(&mut self, dst: usize) -> Fate {
        if self.cut(Target::Peer(dst)) {
            return Fate::Lost;
        }
        let roll = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        if self.spec.drop > 0.0 && roll < self.spec.drop {
            return Fate::Lost;
        }
        let prev = self.last.get(&dst).copied();
        if self.spec.delay.is_zero() && prev.is_none_or(|p| p <= Instant::now()) {
            return Fate::Now;
        }
        let span = self.spec.delay.as_micros() as u64;
        let extra = Duration::from_micros(if span == 0 {
            0
        } else {
            self.next() % (span + 1)
        });
        let at = (Instant::now() + extra).max(prev.unwrap_or_else(Instant::now));
        self.last.insert(dst, at);
        Fate::At(at)
    }

    /// Holds a message until `at`.
    pub fn hold(&mut self, at: Instant, dst: usize, msg: Msg, clock: u64) {
        let i = self.held.partition_point(|(t, ..)| *t <= at);
        self.held.insert(i, (at, dst, msg, clock));
    }

    /// The messages whose time has come, in release order.
    pub fn due(&mut self) -> Vec<(usize, Msg, u64)> {
        let now = Instant::now();
        let mut out = Vec::new();
        while self.held.front().is_some_and(|(t, ..)| *t <= now) {
            let (_, dst, msg, clock) = self.held.pop_front().expect("front");
            out.push((dst, msg, clock));
        }
        out
    }

    /// When the next held message is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.held.front().map(|(t, ..)| *t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse_and_bad_ones_are_named() {
        let f: Faults = "seed=7,drop=0.25,delay=20,partition=control+clients+seg3@1500-4000"
            .parse()
            .unwrap();
        assert_eq!(f.seed, 7);
        assert_eq!(f.drop, 0.25);
        assert_eq!(f.delay, Duration::from_millis(20));
        assert_eq!(
            f.partitions,
            vec![Partition {
                targets: vec![Target::Control, Target::Clients, Target::Peer(3)],
                from: Duration::from_millis(1500),
                until: Some(Duration::from_millis(4000)),
            }]
        );
        for bad in [
            "drop=2",
            "partition=moon@1",
            "partition=control",
            "x=1",
            "seed",
        ] {
            let e = bad.parse::<Faults>().unwrap_err();
            assert!(
                e.to_string().contains(bad.split('=').next().unwrap()),
                "{e}"
            );
        }
    }

    #[test]
    fn the_same_seed_drops_the_same_messages() {
        let run = |seed| {
            let mut n = FaultNet::new(Faults {
                seed,
                drop: 0.3,
                ..Faults::default()
            });
            (0..200)
                .map(|_| n.fate(1) == Fate::Lost)
                .collect::<Vec<_>>()
        };
        assert_eq!(run(5), run(5));
        assert_ne!(run(5), run(6));
        let lost = run(5).iter().filter(|l| **l).count();
        assert!((30..90).contains(&lost), "{lost} of 200 lost at p=0.3");
    }

    #[test]
    fn the_runtime_seed_is_a_function_of_the_fault_seed_and_the_actor() {
        let spec = |seed| Faults {
            seed,
            ..Faults::default()
        };
        assert_eq!(
            runtime_seed(Some(&spec(7)), 3),
            runtime_seed(Some(&spec(7)), 3)
        );
        assert_ne!(
            runtime_seed(Some(&spec(7)), 3),
            runtime_seed(Some(&spec(8)), 3)
        );
        assert_ne!(
            runtime_seed(Some(&spec(7)), 3),
            runtime_seed(Some(&spec(7)), 4)
        );
        let default: Faults = "".parse().unwrap();
        assert_eq!(runtime_seed(None, 6), runtime_seed(Some(&default), 6));
        assert!((0..16).all(|id| runtime_seed(None, id) != 0));
    }

    #[test]
    fn partitions_follow_their_schedule_and_delays_keep_links_fifo() {
        let mut n = FaultNet::new(
            "partition=peers+control@0-100,delay=5"
                .parse::<Faults>()
                .unwrap(),
        );
        assert!(n.cut(Target::Control) && n.cut(Target::Peer(4)));
        assert!(!n.cut(Target::Clients));
        assert_eq!(n.fate(4), Fate::Lost);
        std::thread::sleep(Duration::from_millis(110));
        assert!(!n.cut(Target::Control));
        let mut last = Instant::now();
        for _ in 0..50 {
            let Fate::At(at) = n.fate(2) else {
                panic!("delayed")
            };
            assert!(at >= last);
            last = at;
        }
    }
}
