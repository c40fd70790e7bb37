//! What travels over TCP: length-prefixed, checksummed, versioned binary frames.
//!
//! A frame is
//!
//! ```text
//! u32 length (LE) | u32 crc32c of body (LE) | body
//! body = u8 WIRE_VERSION | postcard(Frame)
//! ```
//!
//! `length` counts the body only (at most [`MAX_FRAME`] bytes); the header is the same shape as a
//! segment log frame on disk (`storage`). Why each part:
//!
//! - **postcard** (a compact, non-self-describing serde encoding: varints, variants by index, no
//!   field names) instead of JSON: every write is shipped as an `Append` to six segments and
//!   acknowledged by each, so frame size is the redo traffic. With JSON frames the runtime
//!   benchmark measured about 907 bytes sent by the writer per acknowledged write; with these,
//!   about 138 (an `Append` frame is some 25 bytes, header included). The price is that frames
//!   are no longer readable with standard tools (the traces stay JSON for that) and that the
//!   encoding is positional: see [`WIRE_VERSION`].
//! - **a version byte** so that the encoding can evolve: a node meeting a version it does not
//!   speak says so by number instead of misreading the body. The header itself never changes.
//! - **a crc32c** over the body because TCP's own 16-bit ones'-complement checksum is weak: it
//!   cannot see reordered 16-bit words or compensating bit flips, and corruption in hosts, NICs
//!   and middleboxes (past the link-layer CRCs) does get through it. A compact positional encoding
//!   would otherwise turn a flipped bit into a valid but wrong message rather than a parse error.
//!
//! A peer that sends a frame longer than [`MAX_FRAME`], one whose checksum does not match, one of
//! another version, or one whose body does not decode gets an [`Frame::Error`] reply and its
//! connection is closed; the node carries on serving everyone else. Reading never panics on
//! malformed input and never buffers more than [`MAX_FRAME`] bytes of a body.

use serde::{Deserialize, Serialize};
use sixfold_model::protocol::msg::{Epoch, Msg};
use std::io::{Read, Write};
use std::net::SocketAddr;

/// Largest frame body accepted: far above any protocol message, small enough that garbage cannot
/// make a node allocate much.
pub const MAX_FRAME: u32 = 1 << 20;

/// The body encoding spoken, the first byte of every body. Version 1 is postcard of [`Frame`] as
/// defined here (the JSON frames before it had no version). postcard encodes variants by index
/// and fields by position, and `#[serde(default)]` does not help it: changing [`Frame`] *or*
/// `sixfold_model::protocol::msg::Msg` (adding, removing or reordering a field, reordering variants) needs a
/// new version. Appending a variant at the end leaves every existing frame's bytes as they are
/// (older nodes refuse only the new variant).
pub const WIRE_VERSION: u8 = 1;

/// Bytes before the body: length and checksum.
pub const HEADER: usize = 8;

/// One frame on a connection. Only ever encoded by [`encode`] (postcard, which is not
/// self-describing): no internally tagged enums, no skipped fields. Variants and fields are encoded
/// by position, so reordering them, or adding a field anywhere, is a new [`WIRE_VERSION`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// First frame on a peer connection: who is sending.
    Hello {
        /// The sender's actor id.
        src: u64,
        /// Where the sender listens for peer connections. A writer promoted by the control plane
        /// has an address no member was started with, so segments learn it here in order to
        /// answer it.
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
    /// The body does not match the checksum in the header.
    #[error(
        "frame checksum mismatch: header says {header:#010x}, body of {len} bytes has {body:#010x}"
    )]
    Checksum {
        /// The crc32c the header declares.
        header: u32,
        /// The crc32c of the body received.
        body: u32,
        /// The body's length.
        len: u32,
    },
    /// The body is empty: not even a version byte.
    #[error("empty frame: no wire version byte")]
    Empty,
    /// The body is in a version this node does not speak.
    #[error("unsupported wire version {0} (this node speaks version {WIRE_VERSION})")]
    Version(u8),
    /// The body is not a frame.
    #[error("undecodable frame (wire version {WIRE_VERSION}): {0}")]
    Parse(#[from] postcard::Error),
    /// The body holds a frame and then more bytes.
    #[error("undecodable frame (wire version {WIRE_VERSION}): {0} bytes after the frame")]
    Trailing(usize),
}

impl WireError {
    /// Whether the peer misbehaved (as opposed to the connection merely ending).
    pub fn is_garbage(&self) -> bool {
        !matches!(self, WireError::Io(_))
    }
}

