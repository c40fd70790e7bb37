//! When the control plane may promote a writer: the rule as a decision without I/O.
//!
//! [`decide`] takes what the control plane knows ([`Facts`]: the time, the appointed writer's
//! health or the revoked one's lease bound, what it found in `DIR` when it started and when it
//! started, writers it hears from but never appointed) and says what to do next ([`Decision`]):
//! keep the writer, stop granting it, kill it, wait until an instant, or promote a writer in the
//! next epoch. It reads no clock and touches no file; the control loop ([`crate::cluster`])
//! gathers the facts, acts on the decision and asks again. The unit tests below exercise it with
//! made-up instants.
//!
//! # The rule
//! A writer may be promoted only once every lease an earlier writer may still hold has certainly
//! ended (`sixfold_model::protocol::writer`: the lease is what stops an old writer serving reads;
//! fencing only stops its writes). That rule is the model's, [`control::may_promote`], which the
//! `failover` model asks and checks too; [`decide`] asks it with whether the latest of the bounds
//! below has passed. Leases come from three places, and the promotion waits for the latest
//! of their bounds:
//!
//! 1. **The writer this control plane appointed.** [`crate::control::ControlPlane::revoke`]
//!    stops granting it and bounds its lease ([`Revoked::lease_ends_by`]); a writer never heard
//!    from has an unknown lease and must be killed and reaped first ([`Decision::Kill`]).
//! 2. **Writers an earlier incarnation of the control plane appointed** (`sixfold cluster`
//!    restarted on an existing `DIR`, [`Previous::MayHoldLease`]). That incarnation sent its last
//!    grant before it died, and it died before this one took the directory's lock
//!    ([`crate::control::DirLock`], which the kernel releases when its holder dies) and bound
//!    the heartbeat port, so that grant is stepped at most [`GRANT_WINDOW`] after `started`, the
//!    instant the port was bound, and the lease it renews ends by
//!    `started + GRANT_WINDOW + LEASE + margin`.
//!    A writer's first lease, armed when its process starts, ends within [`LEASE`] of that start,
//!    which for a writer that came up while its control plane lived is before `started`. The
//!    wait is measured from this process's own [`Instant`], never from a wall clock written by
//!    another process.
//! 3. **Strays**: writers that heartbeat here but were never appointed here (an orphan of an
//!    earlier incarnation, for example one that came up after it died). Nobody grants them any
//!    more, so only grants from before `started` (bounded as in 2) and their first lease, which
//!    ends within [`LEASE`] of their first heartbeat `h`, count: `max(h, started +
//!    GRANT_WINDOW) + LEASE + margin`.
//!
//! The restart wait is skipped only where the control plane positively knows no lease is
//! outstanding: `DIR/epoch` is absent ([`Previous::Nothing`]: no writer ever ran in `DIR`), or the
//! previous incarnation recorded a clean stop in `DIR/control-plane` for the epoch that
//! `DIR/epoch` still names ([`Previous::CleanStop`]; [`crate::control::LastRun`]).
//!
//! # Why a new epoch after a restart
//! The last writer of the previous incarnation may still be alive (an orphan, or only cut off):
//! the restarted control plane cannot reuse its epoch or reappoint it, since it cannot tell what
//! that writer did after the crash. It waits out that writer's lease and then promotes epoch
//! `N + 1`, whose recovery fences epoch `N` at the segments, exactly as a failover does; the
//! orphan's writes are then refused and its reads stopped with its lease.
//!
//! # What is persisted in `DIR`
//! Each file is written durably: temporary file, fsync, rename, fsync of the directory.
//! - `DIR/epoch`: the last epoch handed out, stored before a writer runs in it
//!   ([`crate::layout::store_epoch`]).
//! - `DIR/control-plane`: `running`, stored before this incarnation appoints its first writer, so
//!   a crash at any later point leaves "may hold a lease"; `stopped N`, stored at a clean stop
//!   only after every writer this incarnation started has been killed and reaped (a reaped
//!   process holds no lease) and [`no_lease_outstanding`] holds for the rest, so the next
//!   incarnation may promote at once. A stop while the restart wait is still running records
//!   nothing new: the earlier lease may still be running.
//! - `DIR/control-plane.lock`: empty; held locked by the running control plane, never by its
//!   members ([`crate::control::DirLock`]).
//!
//! # What is assumed
//! The one lease this rule does not bound: a writer process started by an earlier incarnation
//! that had not yet come up when that incarnation died (its first lease armed after `started`)
//! and that does not heartbeat here before the promotion. The runtime makes it unlikely (on
//! Linux the members get SIGTERM when the cluster dies), and such a writer serves reads only
//! once it has opened, which takes a read quorum of three segments; the new writer's recovery
//! fences three, so it would have to open on exactly the other three.

