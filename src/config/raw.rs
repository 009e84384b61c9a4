//! The config as written: serde structs that only check TOML shape and key
//! names. Values stay strings and i64 here so that `validate` can report a bad
//! value under its exact key.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    pub parent: RawParent,
    #[serde(default)]
    pub dataplane: RawDataplane,
    #[serde(default)]
    pub workers: RawWorkers,
    #[serde(default)]
    pub metrics: RawMetrics,
    #[serde(default)]
    pub control: RawControl,
    #[serde(default)]
    pub network: Vec<RawNetwork>,
    #[serde(default)]
    pub endpoint: Vec<RawEndpoint>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawParent {
    pub interface: String,
    pub xdp_mode: Option<String>,
    pub bind: Option<String>,
    pub queues: Option<WordOrList>,
    pub frame_size: Option<i64>,
    pub umem_frames: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDataplane {
    pub fast_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkers {
    pub cores: Option<WordOrList>,
    pub batch: Option<i64>,
    pub poll: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawMetrics {
    pub listen: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawControl {
    pub socket: Option<String>,
    pub keep_endpoints_on_exit: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNetwork {
    pub name: String,
    pub mode: Option<String>,
    pub vlan: Option<i64>,
    pub subnet: String,
    pub gateway: Option<String>,
    pub ip_range: Option<String>,
    #[serde(default)]
    pub aux_addresses: Vec<String>,
    pub host_shim: Option<String>,
    pub subnet6: Option<String>,
    pub gateway6: Option<String>,
    pub ip_range6: Option<String>,
    pub host_shim6: Option<String>,
    pub bcast_queue_len: Option<i64>,
    pub allow_inner_tags: Option<bool>,
    pub anti_spoof: Option<String>,
    pub ipam: Option<String>,
    pub mtu: Option<i64>,
    pub multicast: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawEndpoint {
    pub name: String,
    pub network: String,
    pub kind: Option<String>,
    pub netns: Option<String>,
    pub netns_path: Option<String>,
    pub ifname: Option<String>,
    pub ip: Option<String>,
    pub ip6: Option<String>,
    pub mac: Option<String>,
    pub allowed_sources: Option<Vec<String>>,
    pub rate_limit: Option<RawRateLimit>,
    pub default_route: Option<bool>,
    pub handoff: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub pps: Option<i64>,
    pub bytes_per_sec: Option<i64>,
}

/// A keyword such as `"all"` / `"auto"`, or a list of integers.
#[derive(Debug)]
pub(super) enum WordOrList {
    Word(String),
    List(Vec<i64>),
}

impl<'de> Deserialize<'de> for WordOrList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = WordOrList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a keyword string or a list of integers")
            }

            fn visit_str<E: de::Error>(self, s: &str) -> Result<WordOrList, E> {
                Ok(WordOrList::Word(s.to_string()))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WordOrList, A::Error> {
                let mut out = Vec::new();
                while let Some(n) = seq.next_element::<i64>()? {
                    out.push(n);
                }
                Ok(WordOrList::List(out))
            }
        }
        d.deserialize_any(V)
    }
}
