//! Where the members of a cluster live: the addresses every process needs, written by
//! `sixfold cluster` to `DIR/cluster.json` so that clients and restarted nodes can find them,
//! and which writer is current, written by the control plane to `DIR/writer.json` each time it
//! promotes one ([`WriterInfo`]), so that clients find the new writer.

use crate::host::{ACTORS, WRITER_ID};
use serde::{Deserialize, Serialize};
use sixfold_model::protocol::config::{az_of, Config, SEGMENTS};
use sixfold_model::protocol::msg::{Epoch, FIRST_EPOCH};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};

/// The file name of the layout inside a cluster directory.
pub const LAYOUT_FILE: &str = "cluster.json";
/// The file naming the current writer inside a cluster directory.
pub const WRITER_FILE: &str = "writer.json";
/// The file holding the last epoch handed out, so that a restarted cluster never reuses one.
pub const EPOCH_FILE: &str = "epoch";

/// A cluster's addresses and configuration.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Every actor's peer address, by actor id (six segments, then the writer).
    pub peers: Vec<SocketAddr>,
    /// The writer's client port.
    pub client: SocketAddr,
    /// The protocol configuration every member runs.
    pub config: Config,
    /// The control plane's heartbeat port (absent in layouts written before it existed).
    #[serde(default)]
    pub control: Option<SocketAddr>,
}

/// The writer the control plane appointed last: what clients connect to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriterInfo {
    /// Its epoch.
    pub epoch: Epoch,
    /// Its actor id.
    pub id: usize,
    /// Its peer address (segments answer it there).
    pub peer: SocketAddr,
    /// Its client port.
    pub client: SocketAddr,
    /// Its process id, when it is a process the cluster started.
    pub pid: Option<u32>,
}

/// Writes `text` to `path` so that a reader sees the old or the new content, never a mix, and
/// the new content survives a crash (temporary file, fsync, rename, fsync of the directory).
fn write_durably(path: &Path, text: &[u8]) -> Result<(), LayoutError> {
    let io = |source| LayoutError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(io)?;
    f.write_all(text).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(d) = path.parent() {
        std::fs::File::open(d)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

impl WriterInfo {
    /// Reads `DIR/writer.json`; `Ok(None)` if there is none.
    pub fn load(dir: &Path) -> Result<Option<WriterInfo>, LayoutError> {
        let path = dir.join(WRITER_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|source| LayoutError::Parse { path, source }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(LayoutError::Io { path, source }),
        }
    }

    /// Writes `DIR/writer.json` atomically and durably.
    pub fn save(&self, dir: &Path) -> Result<(), LayoutError> {
        let text = serde_json::to_string_pretty(self).expect("writer infos serialize");
        write_durably(&dir.join(WRITER_FILE), text.as_bytes())
    }
}

/// The last epoch handed out in cluster directory `dir` (0 if none yet).
pub fn last_epoch(dir: &Path) -> Result<Epoch, LayoutError> {
    let path = dir.join(EPOCH_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => t.trim().parse().map_err(|_| LayoutError::Io {
            path,
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not an epoch number"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FIRST_EPOCH - 1),
        Err(source) => Err(LayoutError::Io { path, source }),
    }
}

/// Records `epoch` as handed out, durably, before any writer runs in it.
pub fn store_epoch(dir: &Path, epoch: Epoch) -> Result<(), LayoutError> {
    write_durably(&dir.join(EPOCH_FILE), format!("{epoch}\n").as_bytes())
}

/// The client port of the cluster in `dir`: the current writer's from `writer.json`, else the
/// layout's.
pub fn current_client(dir: &Path) -> Result<SocketAddr, LayoutError> {
    match WriterInfo::load(dir)? {
        Some(w) => Ok(w.client),
        None => Layout::load(dir).map(|l| l.client),
    }
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

/// 127.0.0.1:`port`.
pub fn local_addr(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
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
    /// A layout on 127.0.0.1: nine consecutive ports from `base` (seven peers, the client
    /// port, the control plane), or free ports when `base` is 0.
    pub fn local(config: Config, base: u16) -> Result<Layout, LayoutError> {
        let ports: Vec<u16> = if base == 0 {
            free_ports(ACTORS + 2).map_err(|source| LayoutError::Io {
                path: "127.0.0.1:0".into(),
                source,
            })?
        } else {
            (0..=ACTORS as u16 + 1)
                .map(|i| base.saturating_add(i))
                .collect()
        };
        Ok(Layout {
            peers: ports[..ACTORS].iter().map(|p| local_addr(*p)).collect(),
            client: local_addr(ports[ACTORS]),
            config,
            control: Some(local_addr(ports[ACTORS + 1])),
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