/// Encodes a frame with its header.
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&[0; HEADER]);
    out.push(WIRE_VERSION);
    seal(postcard::to_extend(frame, out).expect("frames always serialize"))
}

/// Wraps arbitrary body bytes in a valid header (length and checksum). For tests that need a body
/// which passes the checksum but not what follows it (version, decoding); [`encode`] is the way to
/// send a frame.
pub fn frame_raw(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(body);
    seal(out)
}

/// Fills in the header of `out`, whose body follows [`HEADER`] placeholder bytes.
fn seal(mut out: Vec<u8>) -> Vec<u8> {
    let len = (out.len() - HEADER) as u32;
    let crc = crc32c::crc32c(&out[HEADER..]);
    out[..4].copy_from_slice(&len.to_le_bytes());
    out[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    out
}

/// Writes one frame.
pub fn write_frame(w: &mut impl Write, frame: &Frame) -> std::io::Result<()> {
    w.write_all(&encode(frame))?;
    w.flush()
}

/// Reads one frame. The length is checked before anything else is read, so an oversized frame is
/// refused at once, without waiting for (or allocating) its body.
pub fn read_frame(r: &mut impl Read) -> Result<Frame, WireError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_FRAME {
        return Err(WireError::TooLong(len));
    }
    let mut rest = vec![0u8; 4 + len as usize];
    r.read_exact(&mut rest)?;
    let (crc, body) = rest.split_at(4);
    decode_body(u32::from_le_bytes(crc.try_into().expect("4 bytes")), body)
}

