//! A stranger on the cluster's ports: one connection that sends one bad frame to a segment, the
//! writer (its peer port or its client port) or the control plane, and reports how it was
//! answered.
//!
//! Every port of a member reads [`crate::wire`] frames from whoever connects, so anything may
//! arrive on it: bytes that are not a frame, a length past [`MAX_FRAME`], a well-formed frame
//! from an epoch the cluster has left behind, a hello from an actor id no cluster has. Each must
//! be refused (an `error` frame, or the connection closed, or, for a heartbeat, no grant) and
//! must not reach the protocol: nothing the stranger sends may become a step of an actor. The
//! campaign (`sixfold campaign`) sends these among its faults and then checks that nothing was
//! lost; [`send`] is the stranger's side of one such fault.
//!
//! What "stale epoch" means per port: a `Heartbeat` of an epoch that is not the appointed one to
//! the control plane (it must not be granted); an `Append` of an old epoch as a client request
//! to the writer's client port, and as a data frame on a peer connection that has not said who
//! it is (hello) to a peer port. A stranger does not impersonate a real member with a correct
//! hello: the protocol has no authentication, and a forged message from a real actor id is a
//! Byzantine fault, outside what the model assumes.

use crate::wire::{self, Frame, MAX_FRAME};
use sixfold_model::protocol::msg::{Epoch, Msg, Record, VolumeEpoch};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

pub use crate::schedule::{BadFrame, Port};

/// How long the stranger waits for an answer before deciding none is coming. A refusal is sent
/// at once; only a heartbeat that is (rightly) not granted waits this long.
pub const ANSWER_WAIT: Duration = Duration::from_millis(300);

/// An actor id no cluster has: past the segments, the writers, the control plane, and far past
/// the client ids a writer hands out.
pub const UNKNOWN_ACTOR: u64 = 4_000_000;

/// How a port answered a stranger.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// An `error` frame with this reason (then the connection closed).
    Error(String),
    /// The connection was closed without a reason.
    Closed,
    /// Nothing came back within [`ANSWER_WAIT`] (a heartbeat that was not granted).
    Silence,
    /// A frame that is neither a refusal nor silence: the stranger was taken for a member.
    Accepted(String),
}

impl Answer {
    /// Whether this is a refusal of `frame` sent to `port`: an error or a close, and silence
    /// only for a heartbeat (which the control plane answers only with a grant).
    pub fn is_refusal(&self, port: Port, frame: BadFrame) -> bool {
        match self {
            Answer::Error(_) | Answer::Closed => true,
            Answer::Silence => port == Port::ControlPlane && frame == BadFrame::StaleEpoch,
            Answer::Accepted(_) => false,
        }
    }
}

/// Why the stranger could not play its part.
#[derive(Debug, thiserror::Error)]
#[error("stranger to {addr}: {source}")]
pub struct StrangerError {
    /// Where it tried.
    pub addr: SocketAddr,
    /// What failed.
    #[source]
    pub source: std::io::Error,
}

/// The bytes of `frame` for `port`, given the cluster's current epoch and a seed for the
/// garbage.
pub fn bytes(port: Port, frame: BadFrame, epoch: Epoch, seed: u64) -> Vec<u8> {
    let stale = epoch.saturating_sub(1);
    match frame {
        BadFrame::Garbage => garbage(seed),
        BadFrame::Oversized => {
            let mut b = (MAX_FRAME + 1).to_le_bytes().to_vec();
            b.extend_from_slice(&[0xab; 64]);
            b
        }
        BadFrame::StaleEpoch => wire::encode(&stale_frame(port, stale)),
        BadFrame::UnknownActor => wire::encode(&Frame::Hello {
            src: UNKNOWN_ACTOR,
            addr: None,
        }),
    }
}

/// A well-formed frame of epoch `stale` for `port` (see the module docs).
fn stale_frame(port: Port, stale: Epoch) -> Frame {
    let append = Msg::Append {
        record: Record {
            lsn: 1,
            key: 0,
            value: 666,
            epoch: stale,
        },
        volume: VolumeEpoch {
            number: stale,
            truncations: Vec::new(),
        },
    };
    match port {
        Port::ControlPlane => Frame::Heartbeat {
            epoch: stale,
            seq: 0,
            lease: true,
            open: true,
            vdl: 0,
        },
        Port::WriterClient => Frame::Request { msg: append },
        Port::Segment(_) | Port::WriterPeer => Frame::Data {
            seq: 0,
            clock: 0,
            msg: append,
        },
    }
}