use crate::control::{Health, Revoked, Timing};
use crate::host::GRANT_WINDOW;
use sixfold_model::protocol::config::Config;
use sixfold_model::protocol::control;
use sixfold_model::protocol::msg::{Epoch, FIRST_EPOCH};
use sixfold_model::protocol::writer::LEASE;
use std::time::Instant;

/// What the control plane found in `DIR` when it started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Previous {
    /// No epoch was ever handed out here: no writer ran, no lease was granted.
    Nothing,
    /// The previous control plane stopped cleanly after epoch `epoch`, which `DIR/epoch` still
    /// names: no lease is outstanding.
    CleanStop {
        /// The last epoch handed out.
        epoch: Epoch,
    },
    /// Epoch `epoch` was handed out and no clean stop was recorded after it: the previous
    /// control plane may have died while that writer held a lease.
    MayHoldLease {
        /// The last epoch handed out.
        epoch: Epoch,
    },
}

impl Previous {
    /// From `DIR/epoch` (`last_epoch`, [`FIRST_EPOCH`]` - 1` when absent) and
    /// `DIR/control-plane`.
    pub fn from_disk(last_epoch: Epoch, last_run: crate::control::LastRun) -> Previous {
        use crate::control::LastRun;
        if last_epoch < FIRST_EPOCH {
            return Previous::Nothing;
        }
        match last_run {
            LastRun::Stopped { epoch } if epoch == last_epoch => Previous::CleanStop { epoch },
            _ => Previous::MayHoldLease { epoch: last_epoch },
        }
    }

    /// The last epoch handed out before this control plane started, if any.
    pub fn epoch(self) -> Option<Epoch> {
        match self {
            Previous::Nothing => None,
            Previous::CleanStop { epoch } | Previous::MayHoldLease { epoch } => Some(epoch),
        }
    }
}

/// The writer this control plane appointed last, as far as promotion is concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incumbent {
    /// It has appointed none yet (it is starting).
    None,
    /// One is appointed, in this health.
    Appointed(Health),
    /// It was revoked: no more grants. `lease_ends_by` as in [`Revoked`]; `reaped` once its
    /// process has exited and been waited for.
    Revoked {
        /// When its lease has certainly ended; `None` if it was never heard from.
        lease_ends_by: Option<Instant>,
        /// Its process is gone.
        reaped: bool,
    },
}

impl Incumbent {
    /// A writer just revoked, whose process may or may not be gone.
    pub fn revoked(r: &Revoked, reaped: bool) -> Incumbent {
        Incumbent::Revoked {
            lease_ends_by: r.lease_ends_by,
            reaped,
        }
    }
}

/// Everything [`decide`] looks at.
#[derive(Clone, Copy, Debug)]
pub struct Facts {
    /// The current instant.
    pub now: Instant,
    /// When this control plane bound its heartbeat port
    /// ([`crate::control::ControlPlane::started`]).
    pub started: Instant,
    /// What it found in `DIR` at that point.
    pub previous: Previous,
    /// Its own appointed or revoked writer.
    pub incumbent: Incumbent,
    /// The latest first heartbeat of a writer it never appointed
    /// ([`crate::control::ControlPlane::strays`]).
    pub strays: Option<Instant>,
    /// The lease margin (clock-rate differences) and failure thresholds.
    pub timing: Timing,
    /// The protocol in force: the promotion rule itself is the model's
    /// ([`sixfold_model::protocol::control::may_promote`]), and a mutant may bend it.
    pub protocol: Config,
}

/// What the control plane does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The appointed writer is starting or healthy: keep granting it.
    Keep,
    /// The appointed writer has failed: stop granting it ([`crate::control::ControlPlane::revoke`])
    /// and decide again with its lease bound.
    Revoke,
    /// The revoked writer's lease is unknown: kill its process and reap it, then decide again.
    Kill,
    /// A lease may still be running until then: decide again at that instant.
    WaitUntil(Instant),
    /// Every earlier lease has certainly ended: hand out the next epoch and start its writer.
    Promote,
}

/// The latest instant at which a lease granted by an earlier incarnation of the control plane,
/// which died before `started`, can end: `started + GRANT_WINDOW + LEASE + margin`.
pub fn restart_bound(started: Instant, timing: &Timing) -> Instant {
    started + GRANT_WINDOW + LEASE.end + timing.margin
}

