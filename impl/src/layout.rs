//! Where the members of a cluster live: the addresses every process needs, written by
//! `sixfold cluster` to `DIR/cluster.json` so that clients and restarted nodes can find them.

use crate::host::{ACTORS, WRITER_ID};
use serde::{Deserialize, Serialize};
use sixfold_model::config::{az_of, Config, SEGMENTS};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// The file name of the layout inside a cluster directory.
pub const LAYOUT_FILE: &str = "cluster.json";

/// A cluster's addresses and configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Every actor's peer address, by actor id (six segments, then the writer).
    pub peers: Vec<SocketAddr>,
    /// The writer's client port.
    pub client: SocketAddr,
    /// The protocol configuration every member runs.
    pub config: Config,
}

/// Why a layout could not be made, read or written.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// I/O on the layout file or while probing ports.
    #[error("{path}: {source}")]
    Io {
        /// The file (or port probe).
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a layout.
    #[error("{path}: not a cluster layout: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
}

/// `n` currently free ports on 127.0.0.1 (bound to port 0 and released; another process could
/// take one in between, which on a loopback test machine does not happen in practice).
pub fn free_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let ls: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
        .collect::<Result<_, _>>()?;
    ls.iter().map(|l| Ok(l.local_addr()?.port())).collect()
}

impl Layout {
    /// A layout on 127.0.0.1: consecutive ports from `base`, or free ports when `base` is 0.
    pub fn local(config: Config, base: u16) -> Result<Layout, LayoutError> {
        let ports: Vec<u16> = if base == 0 {
            free_ports(ACTORS + 1).map_err(|source| LayoutError::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?
        } else {
            (0..=ACTORS as u16)
                .map(|i| base.saturating_add(i))
                .collect()
        };
        let addr = |p: u16| SocketAddr::from((Ipv4Addr::LOCALHOST, p));
        Ok(Layout {
            peers: ports[..ACTORS].iter().map(|p| addr(*p)).collect(),
            client: addr(ports[ACTORS]),
            config,
        })
    }

    /// Reads `DIR/cluster.json`.
    pub fn load(dir: &Path) -> Result<Layout, LayoutError> {
        let path = dir.join(LAYOUT_FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| LayoutError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LayoutError::Parse { path, source })
    }

    /// Writes `DIR/cluster.json`.
    pub fn save(&self, dir: &Path) -> Result<(), LayoutError> {
        let path = dir.join(LAYOUT_FILE);
        let io = |source| LayoutError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let text = serde_json::to_string_pretty(self).expect("layouts serialize");
        std::fs::write(&path, text).map_err(io)
    }

    /// A human description of member `id`: role, AZ and address.
    pub fn describe(&self, id: usize) -> String {
        if id < SEGMENTS {
            format!(
                "segment {id}  az-{}  {}",
                (b'a' + az_of(id) as u8) as char,
                self.peers[id]
            )
        } else if id == WRITER_ID {
            format!(
                "writer     peers {}  clients {}",
                self.peers[id], self.client
            )
        } else {
            format!("actor {id}")
        }
    }

    /// The peer list in the `--peers` form: comma-separated, by actor id.
    pub fn peers_arg(&self) -> String {
        self.peers
            .iter()
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}
