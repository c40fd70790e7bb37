//! Both ends of a peer link's at-least-once delivery: the sender's [`Outbound`] (a bounded queue,
//! one TCP connection, reconnect with backoff, resend of every frame the peer has not confirmed)
//! and the receiver's [`Confirms`] (the confirmations it owes, written back on the connection the
//! frames came in on).
//!
//! This mirrors the model's network, where a message to an actor that is down waits until it is
//! back: frames stay queued while the peer is unreachable and are sent when it returns. Frames
//! written on a connection that later fails are resent after reconnecting unless the peer
//! confirmed them ([`Frame::Confirm`]), so delivery is at-least-once; the protocol's Append/Ack
//! handlers are idempotent. The receiver confirms a frame only after it has stepped it and made
//! the batch's saves durable (the host's outbox releases [`Confirms`] after the fsync), so a
//! confirmed frame is never needed again. The queue is bounded ([`QUEUE_CAP`]); on overflow the
//! oldest frame is dropped and counted in the log, which the model's `--lossy` network covers.

use crate::wire::{self, Frame};
use std::collections::VecDeque;
use std::io::{BufWriter, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// Most frames (queued plus unconfirmed) kept for one peer.
pub const QUEUE_CAP: usize = 1 << 16;

#[derive(Default)]
struct Queue {
    pending: VecDeque<(u64, Arc<Vec<u8>>)>,
    unconfirmed: VecDeque<(u64, Arc<Vec<u8>>)>,
    next_seq: u64,
    confirmed: u64,
    dropped: u64,
    stop: bool,
}

struct Shared {
    q: Mutex<Queue>,
    cv: Condvar,
}

/// The sending side of one peer link; dropping it stops the link's thread.
pub struct Outbound {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Outbound {
    /// Starts the link from actor `src` to the peer at `addr`; `self_addr`, sent in the hello,
    /// tells the peer where to answer `src`.
    pub fn start(
        src: u64,
        self_addr: Option<SocketAddr>,
        dst: u64,
        addr: SocketAddr,
        tag: String,
    ) -> Outbound {
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue {
                next_seq: 1,
                ..Queue::default()
            }),
            cv: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("out-{src}-{dst}"))
            .spawn(move || run(src, self_addr, addr, s, tag))
            .expect("spawn outbound thread");
        Outbound {
            shared,
            thread: Some(thread),
        }
    }

    /// Queues a message for the peer; returns the frame's size in bytes.
    pub fn send(&self, clock: u64, msg: sixfold_model::protocol::msg::Msg) -> usize {
        let mut q = self.shared.q.lock().expect("queue lock");
        let seq = q.next_seq;
        q.next_seq += 1;
        let bytes = Arc::new(wire::encode(&Frame::Data { seq, clock, msg }));
        let size = bytes.len();
        q.pending.push_back((seq, bytes));
        if q.pending.len() + q.unconfirmed.len() > QUEUE_CAP {
            if q.unconfirmed.pop_front().is_none() {
                q.pending.pop_front();
            }
            q.dropped += 1;
            if q.dropped.is_power_of_two() {
                eprintln!(
                    "sixfold: outbound queue full: dropped {} oldest frame(s) so far",
                    q.dropped
                );
            }
        }
        drop(q);
        self.shared.cv.notify_all();
        size
    }
}

