//! A client of a running cluster: one TCP connection to the writer's client port.
//!
//! Requests carry the client's own request numbers. There is no resend on this link: a request
//! that gets no answer within the timeout is reported as [`ClientError::Timeout`], whose outcome
//! is unknown (the write may or may not have committed), as a linearizability checker needs.

use crate::wire::{self, Frame};
use sixfold_model::msg::{Key, Lsn, Msg, ReqId, Value, Version};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect, or the connection failed.
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

impl Client {
    /// Connects to the writer's client port at `addr`; calls give up after `timeout`.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        let io = |source| ClientError::Io { addr, source };
        let stream = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
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
        let req = self.req();
        match self.call(Msg::Write { req, key, value })? {
            Msg::WriteOk { lsn, .. } => Ok(lsn),
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
