//! The runtime: drives the protocol actors of `sixfold-model` over real sockets and disks.
