//! Inbound connections: the accept loops of the peer and client ports, and one thread per
//! connection that only decodes frames into the step loop's channel.
//!
//! A peer connection starts with a [`Frame::Hello`] naming the sender (and, for a writer, where
//! it listens, so a promoted writer nobody was started with is answered); each
//! [`Frame::Data`] after it becomes an [`Event::Msg`] carrying the [`ConfirmLink`] on which its
//! confirmation goes back once the step loop has made it durable. A client connection is given a
//! virtual actor id ([`CLIENT_ID_BASE`] + n, numbered by this process) and may only send `Write`
//! and `Read` requests; it is registered with the outbox's [`Clients`] so replies addressed to its
//! id go back on it. A connection that sends anything else is told why in a [`Frame::Error`] and
//! closed.

use super::driver::Event;
use super::outbox::Clients;
use super::{writer_epoch, HostError, ACTORS, CLIENT_ID_BASE};
use crate::transport::ConfirmLink;
use crate::wire::{self, Frame};
use sixfold_model::protocol::msg::Msg;
use std::io::{ErrorKind, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Binds a listening socket (non-blocking, so the accept loop can watch `stop`).
pub(super) fn bind(addr: SocketAddr) -> Result<TcpListener, HostError> {
    let l = TcpListener::bind(addr).map_err(|source| HostError::Bind { addr, source })?;
    l.set_nonblocking(true)
        .map_err(|source| HostError::Bind { addr, source })?;
    Ok(l)
}

/// Starts accepting peers on `l`: one [`peer_conn`] thread per connection.
pub(super) fn serve_peers(
    l: TcpListener,
    tx: Sender<Event>,
    tag: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        accept_loop(l, &stop, |s| {
            let (tx, tag, stop) = (tx.clone(), tag.clone(), stop.clone());
            std::thread::spawn(move || peer_conn(s, tx, &tag, &stop));
        })
    })
}

/// Starts accepting clients on `l`: one [`client_conn`] thread per connection, each with the
/// next virtual actor id from [`CLIENT_ID_BASE`].
pub(super) fn serve_clients(
    l: TcpListener,
    tx: Sender<Event>,
    clients: Clients,
    tag: String,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut next = CLIENT_ID_BASE;
        accept_loop(l, &stop, |s| {
            let vid = next;
            next += 1;
            let (tx, tag, stop, clients) = (tx.clone(), tag.clone(), stop.clone(), clients.clone());
            std::thread::spawn(move || client_conn(s, vid, tx, clients, &tag, &stop));
        })
    })
}

fn accept_loop(l: TcpListener, stop: &AtomicBool, mut on: impl FnMut(TcpStream)) {
    while !stop.load(Ordering::SeqCst) {
        match l.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_nodelay(true);
                on(s)
            }
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Reads frames until `stop`; read timeouts only re-check `stop`. `on` returns why the
/// connection must close (empty: the node is stopping).
fn read_loop(
    s: &mut TcpStream,
    stop: &AtomicBool,
    mut on: impl FnMut(Frame) -> Result<(), String>,
) -> Result<(), String> {
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    let mut r = std::io::BufReader::new(s.try_clone().map_err(|e| e.to_string())?);
    loop {
        if stop.load(Ordering::SeqCst) {
            return Ok(());
        }
        // Wait for the first byte of a frame with the short timeout, then read it whole.
        let mut first = [0u8; 1];
        match r.read(&mut first) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => return Ok(()),
        }
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut chained = Read::chain(&first[..], &mut r);
        let f = match wire::read_frame(&mut chained) {
            Ok(f) => f,
            Err(e) if e.is_garbage() => return Err(e.to_string()),
            Err(_) => return Ok(()),
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
        on(f)?;
    }
}

/// Tells the other end why its connection is closed, and closes it.
fn reject(s: &mut TcpStream, tag: &str, reason: String) {
    if reason.is_empty() {
        return; // the node is stopping: nothing to tell the peer
    }
    eprintln!("{tag}: closing a connection: {reason}");
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    let _ = wire::write_frame(s, &Frame::Error { reason });
    let _ = s.shutdown(std::net::Shutdown::Both);
}

/// One peer connection: a hello, then data frames, each with the link to confirm it on.
fn peer_conn(mut s: TcpStream, tx: Sender<Event>, tag: &str, stop: &AtomicBool) {
    let Some(link) = ConfirmLink::new(&s) else {
        return;
    };
    let mut src = None;
    let r = read_loop(&mut s, stop, |f| match (f, src) {
        (Frame::Hello { src: id, addr }, None)
            if (id as usize) < ACTORS || writer_epoch(id as usize).is_some() =>
        {
            src = Some(id as usize);
            match addr {
                Some(addr) => tx
                    .send(Event::Peer {
                        src: id as usize,
                        addr,
                    })
                    .map_err(|_| String::new()),
                None => Ok(()),
            }
        }
        (Frame::Hello { src: id, .. }, None) => Err(format!("hello from unknown actor {id}")),
        (Frame::Data { seq, clock, msg }, Some(src)) => tx
            .send(Event::Msg {
                src,
                msg,
                clock,
                confirm: Some((link.clone(), seq)),
            })
            .map_err(|_| String::new()),
        (f, _) => Err(format!("unexpected frame on a peer connection: {f:?}")),
    });
    if let Err(reason) = r {
        reject(&mut s, tag, reason);
    }
}

/// One client connection, known to the step loop as actor `vid`: requests in, replies out
/// through the outbox.
fn client_conn(
    mut s: TcpStream,
    vid: usize,
    tx: Sender<Event>,
    clients: Clients,
    tag: &str,
    stop: &AtomicBool,
) {
    if !clients.register(vid, &s) {
        return;
    }
    let r = read_loop(&mut s, stop, |f| match f {
        Frame::Request {
            msg: msg @ (Msg::Write { .. } | Msg::Read { .. }),
        } => tx
            .send(Event::Msg {
                src: vid,
                msg,
                clock: 0,
                confirm: None,
            })
            .map_err(|_| String::new()),
        f => Err(format!(
            "clients may only send Write or Read requests, got {f:?}"
        )),
    });
    clients.forget(vid);
    if let Err(reason) = r {
        reject(&mut s, tag, reason);
    }
}