/// The latest instant at which a lease of a writer not appointed by this control plane (a
/// stray, or the previous incarnation's writers) can end, if one may exist.
fn others_bound(f: &Facts) -> Option<Instant> {
    let restart = match f.previous {
        Previous::MayHoldLease { .. } => Some(restart_bound(f.started, &f.timing)),
        Previous::Nothing | Previous::CleanStop { .. } => None,
    };
    let stray = f.strays.map(|h| {
        // Its first lease ends by h + LEASE; grants it got ended as a restart bound says.
        (h + LEASE.end + f.timing.margin).max(restart_bound(f.started, &f.timing))
    });
    restart.max(stray)
}

/// The promotion rule (see the module docs).
pub fn decide(f: &Facts) -> Decision {
    let own = match f.incumbent {
        Incumbent::Appointed(Health::Starting | Health::Healthy) => return Decision::Keep,
        Incumbent::Appointed(Health::Failed(_)) => return Decision::Revoke,
        Incumbent::Revoked {
            lease_ends_by: None,
            reaped: false,
        } => return Decision::Kill,
        Incumbent::Revoked {
            lease_ends_by: None,
            reaped: true,
        }
        | Incumbent::None => None,
        // Reaped or not, the lease bound stands (the model's rule; see `control`).
        Incumbent::Revoked {
            lease_ends_by: Some(t),
            ..
        } => Some(t),
    };
    match own.max(others_bound(f)) {
        Some(t) if !control::may_promote(&f.protocol, f.now >= t) => Decision::WaitUntil(t),
        _ => Decision::Promote,
    }
}

