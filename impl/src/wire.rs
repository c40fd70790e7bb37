//! What travels over TCP: length-prefixed JSON frames.
//!
//! A frame is `u32 length (big-endian) | payload`, the payload a [`Frame`] as JSON. JSON keeps the
//! wire readable with standard tools and is the same serde form the traces use; the benchmark
//! reports the resulting bytes per write. A peer that sends a frame longer than [`MAX_FRAME`] or
//! one that does not parse gets an [`Frame::Error`] reply and its connection is closed; the node
//! carries on serving everyone else.

use serde::{Deserialize, Serialize};
use sixfold_model::msg::{Epoch, Msg};
use std::io::{Read, Write};
use std::net::SocketAddr;

/// Largest frame accepted: far above any protocol message, small enough that garbage cannot make
/// a node allocate much.
pub const MAX_FRAME: u32 = 1 << 20;

/// One frame on a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
pub enum Frame {
    /// First frame on a peer connection: who is sending.
    Hello {
        /// The sender's actor id.
        src: u64,
        /// Where the sender listens for peer connections. A writer promoted by the control plane
        /// has an address no member was started with, so segments learn it here in order to
        /// answer it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        addr: Option<SocketAddr>,
    },
    /// A protocol message from the connecting peer.
    Data {
        /// Per-sender sequence number, echoed in [`Frame::Confirm`].
        seq: u64,
        /// The sender's Lamport clock when it sent (orders merged traces causally).
        clock: u64,
        /// The message.
        msg: Msg,
    },
    /// Receiver → sender: every data frame up to `seq` has been processed (and made durable),
    /// so the sender may forget it instead of resending it after a reconnect.
    Confirm {
        /// Highest sequence number processed.
        seq: u64,
    },
    /// Client → writer's client port: a `Write` or a `Read`.
    Request {
        /// The request.
        msg: Msg,
    },
    /// Writer → client: the answer (`WriteOk` or `ReadOk`).
    Reply {
        /// The answer.
        msg: Msg,
    },
    /// Writer → control plane: "I am the writer of `epoch` and alive"; answered by
    /// [`Frame::Grant`] while the control plane still considers it the writer.
    Heartbeat {
        /// The writer's epoch.
        epoch: Epoch,
        /// Per-connection sequence number, echoed in the grant.
        seq: u64,
        /// Whether the writer still holds its lease (it reports losing it, so the control plane
        /// replaces a writer that can no longer serve reads).
        lease: bool,
        /// Whether the writer is open for clients.
        open: bool,
        /// The writer's VDL (for the control plane's log).
        vdl: u64,
    },
    /// Control plane → writer: the lease is renewed, in answer to heartbeat `seq`. The writer's
    /// host steps `Msg::LeaseGrant` only if the grant arrives soon enough after that heartbeat
    /// (see `host::GRANT_WINDOW`), which bounds when its lease can end.
    Grant {
        /// The heartbeat answered.
        seq: u64,
    },
    /// The other side sent something unacceptable; the connection closes after this.
    Error {
        /// What was wrong.
        reason: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed or closed.
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    /// The declared length exceeds [`MAX_FRAME`].
    #[error("frame of {0} bytes exceeds the {MAX_FRAME}-byte limit")]
    TooLong(u32),
    /// The payload is not a frame.
    #[error("unparsable frame: {0}")]
    Parse(#[from] serde_json::Error),
}

impl WireError {
    /// Whether the peer misbehaved (as opposed to the connection merely ending).
    pub fn is_garbage(&self) -> bool {
        !matches!(self, WireError::Io(_))
    }
}

/// Encodes a frame with its length prefix.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let payload = serde_json::to_vec(frame).expect("frames always serialize");
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> std::io::Result<()> {
    w.write_all(&encode(frame))?;
    w.flush()
}

/// Reads one frame.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_be_bytes(len);
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    let mut payload = vec![0u8; len as usize];
    r.read_exact(&mut payload)?;
    Ok(serde_json::from_slice(&payload)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip() {
        let f = Frame::Data {
            seq: 3,
            clock: 9,
            msg: Msg::Ack { lsn: 1, scl: 1 },
        };
        let bytes = encode(&f);
        assert_eq!(read_frame(&mut &bytes[..]).unwrap(), f);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let too_long = [0xff, 0xff, 0xff, 0xff, 1, 2];
        assert!(matches!(
            read_frame(&mut &too_long[..]),
            Err(WireError::TooLong(_))
        ));
        let mut junk = 5u32.to_be_bytes().to_vec();
        junk.extend_from_slice(b"\x00\x01{{x");
        let e = read_frame(&mut &junk[..]).unwrap_err();
        assert!(e.is_garbage());
        let short = [0u8, 0, 0, 9, b'{'];
        assert!(!read_frame(&mut &short[..]).unwrap_err().is_garbage());
    }
}
