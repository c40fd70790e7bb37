//! Checked-in traces live beside this crate; its tests replay them.