impl Drop for Outbound {
    fn drop(&mut self) {
        self.shared.q.lock().expect("queue lock").stop = true;
        self.shared.cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The receiving end of one inbound peer connection: its write half, on which the frames that
/// came in on it are confirmed.
#[derive(Clone)]
pub struct ConfirmLink(Arc<Mutex<TcpStream>>);

impl ConfirmLink {
    /// The write half of `stream` (writes time out after a second); `None` if it cannot be
    /// cloned (the connection is gone).
    pub fn new(stream: &TcpStream) -> Option<ConfirmLink> {
        let w = stream.try_clone().ok()?;
        let _ = w.set_write_timeout(Some(Duration::from_secs(1)));
        Some(ConfirmLink(Arc::new(Mutex::new(w))))
    }
}

/// The confirmations a receiver owes for the frames of one batch: per connection, the highest
/// sequence number taken, written only when [`Confirms::release`] is called (after the fsync).
#[derive(Default)]
pub struct Confirms(Vec<(ConfirmLink, u64)>);

impl Confirms {
    /// Owes the peer on `link` a confirmation of every frame up to `seq`.
    pub fn owe(&mut self, link: ConfirmLink, seq: u64) {
        match self.0.iter_mut().find(|(k, _)| Arc::ptr_eq(&k.0, &link.0)) {
            Some((_, s)) => *s = (*s).max(seq),
            None => self.0.push((link, seq)),
        }
    }

    /// Writes one [`Frame::Confirm`] per connection owed, in the order they were first owed. A
    /// confirmation that cannot be written is not retried: the sender resends what it lacks.
    pub fn release(&mut self) {
        for (link, seq) in self.0.drain(..) {
            let mut s = link.0.lock().expect("conn lock");
            let _ = wire::write_frame(&mut *s, &Frame::Confirm { seq });
        }
    }
}

/// The sender's side of confirmations: reads the peer's [`Frame::Confirm`]s off the link's
/// connection and forgets the frames they cover, until the connection breaks.
fn confirm_reader(mut stream: TcpStream, shared: Arc<Shared>, broken: Arc<AtomicBool>) {
    loop {
        match wire::read_frame(&mut stream) {
            Ok(Frame::Confirm { seq }) => {
                let mut q = shared.q.lock().expect("queue lock");
                q.confirmed = q.confirmed.max(seq);
                while q.unconfirmed.front().is_some_and(|(s, _)| *s <= seq) {
                    q.unconfirmed.pop_front();
                }
            }
            Ok(_) => {}
            Err(_) => break,
        }
    }
    broken.store(true, Ordering::SeqCst);
    shared.cv.notify_all();
}

/// The link's thread: connect (with backoff), say hello, resend what was not confirmed, then
/// write frames as they are queued; reconnect when the connection fails, until the link stops.
fn run(
    src: u64,
    self_addr: Option<SocketAddr>,
    addr: SocketAddr,
    shared: Arc<Shared>,
    tag: String,
) {
    let mut backoff = Duration::from_millis(5);
    let mut was_connected = false;
    loop {
        if shared.q.lock().expect("queue lock").stop {
            return;
        }
        let stream = match TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
            Ok(s) => s,
            Err(e) => {
                if was_connected {
                    eprintln!("{tag}: lost {addr} ({e}); retrying");
                    was_connected = false;
                }
                let q = shared.q.lock().expect("queue lock");
                let _ = shared.cv.wait_timeout_while(q, backoff, |q| !q.stop);
                backoff = (backoff * 2).min(Duration::from_millis(200));
                continue;
            }
        };
        backoff = Duration::from_millis(5);
        was_connected = true;
        let _ = stream.set_nodelay(true);
        let broken = Arc::new(AtomicBool::new(false));
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(_) => continue,
        };
        let (s2, b2) = (shared.clone(), broken.clone());
        let reader_thread = std::thread::spawn(move || confirm_reader(reader, s2, b2));
        let mut w = BufWriter::with_capacity(64 * 1024, &stream);
        let ok = wire::write_frame(
            &mut w,
            &Frame::Hello {
                src,
                addr: self_addr,
            },
        )
        .is_ok();
        resend_unconfirmed(&shared);
        if ok {
            pump(&mut w, &shared, &broken);
        }
        drop(w);
        let _ = stream.shutdown(Shutdown::Both);
        let _ = reader_thread.join();
    }
}

/// Puts whatever the peer never confirmed back at the head of the queue, in order, to go out
/// again first on a new connection.
fn resend_unconfirmed(shared: &Shared) {
    let mut q = shared.q.lock().expect("queue lock");
    let confirmed = q.confirmed;
    let mut again: VecDeque<_> = q
        .unconfirmed
        .drain(..)
        .filter(|(s, _)| *s > confirmed)
        .collect();
    again.append(&mut q.pending);
    q.pending = again;
}

/// Writes queued frames to one connection as they come (remembering them as unconfirmed), until
/// the link stops, the connection breaks or a write fails.
fn pump(w: &mut impl Write, shared: &Shared, broken: &AtomicBool) {
    loop {
        let batch: Vec<_> = {
            let q = shared.q.lock().expect("queue lock");
            let (mut q, _) = shared
                .cv
                .wait_timeout_while(q, Duration::from_millis(100), |q| {
                    q.pending.is_empty() && !q.stop && !broken.load(Ordering::SeqCst)
                })
                .expect("queue lock");
            if q.stop || broken.load(Ordering::SeqCst) {
                return;
            }
            let batch: Vec<_> = q.pending.drain(..).collect();
            q.unconfirmed.extend(batch.iter().cloned());
            batch
        };
        let failed = batch.iter().any(|(_, bytes)| w.write_all(bytes).is_err());
        if failed || w.flush().is_err() {
            return;
        }
    }
}
