//! What the plugin must remember across its own restarts: Docker never
//! replays `CreateNetwork`, and `Join` needs what `CreateEndpoint` was told.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One Docker network, by Docker's network id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkEntry {
    /// The mvdp network's name.
    pub name: String,
    /// The endpoint kind for its containers: "veth" or "tap".
    pub kind: String,
    /// Its gateway, handed to Docker at every `Join`.
    pub gateway: String,
    /// Its IPv6 gateway on a dual-stack network (`--ipv6`), handed to
    /// Docker at every `Join`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway6: Option<String>,
    /// The `-o` options it was created with, as given.
    pub options: BTreeMap<String, String>,
}

/// One Docker endpoint, by Docker's endpoint id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointEntry {
    /// Docker's network id.
    pub network_id: String,
    /// The mvdp endpoint's name.
    pub name: String,
    /// Its IPv4 address (no prefix).
    pub ip: String,
    /// Its IPv6 address (no prefix), on a dual-stack network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip6: Option<String>,
    /// Its MAC.
    pub mac: String,
    /// The sandbox it joined, while joined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    /// When it joined (seconds since the epoch): the sandbox's namespace
    /// file appears only after `Join`, so a missing one means "gone" only
    /// once it was seen, or well after the join.
    #[serde(default)]
    pub joined: u64,
}

/// The plugin's state file's content.
#[derive(Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    /// Networks by Docker id.
    #[serde(default)]
    pub networks: BTreeMap<String, NetworkEntry>,
    /// Endpoints by Docker id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointEntry>,
}

/// The state and the file it lives in (`<state dir>/docker-plugin.json`).
#[derive(Debug)]
pub struct Store {
    path: Option<PathBuf>,
    /// The state; [`Store::save`] writes it.
    pub state: State,
}

impl Store {
    /// Reads `dir/docker-plugin.json`, or starts empty if there is none.
    pub fn open(dir: &Path) -> io::Result<Store> {
        let path = dir.join("docker-plugin.json");
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e),
        };
        Ok(Store {
            path: Some(path),
            state,
        })
    }

    /// A store that is never written (tests).
    pub fn in_memory() -> Store {
        Store {
            path: None,
            state: State::default(),
        }
    }

    /// Writes the state atomically (mode 0600).
    pub fn save(&self) -> io::Result<()> {
        let Some(path) = &self.path else {
            return Ok(());
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = serde_json::to_string_pretty(&self.state).expect("serializable");
        let tmp = path.with_extension("json.tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_a_reopen() {
        let dir = std::env::temp_dir().join(format!("mvdp-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir).unwrap();
        assert_eq!(s.state, State::default());
        s.state.networks.insert(
            "n1".into(),
            NetworkEntry {
                name: "dkn1".into(),
                kind: "veth".into(),
                gateway: "10.0.0.1".into(),
                gateway6: Some("fd00::1".into()),
                options: BTreeMap::from([("parent".into(), "eth0".into())]),
            },
        );
        s.save().unwrap();
        let again = Store::open(&dir).unwrap();
        assert_eq!(again.state, s.state);
        std::fs::write(dir.join("docker-plugin.json"), "{not json").unwrap();
        let e = Store::open(&dir).unwrap_err();
        assert!(e.to_string().contains("docker-plugin.json"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
