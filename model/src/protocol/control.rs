//! The control plane's promotion rule, the one both the models and the runtime's control plane
//! ask.
//!
//! Epochs fence a superseded writer's writes at the segments, but not its reads: a single
//! segment cannot tell that a newer writer exists. So a writer serves reads only while its lease
//! lasts, and a new writer may be promoted only once every lease an earlier writer may still hold
//! has certainly run out. The models know that as an event (the old writer's `Lease` timer has
//! fired); the runtime knows it as a bound on time (`sixfold_impl::promotion` computes when the
//! last lease it may have granted ends). Both ask [`may_promote`] with what they know.

use crate::protocol::config::{Config, Mutant};

/// Whether the control plane may promote a writer in the next epoch, given whether every lease
/// of an earlier writer has certainly ended. It takes the protocol configuration so that a
/// mutant can bend the rule: `no-lease-wait` promotes at once, and a zombie that still holds its
/// lease serves a stale read.
pub fn may_promote(cfg: &Config, old_leases_ended: bool) -> bool {
    old_leases_ended || cfg.is(Mutant::NoLeaseWait)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promotion_waits_for_the_lease() {
        let real = Config::default();
        assert!(!may_promote(&real, false));
        assert!(may_promote(&real, true));
        let bent = Config::new(Some(Mutant::NoLeaseWait));
        assert!(may_promote(&bent, false));
    }
}