/// A frame header declaring a body of random bytes, whose checksum is off by one, so no
/// decoder can take it for anything.
fn garbage(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let len = 8 + (next() % 200) as usize;
    let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
    let mut b = wire::frame_raw(&body);
    b[4] ^= 0x01;
    b
}

/// Connects to `addr`, sends `frame` (as [`bytes`] makes it), and reports the answer.
pub fn send(
    addr: SocketAddr,
    port: Port,
    frame: BadFrame,
    epoch: Epoch,
    seed: u64,
) -> Result<Answer, StrangerError> {
    let err = |source| StrangerError { addr, source };
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(err)?;
    s.set_read_timeout(Some(ANSWER_WAIT)).map_err(err)?;
    s.set_write_timeout(Some(Duration::from_secs(1)))
        .map_err(err)?;
    match s.write_all(&bytes(port, frame, epoch, seed)) {
        Ok(()) => {}
        // The port may refuse an oversized header and close before the rest is written.
        Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
            return Ok(Answer::Closed)
        }
        Err(e) => return Err(err(e)),
    }
    Ok(match wire::read_frame(&mut s) {
        Ok(Frame::Error { reason }) => Answer::Error(reason),
        Ok(f) => Answer::Accepted(format!("{f:?}")),
        Err(wire::WireError::Io(e))
            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) =>
        {
            Answer::Silence
        }
        Err(_) => Answer::Closed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_frame_is_refused_by_the_wire_or_is_well_formed_on_purpose() {
        for seed in 1..50 {
            let g = bytes(Port::Segment(0), BadFrame::Garbage, 3, seed);
            let e = wire::read_frame(&mut &g[..]).unwrap_err();
            assert!(matches!(e, wire::WireError::Checksum { .. }), "{e}");
        }
        let o = bytes(Port::WriterPeer, BadFrame::Oversized, 3, 1);
        let e = wire::read_frame(&mut &o[..]).unwrap_err();
        assert!(matches!(e, wire::WireError::TooLong(_)), "{e}");
        let hb = bytes(Port::ControlPlane, BadFrame::StaleEpoch, 3, 1);
        assert!(matches!(
            wire::read_frame(&mut &hb[..]).unwrap(),
            Frame::Heartbeat { epoch: 2, .. }
        ));
        let req = bytes(Port::WriterClient, BadFrame::StaleEpoch, 3, 1);
        assert!(matches!(
            wire::read_frame(&mut &req[..]).unwrap(),
            Frame::Request {
                msg: Msg::Append { .. }
            }
        ));
        let hello = bytes(Port::Segment(2), BadFrame::UnknownActor, 3, 1);
        assert!(matches!(
            wire::read_frame(&mut &hello[..]).unwrap(),
            Frame::Hello {
                src: UNKNOWN_ACTOR,
                ..
            }
        ));
    }

    #[test]
    fn silence_is_a_refusal_only_of_a_heartbeat() {
        assert!(Answer::Silence.is_refusal(Port::ControlPlane, BadFrame::StaleEpoch));
        assert!(!Answer::Silence.is_refusal(Port::Segment(1), BadFrame::Garbage));
        assert!(!Answer::Silence.is_refusal(Port::ControlPlane, BadFrame::Garbage));
        assert!(Answer::Closed.is_refusal(Port::ControlPlane, BadFrame::Garbage));
        assert!(
            !Answer::Accepted("Grant".into()).is_refusal(Port::ControlPlane, BadFrame::StaleEpoch)
        );
    }

    #[test]
    fn a_port_that_answers_garbage_with_an_error_is_reported_so() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let e = wire::read_frame(&mut s).unwrap_err();
            wire::write_frame(
                &mut s,
                &Frame::Error {
                    reason: e.to_string(),
                },
            )
            .unwrap();
        });
        let a = send(addr, Port::Segment(0), BadFrame::Garbage, 1, 9).unwrap();
        t.join().unwrap();
        assert!(
            matches!(&a, Answer::Error(r) if r.contains("checksum")),
            "{a:?}"
        );
    }
}