/// Checks a body against its checksum and version, then decodes it.
fn decode_body(header: u32, body: &[u8]) -> Result<Frame, WireError> {
    let crc = crc32c::crc32c(body);
    if crc != header {
        return Err(WireError::Checksum {
            header,
            body: crc,
            len: body.len() as u32,
        });
    }
    let (&version, payload) = body.split_first().ok_or(WireError::Empty)?;
    if version != WIRE_VERSION {
        return Err(WireError::Version(version));
    }
    let (frame, left) = postcard::take_from_bytes(payload)?;
    if !left.is_empty() {
        return Err(WireError::Trailing(left.len()));
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sixfold_model::protocol::msg::{Record, Truncation, Version, VolumeEpoch};
    use stateright::actor::Id;

    /// One message of every variant, with non-default values wherever the model has a serde
    /// default (so a default silently filling a field would show). As long as `Msg` has
    /// variants: a flat list, one value each, read as a table.
    fn every_msg() -> Vec<Msg> {
        let rec = |lsn| Record {
            lsn,
            key: 7,
            value: 1000 + lsn,
            epoch: 3,
        };
        let trunc = Truncation {
            epoch: 3,
            after: 4,
            upto: 9,
        };
        let version = Version {
            lsn: 5,
            value: 42,
            epoch: 2,
        };
        let msgs = vec![
            Msg::Write {
                req: 1,
                key: 2,
                value: u64::MAX,
            },
            Msg::Read { req: 3, key: 4 },
            Msg::WriteOk {
                req: 5,
                lsn: 6,
                epoch: 2,
            },
            Msg::NotWriter { req: 7 },
            Msg::ReadOk { req: 8, version },
            Msg::Append {
                record: rec(10),
                volume: VolumeEpoch {
                    number: 3,
                    truncations: vec![trunc, trunc],
                },
            },
            Msg::Ack { lsn: 10, scl: 9 },
            Msg::ReadAt {
                client: Id::from(7),
                req: 9,
                key: 1,
                point: 300,
                epoch: 4,
            },
            Msg::ReadReply {
                client: Id::from(8),
                req: 10,
                key: 2,
                version: Some(version),
                scl: 11,
            },
            Msg::ReadReply {
                client: Id::from(8),
                req: 10,
                key: 2,
                version: None,
                scl: 11,
            },
            Msg::OpenQuery { epoch: 5 },
            Msg::SclReport {
                scl: 12,
                truncations: vec![trunc],
            },
            Msg::Fenced {
                epoch: 6,
                lsn: Some(13),
            },
            Msg::Fenced {
                epoch: 6,
                lsn: None,
            },
            Msg::LeaseGrant,
            Msg::GossipPull { from: 14 },
            Msg::GossipPush {
                records: vec![rec(15), rec(16)],
            },
            Msg::GossipPush { records: vec![] },
        ];
        // Exhaustive on purpose: a new Msg variant does not compile until it is listed above.
        let variant = |m: &Msg| match m {
            Msg::Write { .. } => 0,
            Msg::Read { .. } => 1,
            Msg::WriteOk { .. } => 2,
            Msg::NotWriter { .. } => 3,
            Msg::ReadOk { .. } => 4,
            Msg::Append { .. } => 5,
            Msg::Ack { .. } => 6,
            Msg::ReadAt { .. } => 7,
            Msg::ReadReply { .. } => 8,
            Msg::OpenQuery { .. } => 9,
            Msg::SclReport { .. } => 10,
            Msg::Fenced { .. } => 11,
            Msg::LeaseGrant => 12,
            Msg::GossipPull { .. } => 13,
            Msg::GossipPush { .. } => 14,
        };
        let seen: std::collections::BTreeSet<_> = msgs.iter().map(variant).collect();
        assert_eq!(seen.len(), 15, "every Msg variant is listed");
        msgs
    }

    /// One frame of every variant (and every message inside the ones that carry one).
    fn every_frame() -> Vec<Frame> {
        let mut frames = vec![
            Frame::Hello { src: 3, addr: None },
            Frame::Hello {
                src: 6,
                addr: Some("127.0.0.1:7100".parse().unwrap()),
            },
            Frame::Hello {
                src: 6,
                addr: Some("[::1]:7100".parse().unwrap()),
            },
            Frame::Confirm { seq: u64::MAX },
            Frame::Heartbeat {
                epoch: 2,
                seq: 17,
                lease: true,
                open: false,
                vdl: 99,
            },
            Frame::Grant { seq: 17 },
            Frame::Error {
                reason: "nope: ünïcode too".into(),
            },
            Frame::Error {
                reason: String::new(),
            },
        ];
        for (i, msg) in every_msg().into_iter().enumerate() {
            frames.push(Frame::Data {
                seq: i as u64,
                clock: 1 << 40,
                msg: msg.clone(),
            });
            frames.push(Frame::Request { msg: msg.clone() });
            frames.push(Frame::Reply { msg });
        }
        frames
    }

    fn append_frame() -> Frame {
        Frame::Data {
            seq: 1234,
            clock: 56789,
            msg: Msg::Append {
                record: Record {
                    lsn: 1234,
                    key: 17,
                    value: 1_000_017,
                    epoch: 1,
                },
                volume: VolumeEpoch::first(),
            },
        }
    }

    #[test]
    fn every_frame_and_message_round_trips() {
        for f in every_frame() {
            let bytes = encode(&f);
            assert_eq!(
                bytes.len(),
                HEADER + u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize
            );
            assert_eq!(bytes[HEADER], WIRE_VERSION);
            assert_eq!(read_frame(&mut &bytes[..]).unwrap(), f, "{f:?}");
        }
    }

    #[test]
    fn frames_follow_each_other_on_a_stream() {
        let frames = every_frame();
        let stream: Vec<u8> = frames.iter().flat_map(encode).collect();
        let mut r = &stream[..];
        for f in &frames {
            assert_eq!(&read_frame(&mut r).unwrap(), f);
        }
        assert!(!read_frame(&mut r).unwrap_err().is_garbage(), "then EOF");
    }

    #[test]
    fn an_append_is_a_few_dozen_bytes() {
        let f = append_frame();
        let bytes = encode(&f);
        let json = serde_json::to_vec(&f).unwrap().len() + 4;
        assert!(bytes.len() <= 40, "{} bytes", bytes.len());
        assert!(
            bytes.len() * 4 <= json,
            "{} bytes vs {json} as JSON",
            bytes.len()
        );
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_length_is_caught_by_the_crc() {
        for f in [
            append_frame(),
            Frame::Grant { seq: 1 },
            Frame::Hello { src: 0, addr: None },
        ] {
            let good = encode(&f);
            for i in 4..good.len() {
                for bit in 0..8 {
                    let mut bad = good.clone();
                    bad[i] ^= 1 << bit;
                    let e = read_frame(&mut &bad[..]).unwrap_err();
                    assert!(
                        matches!(e, WireError::Checksum { .. }),
                        "byte {i} bit {bit}: {e}"
                    );
                    assert!(e.is_garbage());
                    assert!(e.to_string().contains("checksum"), "{e}");
                }
            }
        }
    }

    #[test]
    fn a_corrupt_length_is_an_error_too() {
        let good = encode(&append_frame());
        for i in 0..4 {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[i] ^= 1 << bit;
                // Too long, a body cut short (the stream ends), or a checksum over the wrong bytes.
                assert!(read_frame(&mut &bad[..]).is_err(), "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn another_version_is_refused_by_number() {
        let good = encode(&append_frame());
        for v in [0u8, 2, 0x7b, 0xff] {
            let mut body = good[HEADER..].to_vec();
            body[0] = v;
            let e = read_frame(&mut &frame_raw(&body)[..]).unwrap_err();
            assert!(matches!(e, WireError::Version(x) if x == v), "{e}");
            let text = e.to_string();
            assert!(text.contains(&format!("wire version {v}")), "{text}");
            assert!(
                text.contains(&format!("speaks version {WIRE_VERSION}")),
                "{text}"
            );
        }
    }

    #[test]
    fn oversized_empty_trailing_and_truncated_frames() {
        let too_long = [0xff, 0xff, 0xff, 0xff, 1, 2];
        let e = read_frame(&mut &too_long[..]).unwrap_err();
        assert!(
            matches!(e, WireError::TooLong(u32::MAX)) && e.is_garbage(),
            "{e}"
        );
        assert!(e.to_string().contains("limit"), "{e}");
        let just_over = (MAX_FRAME + 1).to_le_bytes();
        assert!(matches!(
            read_frame(&mut &just_over[..]),
            Err(WireError::TooLong(_))
        ));
        // MAX_FRAME itself is allowed: the stream merely ends before the body does.
        let at_limit = MAX_FRAME.to_le_bytes();
        assert!(!read_frame(&mut &at_limit[..]).unwrap_err().is_garbage());

        let e = read_frame(&mut &frame_raw(&[])[..]).unwrap_err();
        assert!(matches!(e, WireError::Empty), "{e}");

        let mut body = encode(&Frame::Grant { seq: 5 })[HEADER..].to_vec();
        body.push(0);
        let e = read_frame(&mut &frame_raw(&body)[..]).unwrap_err();
        assert!(matches!(e, WireError::Trailing(1)), "{e}");

        // A frame cut anywhere is the connection ending, not garbage.
        let good = encode(&append_frame());
        for cut in 0..good.len() {
            let e = read_frame(&mut &good[..cut]).unwrap_err();
            assert!(!e.is_garbage(), "cut at {cut}: {e}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // The old JSON frames, and some fixed junk.
        let mut json = 5u32.to_be_bytes().to_vec();
        json.extend_from_slice(b"\x00\x01{{x");
        assert!(read_frame(&mut &json[..]).unwrap_err().is_garbage());
        let body = br#"{"t":"reply","msg":"OpenQuery"}"#;
        let mut json = (body.len() as u32).to_be_bytes().to_vec();
        json.extend_from_slice(body);
        assert!(read_frame(&mut &json[..]).unwrap_err().is_garbage());
        let e = read_frame(&mut &frame_raw(body)[..]).unwrap_err();
        assert!(matches!(e, WireError::Version(b'{')), "{e}");
        // Bodies that pass checksum and version but do not decode: an unknown variant, a
        // varint that never ends, a string longer than the body, an invalid bool.
        for payload in [
            &[200u8][..],
            &[
                0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            ],
            &[7, 0xff, 0xff, 0x03, b'a'],
            &[5, 1, 1, 7, 0, 0],
        ] {
            let mut body = vec![WIRE_VERSION];
            body.extend_from_slice(payload);
            let e = read_frame(&mut &frame_raw(&body)[..]).unwrap_err();
            assert!(
                matches!(e, WireError::Parse(_)) && e.is_garbage(),
                "{payload:?}: {e}"
            );
            assert!(e.to_string().starts_with("undecodable frame"), "{e}");
        }
        // Pseudo-random bytes (xorshift, fixed seed): raw, and wrapped in a valid header and
        // version so that they reach the decoder. Either way: a result, never a panic.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut decoded = 0;
        for round in 0..20_000 {
            let len = (next() % 64) as usize;
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if let Err(e) = read_frame(&mut &junk[..]) {
                let _ = e.to_string();
            }
            let mut body = vec![WIRE_VERSION];
            body.extend_from_slice(&junk);
            if round % 2 == 0 {
                body[1..].iter_mut().take(1).for_each(|b| *b %= 8); // a valid variant, often
            }
            match read_frame(&mut &frame_raw(&body)[..]) {
                Ok(f) => {
                    decoded += 1;
                    assert_eq!(read_frame(&mut &encode(&f)[..]).unwrap(), f);
                }
                Err(e) => assert!(e.is_garbage(), "{e}"),
            }
        }
        assert!(
            decoded > 0,
            "some random bodies are frames, which exercises the decoder deeply"
        );
    }
}
