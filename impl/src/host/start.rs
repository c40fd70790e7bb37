//! How a node comes up: its segment log recovered from disk, its trace file reopened, and a
//! restart written down as the model writes one (`Crash`, or `LoseDisk` for a disk that came back
//! empty, then `Start` with the storage recovered).

use super::{HostError, NodeSpec, SEGMENTS};
use crate::storage::{SegmentStore, StorageError};
use crate::trace_log::{Previous, TraceLog};
use sixfold_model::protocol::effects::NodeStorage;
use sixfold_model::protocol::msg::FIRST_EPOCH;
use sixfold_model::trace::{Header, Input};

/// What a node's disk gave back.
#[derive(Default)]
pub(super) struct Recovered {
    /// The storage to start from (`None`: nothing saved, or not a segment).
    pub(super) storage: Option<NodeStorage>,
    /// Whether the disk came back empty: no save, and nothing torn either.
    pub(super) fresh: bool,
}

/// Creates the node's directory and, for a segment, opens its log and recovers it (logging what
/// recovery kept and dropped).
pub(super) fn open_store(
    spec: &NodeSpec,
    tag: &str,
) -> Result<(Option<SegmentStore>, Recovered), HostError> {
    std::fs::create_dir_all(&spec.dir).map_err(|source| {
        HostError::Storage(StorageError::Io {
            path: spec.dir.clone(),
            source,
        })
    })?;
    if spec.id >= SEGMENTS {
        return Ok((None, Recovered::default()));
    }
    let (store, rec) = SegmentStore::open(&spec.dir.join("segment.log"))?;
    let kept = rec.log.as_ref().map_or(0, |l| l.records().len());
    let epoch = rec.log.as_ref().map_or(FIRST_EPOCH, |l| l.epoch());
    let what = format!("{kept} record(s), epoch {epoch}");
    if let Some(d) = &rec.dropped {
        eprintln!(
            "{tag}: recovery dropped {} byte(s) at offset {} of {} ({}); kept {} save(s): {what}",
            d.bytes,
            d.offset,
            store.path().display(),
            d.reason,
            rec.frames
        );
    } else if rec.frames > 0 {
        eprintln!("{tag}: recovered {what}");
    }
    let recovered = Recovered {
        fresh: rec.frames == 0 && rec.dropped.is_none(),
        storage: rec.log.map(NodeStorage::Segment),
    };
    Ok((Some(store), recovered))
}

/// Opens the node's trace file, if it records one, with `header`; says what the previous run
/// recorded (nothing without a trace).
pub(super) fn open_trace(
    spec: &NodeSpec,
    header: impl FnOnce() -> Header,
) -> Result<(Option<TraceLog>, Previous), HostError> {
    match &spec.trace {
        Some(p) => {
            let (t, prev) = TraceLog::open(p, &header())?;
            Ok((Some(t), prev))
        }
        None => Ok((None, Previous::default())),
    }
}

/// How a traced restart is written down, and from which storage it starts. The trace's last
/// save (`recorded`) is what the disk must hold. A disk that came back empty was replaced
/// (`LoseDisk`). A disk that holds saves the trace never recorded (the process was killed
/// mid-batch, before its trace lines or any of its messages left) is cut back to the trace's last
/// save. Any other difference is left for replay to report.
pub(super) fn reconcile(
    store: Option<&mut SegmentStore>,
    storage: Option<NodeStorage>,
    recorded: &Option<NodeStorage>,
    disk_fresh: bool,
    tag: &str,
) -> Result<(Input, Option<NodeStorage>), HostError> {
    if storage == *recorded {
        return Ok((Input::Crash, storage));
    }
    if disk_fresh {
        eprintln!("{tag}: the disk came back empty: recorded as replaced");
        return Ok((Input::LoseDisk, storage));
    }
    let target = recorded.as_ref().map(|NodeStorage::Segment(l)| l);
    if let Some(store) = store {
        if store.rollback_to(target)? {
            eprintln!("{tag}: undid saves the trace never recorded (killed mid-batch)");
            return Ok((Input::Crash, recorded.clone()));
        }
    }
    Ok((Input::Crash, storage))
}