/// Whether no lease of a writer this control plane did not start can still be running, so
/// that, once every writer it started has been reaped, it may record a clean stop.
pub fn no_lease_outstanding(f: &Facts) -> bool {
    others_bound(f).is_none_or(|t| f.now >= t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::control::{Failure, LastRun};
    use std::time::Duration;

    const MS: Duration = Duration::from_millis(1);

    /// Facts at `now_ms` after a start at 0, with a default timing.
    fn facts(t0: Instant, now_ms: u64, previous: Previous, incumbent: Incumbent) -> Facts {
        Facts {
            now: t0 + MS * now_ms as u32,
            started: t0,
            previous,
            incumbent,
            strays: None,
            timing: Timing::default(),
            protocol: Config::default(),
        }
    }

    /// `started + GRANT_WINDOW + LEASE + margin`, in ms: 100 + 601 + 50.
    fn restart_wait() -> Duration {
        GRANT_WINDOW + LEASE.end + Timing::default().margin
    }

    #[test]
    fn a_fresh_directory_promotes_at_once() {
        let t0 = Instant::now();
        let f = facts(t0, 0, Previous::Nothing, Incumbent::None);
        assert_eq!(decide(&f), Decision::Promote);
        assert!(no_lease_outstanding(&f));
    }

    #[test]
    fn a_restart_after_a_crash_waits_out_the_old_lease_from_its_own_start() {
        let t0 = Instant::now();
        let prev = Previous::MayHoldLease { epoch: 1 };
        let until = t0 + restart_wait();
        assert_eq!(restart_wait(), Duration::from_millis(751));
        for now in [0, 1, 100, 700, 750] {
            let f = facts(t0, now, prev, Incumbent::None);
            assert_eq!(decide(&f), Decision::WaitUntil(until), "at {now} ms");
            assert!(!no_lease_outstanding(&f), "at {now} ms");
        }
        for now in [751, 752, 5000] {
            let f = facts(t0, now, prev, Incumbent::None);
            assert_eq!(decide(&f), Decision::Promote, "at {now} ms");
            assert!(no_lease_outstanding(&f));
        }
    }

    #[test]
    fn a_restart_after_a_clean_stop_promotes_at_once() {
        let t0 = Instant::now();
        let f = facts(t0, 0, Previous::CleanStop { epoch: 3 }, Incumbent::None);
        assert_eq!(decide(&f), Decision::Promote);
    }

    #[test]
    fn what_is_on_disk_decides_whether_a_lease_may_be_outstanding() {
        assert_eq!(
            Previous::from_disk(0, LastRun::Running),
            Previous::Nothing,
            "no epoch was ever handed out"
        );
        assert_eq!(
            Previous::from_disk(0, LastRun::Unrecorded),
            Previous::Nothing
        );
        assert_eq!(
            Previous::from_disk(2, LastRun::Unrecorded),
            Previous::MayHoldLease { epoch: 2 },
            "a directory from before the record"
        );
        assert_eq!(
            Previous::from_disk(2, LastRun::Running),
            Previous::MayHoldLease { epoch: 2 },
            "crashed"
        );
        assert_eq!(
            Previous::from_disk(2, LastRun::Stopped { epoch: 2 }),
            Previous::CleanStop { epoch: 2 }
        );
        assert_eq!(
            Previous::from_disk(3, LastRun::Stopped { epoch: 2 }),
            Previous::MayHoldLease { epoch: 3 },
            "an epoch handed out after the recorded stop"
        );
        assert_eq!(Previous::MayHoldLease { epoch: 3 }.epoch(), Some(3));
        assert_eq!(Previous::Nothing.epoch(), None);
    }

    #[test]
    fn a_healthy_or_starting_writer_is_kept_and_a_failed_one_revoked() {
        let t0 = Instant::now();
        for prev in [Previous::Nothing, Previous::MayHoldLease { epoch: 1 }] {
            for h in [Health::Starting, Health::Healthy] {
                let f = facts(t0, 10_000, prev, Incumbent::Appointed(h));
                assert_eq!(decide(&f), Decision::Keep);
            }
            for why in [
                Failure::Silent(Duration::from_millis(300)),
                Failure::NeverStarted,
                Failure::LostLease,
            ] {
                let f = facts(t0, 10_000, prev, Incumbent::Appointed(Health::Failed(why)));
                assert_eq!(decide(&f), Decision::Revoke);
            }
        }
    }

    #[test]
    fn a_revoked_writer_is_waited_out_and_one_never_heard_from_is_killed_first() {
        let t0 = Instant::now();
        let ends = t0 + MS * 5_000;
        let revoked = |reaped| Incumbent::Revoked {
            lease_ends_by: Some(ends),
            reaped,
        };
        for reaped in [false, true] {
            let f = facts(t0, 4_000, Previous::Nothing, revoked(reaped));
            assert_eq!(decide(&f), Decision::WaitUntil(ends));
            let f = facts(t0, 5_000, Previous::Nothing, revoked(reaped));
            assert_eq!(decide(&f), Decision::Promote);
        }
        let unknown = |reaped| Incumbent::Revoked {
            lease_ends_by: None,
            reaped,
        };
        let f = facts(t0, 4_000, Previous::Nothing, unknown(false));
        assert_eq!(decide(&f), Decision::Kill);
        let f = facts(t0, 4_000, Previous::Nothing, unknown(true));
        assert_eq!(decide(&f), Decision::Promote);
    }

    #[test]
    fn a_failover_soon_after_a_restart_still_waits_for_the_restart_bound() {
        let t0 = Instant::now();
        // A writer appointed (by mistake, or by a shorter rule) and revoked early: the earlier
        // incarnation's lease still bounds the promotion.
        let f = facts(
            t0,
            200,
            Previous::MayHoldLease { epoch: 4 },
            Incumbent::Revoked {
                lease_ends_by: Some(t0 + MS * 300),
                reaped: true,
            },
        );
        assert_eq!(decide(&f), Decision::WaitUntil(t0 + restart_wait()));
    }

    #[test]
    fn a_stray_writer_heard_late_extends_the_wait_by_its_first_lease() {
        let t0 = Instant::now();
        let mut f = facts(
            t0,
            100,
            Previous::MayHoldLease { epoch: 1 },
            Incumbent::None,
        );
        // Heard early: the restart bound covers it.
        f.strays = Some(t0 + MS * 50);
        assert_eq!(decide(&f), Decision::WaitUntil(t0 + restart_wait()));
        // First heard 500 ms after the start: its first lease may run 651 ms past that.
        f.strays = Some(t0 + MS * 500);
        let until = t0 + MS * 500 + LEASE.end + Timing::default().margin;
        assert_eq!(decide(&f), Decision::WaitUntil(until));
        assert!(!no_lease_outstanding(&f));
        f.now = until;
        assert_eq!(decide(&f), Decision::Promote);
        assert!(no_lease_outstanding(&f));
        // Even after a clean stop (a writer that came up afterwards) and during a failover.
        f.previous = Previous::CleanStop { epoch: 1 };
        f.now = t0 + MS * 600;
        f.incumbent = Incumbent::Revoked {
            lease_ends_by: None,
            reaped: true,
        };
        assert_eq!(decide(&f), Decision::WaitUntil(until));
    }
}
