//! Who is who: the one actor-id layout of the models, the runtime and replay.
//!
//! Segments are actors `0..SEGMENTS` (two per AZ). The writer of epoch `e` follows them at
//! [`writer_id`]`(e)`: one actor per epoch, because segments answer the writer that asked and a
//! superseded writer may live on as a zombie. A model's scripted clients follow its writers. The
//! runtime has no scripted clients: its writers take every id up to the control plane's
//! ([`CONTROL_ID`], the sender of lease grants), and external client connections are numbered
//! from [`CLIENT_ID_BASE`]. Every name printed for an actor (counterexamples, replay timelines,
//! process banners) comes from [`Topology::name`].

use crate::protocol::config::{az_of, SEGMENTS};
use crate::protocol::msg::{Epoch, FIRST_EPOCH};

/// Virtual actor id of the control plane: the sender of `LeaseGrant`s in steps and traces.
pub const CONTROL_ID: usize = 999;

/// First actor id given to external client connections of the runtime.
pub const CLIENT_ID_BASE: usize = 1000;

/// The highest epoch a writer can have: writer ids stay below [`CONTROL_ID`].
pub const MAX_EPOCH: Epoch = (CONTROL_ID - SEGMENTS) as Epoch;

/// The actor id of the writer of `epoch`: right after the segments for the first, one more for
/// each later epoch.
pub const fn writer_id(epoch: Epoch) -> usize {
    SEGMENTS + epoch.saturating_sub(FIRST_EPOCH) as usize
}

/// What an actor id stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Segment `index` (also its actor id).
    Segment(usize),
    /// The writer of this epoch.
    Writer(Epoch),
    /// The model's scripted client number `n` (0 first).
    Client(usize),
    /// The control plane.
    Control,
    /// The runtime's external client connection number `n`.
    External(usize),
    /// An id outside the layout.
    Unknown,
}

/// A layout: how many writers (epochs 1..=`writers`) follow the segments, and how many scripted
/// clients follow the writers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Topology {
    /// Writers, one per epoch from the first.
    pub writers: Epoch,
    /// Scripted clients after the writers.
    pub clients: usize,
}

impl Topology {
    /// The runtime's layout: writers up to [`MAX_EPOCH`], no scripted clients.
    pub fn runtime() -> Self {
        Topology {
            writers: MAX_EPOCH,
            clients: 0,
        }
    }

    /// Actor id of scripted client `n`.
    pub fn client_id(&self, n: usize) -> usize {
        writer_id(FIRST_EPOCH + self.writers) + n
    }

    /// Number of actors the layout holds (segments, writers, scripted clients).
    pub fn actors(&self) -> usize {
        self.client_id(self.clients)
    }

    /// The role of actor `id`.
    pub fn role(&self, id: usize) -> Role {
        let writers = writer_id(FIRST_EPOCH)..writer_id(FIRST_EPOCH + self.writers);
        match id {
            i if i < SEGMENTS => Role::Segment(i),
            i if writers.contains(&i) => Role::Writer(FIRST_EPOCH + (i - writers.start) as Epoch),
            i if i < self.actors() => Role::Client(i - writers.end),
            CONTROL_ID => Role::Control,
            i if i >= CLIENT_ID_BASE => Role::External(i - CLIENT_ID_BASE),
            _ => Role::Unknown,
        }
    }

    /// The epoch of writer `id`, if `id` is a writer's.
    pub fn writer_epoch(&self, id: usize) -> Option<Epoch> {
        match self.role(id) {
            Role::Writer(e) => Some(e),
            _ => None,
        }
    }

    /// A readable name: `seg3/az1`, `writer` (epoch 1), `writer2`, `client0`, `control`, `ext0`.
    pub fn name(&self, id: usize) -> String {
        match self.role(id) {
            Role::Segment(i) => format!("seg{i}/az{}", az_of(i)),
            Role::Writer(FIRST_EPOCH) => "writer".into(),
            Role::Writer(e) => format!("writer{e}"),
            Role::Client(n) => format!("client{n}"),
            Role::Control => "control".into(),
            Role::External(n) => format!("ext{n}"),
            Role::Unknown => format!("actor{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_follow_segments_and_clients_follow_writers() {
        let t = Topology {
            writers: 2,
            clients: 3,
        };
        assert_eq!(writer_id(1), 6);
        assert_eq!(t.role(7), Role::Writer(2));
        assert_eq!(t.client_id(0), 8);
        assert_eq!(t.role(10), Role::Client(2));
        assert_eq!(t.role(11), Role::Unknown);
        assert_eq!(t.name(3), "seg3/az1");
        assert_eq!(t.name(7), "writer2");
        let r = Topology::runtime();
        assert_eq!(r.writer_epoch(writer_id(MAX_EPOCH)), Some(MAX_EPOCH));
        assert_eq!(r.role(CONTROL_ID), Role::Control);
        assert_eq!(r.name(CLIENT_ID_BASE + 2), "ext2");
    }
}
