//! A client of a running cluster: one TCP connection to the writer's client port
//! ([`Client`]), and a client that follows the writer across failovers ([`ClusterClient`]).
//!
//! Requests carry the client's own request numbers. There is no resend on this link: a request
//! that gets no answer within the timeout is reported as [`ClientError::Timeout`], whose outcome
//! is unknown (the write may or may not have committed), as a linearizability checker needs.
//! [`ClientError::definitely_not_applied`] says which errors prove the request had no effect
//! (no connection, or the writer refused it with `NotWriter`): only those are retried on another
//! writer, so a write is never applied twice and never reported absent when it may be present.

use crate::layout;
use crate::wire::{self, Frame};
use sixfold_model::protocol::msg::{Epoch, Key, Lsn, Msg, ReqId, Value, Version};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect: nothing was sent.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The writer's client address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The instance is not (or no longer) the writer: it refused the request, which had no
    /// effect. Ask the control plane (`DIR/writer.json`) for the current writer.
    #[error("{addr} is not the writer (lease expired or fenced by a newer epoch)")]
    NotWriter {
        /// The instance's client address.
        addr: SocketAddr,
    },
    /// The current writer could not be looked up.
    #[error("cannot find the writer: {0}")]
    Discovery(#[from] layout::LayoutError),
    /// The connection failed after the request was (perhaps) sent: outcome unknown.
    #[error("{addr}: {source}")]
    Io {
        /// The writer's client address.
        addr: SocketAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// No answer in time: the outcome is unknown.
    #[error("no answer from {addr} within {timeout:?}: outcome unknown")]
    Timeout {
        /// The writer's client address.
        addr: SocketAddr,
        /// The timeout.
        timeout: Duration,
    },
    /// The writer sent something that is not an answer to the request.
    #[error("{addr}: unexpected reply {reply}")]
    Protocol {
        /// The writer's client address.
        addr: SocketAddr,
        /// What came back.
        reply: String,
    },
}

/// A connection to the writer.
pub struct Client {
    addr: SocketAddr,
    stream: TcpStream,
    reader: std::io::BufReader<TcpStream>,
    next_req: ReqId,
    timeout: Duration,
}

impl ClientError {
    /// Whether the request certainly had no effect, so it may be retried elsewhere.
    pub fn definitely_not_applied(&self) -> bool {
        matches!(
            self,
            ClientError::Connect { .. } | ClientError::NotWriter { .. } | ClientError::Discovery(_)
        )
    }
}

/// An acknowledged write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteAck {
    /// The LSN it committed at.
    pub lsn: Lsn,
    /// The epoch of the writer that acknowledged it.
    pub epoch: Epoch,
}

impl Client {
    /// Connects to the writer's client port at `addr`; calls give up after `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        let io = |source| ClientError::Io { addr, source };
        let stream = TcpStream::connect_timeout(&addr, timeout)
            .map_err(|source| ClientError::Connect { addr, source })?;
        stream.set_nodelay(true).map_err(io)?;
        let reader = std::io::BufReader::new(stream.try_clone().map_err(io)?);
        Ok(Client {
            addr,
            stream,
            reader,
            next_req: 0,
            timeout,
        })
    }

    fn call(&mut self, msg: Msg) -> Result<Msg, ClientError> {
        let addr = self.addr;
        let req = match msg {
            Msg::Write { req, .. } | Msg::Read { req, .. } => req,
            _ => unreachable!("only requests are sent"),
        };
        let io = |source| ClientError::Io { addr, source };
        wire::write_frame(&mut self.stream, &Frame::Request { msg }).map_err(io)?;
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(ClientError::Timeout {
                    addr,
                    timeout: self.timeout,
                });
            }
            self.stream.set_read_timeout(Some(left)).map_err(io)?;
            match wire::read_frame(&mut self.reader) {
                Ok(Frame::Reply { msg }) => match msg {
                    Msg::WriteOk { req: r, .. } | Msg::ReadOk { req: r, .. } if r == req => {
                        return Ok(msg)
                    }
                    Msg::NotWriter { req: r } if r == req => {
                        return Err(ClientError::NotWriter { addr })
                    }
                    _ => continue, // a late or duplicate answer to an earlier request
                },
                Ok(other) => {
                    return Err(ClientError::Protocol {
                        addr,
                        reply: format!("{other:?}"),
                    })
                }
                Err(wire::WireError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Err(ClientError::Timeout {
                        addr,
                        timeout: self.timeout,
                    })
                }
                Err(wire::WireError::Io(e)) => return Err(io(e)),
                Err(e) => {
                    return Err(ClientError::Protocol {
                        addr,
                        reply: e.to_string(),
                    })
                }
            }
        }
    }

    fn req(&mut self) -> ReqId {
        let r = self.next_req;
        self.next_req = self.next_req.wrapping_add(1);
        r
    }

    /// Writes `value` to `key`; returns the commit's LSN once it is acknowledged.
    pub fn write(&mut self, key: Key, value: Value) -> Result<Lsn, ClientError> {
        self.write_acked(key, value).map(|a| a.lsn)
    }

    /// Writes `value` to `key`; returns the commit's LSN and the acknowledging writer's epoch.
    pub fn write_acked(&mut self, key: Key, value: Value) -> Result<WriteAck, ClientError> {
        let req = self.req();
        match self.call(Msg::Write { req, key, value })? {
            Msg::WriteOk { lsn, epoch, .. } => Ok(WriteAck { lsn, epoch }),
            m => Err(ClientError::Protocol {
                addr: self.addr,
                reply: format!("{m:?}"),
            }),
        }
    }

    /// Reads `key` at the writer's current VDL.
    pub fn read(&mut self, key: Key) -> Result<Version, ClientError> {
        let req = self.req();
        match self.call(Msg::Read { req, key })? {
            Msg::ReadOk { version, .. } => Ok(version),
            m => Err(ClientError::Protocol {
                addr: self.addr,
                reply: format!("{m:?}"),
            }),
        }
    }
}

/// Where a [`ClusterClient`] finds the writer.
#[derive(Clone, Debug)]
pub enum Discovery {
    /// Always this client address (no failover).
    Fixed(SocketAddr),
    /// The cluster directory: `writer.json` (kept current by the control plane), else
    /// `cluster.json`.
    Dir(PathBuf),
}

impl Discovery {
    /// The writer's client address now.
    pub fn writer(&self) -> Result<SocketAddr, ClientError> {
        match self {
            Discovery::Fixed(a) => Ok(*a),
            Discovery::Dir(d) => Ok(layout::current_client(d)?),
        }
    }
}

/// A client that follows the writer across failovers: on a connection failure or `NotWriter` it
/// looks the writer up again and retries, but only requests that certainly had no effect
/// ([`ClientError::definitely_not_applied`]) or reads; a write whose outcome is unknown is
/// returned as such, never retried.
pub struct ClusterClient {
    discovery: Discovery,
    timeout: Duration,
    conn: Option<Client>,
}

impl ClusterClient {
    /// A client of the cluster `discovery` names; each call gives up after `timeout`.
    pub fn new(discovery: Discovery, timeout: Duration) -> ClusterClient {
        ClusterClient {
            discovery,
            timeout,
            conn: None,
        }
    }

    /// Runs `f` on a connection to the current writer, retrying while `retry` says so and the
    /// call's time is not up.
    fn attempt<T>(
        &mut self,
        mut f: impl FnMut(&mut Client) -> Result<T, ClientError>,
        retry: impl Fn(&ClientError) -> bool,
    ) -> Result<T, ClientError> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(5);
        loop {
            let r = match self.conn.as_mut() {
                Some(c) => f(c),
                None => self
                    .discovery
                    .writer()
                    .and_then(|a| Client::connect(a, Duration::from_millis(500)))
                    .and_then(|mut c| {
                        c.timeout = self.timeout;
                        let r = f(&mut c);
                        self.conn = Some(c);
                        r
                    }),
            };
            match r {
                Ok(v) => return Ok(v),
                Err(e) => {
                    self.conn = None;
                    if !retry(&e) || Instant::now() + pause >= deadline {
                        return Err(e);
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
    }

    /// Writes `value` to `key` on the current writer. Retried only while the write certainly
    /// had no effect; any other error means its outcome is unknown.
    pub fn write(&mut self, key: Key, value: Value) -> Result<WriteAck, ClientError> {
        self.attempt(
            |c| c.write_acked(key, value),
            ClientError::definitely_not_applied,
        )
    }

    /// Reads `key` from the current writer, retrying on any error until the time is up (a read
    /// has no effect, so a retry cannot change the outcome of anything).
    pub fn read(&mut self, key: Key) -> Result<Version, ClientError> {
        self.attempt(|c| c.read(key), |_| true)
    }
}
