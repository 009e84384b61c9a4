//! `ConfigError` and `Key`: every config error names the key it is about.

use std::fmt;
use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use super::Mode;
use crate::wire::MacAddr;

/// Where a value lives in the config.
///
/// [`Key::path`] is the canonical path (`endpoint[2].ip`), stable for programs
/// and tests; `Display` adds entry names for people (`endpoint[2] (web).ip`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    path: String,
    shown: String,
}

impl Key {
    /// A top-level key or section, such as `parent` or `network`.
    pub(crate) fn root(name: &str) -> Key {
        Key {
            path: name.to_string(),
            shown: name.to_string(),
        }
    }

    /// Entry `index` of an array of tables, labelled with its `name` if known.
    pub(crate) fn entry(section: &str, index: usize, name: Option<&str>) -> Key {
        let path = format!("{section}[{index}]");
        let shown = match name {
            Some(name) if !name.is_empty() => format!("{path} ({name})"),
            _ => path.clone(),
        };
        Key { path, shown }
    }

    /// A key inside this table.
    pub(crate) fn field(&self, name: &str) -> Key {
        let join = |base: &str| {
            if base.is_empty() {
                name.to_string()
            } else {
                format!("{base}.{name}")
            }
        };
        Key {
            path: join(&self.path),
            shown: join(&self.shown),
        }
    }

    /// Element `index` of this array.
    pub(crate) fn index(&self, index: usize) -> Key {
        Key {
            path: format!("{}[{index}]", self.path),
            shown: format!("{}[{index}]", self.shown),
        }
    }

    /// The canonical path, without entry names: `endpoint[2].ip`.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

/// A 1-based line and column in the config text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// Line number, from 1.
    pub line: usize,
    /// Column number in characters, from 1.
    pub column: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

/// Everything that can be wrong with a config. `Display` names the key first:
/// `endpoint[2] (web).mac: 01:00:5e:00:00:01 is a multicast address`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML, or a value of the wrong TOML type.
    #[error("{}", syntax_text(key.as_ref(), at.as_ref(), message))]
    Syntax {
        /// The key nearest to the error, when one could be found.
        key: Option<Key>,
        /// Where in the text.
        at: Option<Location>,
        /// The TOML parser's message.
        message: String,
    },
    /// A key mvdp does not know (a typo, or a key in the wrong section).
    #[error("{key}: unknown key{}{}", at_text(at.as_ref()), expected_text(expected))]
    UnknownKey {
        /// The unknown key itself.
        key: Key,
        /// Where in the text.
        at: Option<Location>,
        /// The keys allowed there, as the parser lists them.
        expected: String,
    },
    /// A required key or section is absent.
    #[error("{key}: required key is missing")]
    MissingKey {
        /// The missing key.
        key: Key,
    },
    /// A value that does not parse as what the key holds.
    #[error("{key}: {value:?} is not {expected}")]
    InvalidValue {
        /// The key.
        key: Key,
        /// The value as written.
        value: String,
        /// What was expected, e.g. "an IPv4 address".
        expected: &'static str,
    },
    /// A well-formed value that breaks a rule of its own (list empty, host bits set, ...).
    #[error("{key}: {reason}")]
    Invalid {
        /// The key.
        key: Key,
        /// What is wrong, with the value.
        reason: String,
    },
    /// A number outside its allowed range.
    #[error("{key}: {value} is out of range (expected {expected})")]
    OutOfRange {
        /// The key.
        key: Key,
        /// The number as written.
        value: i64,
        /// The allowed range, in words.
        expected: &'static str,
    },
    /// A network interface name the kernel would refuse.
    #[error("{key}: {name:?} is not a valid interface name ({reason})")]
    InvalidIfname {
        /// The key.
        key: Key,
        /// The name as written.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// A network or endpoint name that is empty or has unusable characters.
    #[error("{key}: {name:?} is not a valid name ({reason})")]
    InvalidName {
        /// The key.
        key: Key,
        /// The name as written.
        name: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// Two networks with one name.
    #[error("{key}: network {name:?} is already defined by network[{first}]")]
    DuplicateNetwork {
        /// The later network's name key.
        key: Key,
        /// The name.
        name: String,
        /// Index of the first network with that name.
        first: usize,
    },
    /// Two endpoints with one name.
    #[error("{key}: endpoint {name:?} is already defined by endpoint[{first}]")]
    DuplicateEndpoint {
        /// The later endpoint's name key.
        key: Key,
        /// The name.
        name: String,
        /// Index of the first endpoint with that name.
        first: usize,
    },
    /// Two networks on the same VLAN of the parent (or both untagged).
    #[error("{key}: {} is already used by {other}", vlan_text(*vlan))]
    DuplicateVlan {
        /// The later network's `vlan` key.
        key: Key,
        /// The VLAN id, `None` for untagged.
        vlan: Option<u16>,
        /// The network that has it first.
        other: String,
    },
    /// An endpoint names a network that is not defined.
    #[error("{key}: no network is named {network:?} (defined: {defined})")]
    UnknownNetwork {
        /// The endpoint's `network` key.
        key: Key,
        /// The name as written.
        network: String,
        /// The names that exist, comma-separated.
        defined: String,
    },
    /// Two endpoints with one MAC address.
    #[error("{key}: {mac} is already used by {other}")]
    DuplicateMac {
        /// The later endpoint's `mac` key.
        key: Key,
        /// The address.
        mac: MacAddr,
        /// Who has it first.
        other: String,
    },
    /// An IP address already taken by an endpoint, the gateway, an aux address,
    /// the host shim, or the subnet's network or broadcast address.
    #[error("{key}: {ip} is already used by {other}")]
    DuplicateIp {
        /// The key of the later claim.
        key: Key,
        /// The address.
        ip: IpAddr,
        /// Who or what has it first.
        other: String,
    },
    /// An address outside its network's subnet.
    #[error("{key}: {ip} is outside subnet {subnet}")]
    OutsideSubnet {
        /// The key.
        key: Key,
        /// The address.
        ip: IpAddr,
        /// The subnet it should be in.
        subnet: String,
    },
    /// An `ip_range` that is not inside its subnet.
    #[error("{key}: {range} is not inside subnet {subnet}")]
    RangeOutsideSubnet {
        /// The `ip_range` key.
        key: Key,
        /// The range.
        range: String,
        /// The subnet.
        subnet: String,
    },
    /// A MAC address no endpoint may have (multicast/broadcast or all-zero).
    #[error("{key}: {mac} is {reason}")]
    BadMac {
        /// The key.
        key: Key,
        /// The address.
        mac: MacAddr,
        /// "a multicast address" or "the zero address".
        reason: &'static str,
    },
    /// An endpoint must set exactly one of `netns` and `netns_path`.
    #[error("{key}: set exactly one of `netns` and `netns_path` ({})", if *both { "both are set" } else { "neither is set" })]
    NetnsChoice {
        /// The endpoint's `netns` key.
        key: Key,
        /// True if both were set, false if neither.
        both: bool,
    },
    /// Two endpoints claim one interface name in one network namespace.
    #[error("{key}: {ifname:?} is already used in {netns} by {other}")]
    DuplicateIfname {
        /// The later endpoint's `ifname` key.
        key: Key,
        /// The interface name.
        ifname: String,
        /// The namespace, as written.
        netns: String,
        /// The endpoint that has it first.
        other: String,
    },
    /// A second endpoint on a `passthru` network, which allows one.
    #[error("{key}: network {network:?} is in passthru mode and already has endpoint {first:?}; passthru allows one endpoint")]
    PassthruTaken {
        /// The later endpoint's `network` key.
        key: Key,
        /// The network.
        network: String,
        /// The endpoint already on it.
        first: String,
    },
    /// `allowed_sources` on a network that is not in `source` mode.
    #[error("{key}: allowed only on a network in source mode, and network {network:?} is in {mode} mode")]
    SourcesNotAllowed {
        /// The endpoint's `allowed_sources` key.
        key: Key,
        /// The network.
        network: String,
        /// Its mode.
        mode: Mode,
    },
    /// No address left to allocate for an endpoint without `ip`.
    #[error("{key}: no free address left in {pool} (network {network:?})")]
    PoolExhausted {
        /// The endpoint's `ip` key.
        key: Key,
        /// The pool searched: `ip_range`, or the subnet.
        pool: String,
        /// The network.
        network: String,
    },
    /// An endpoint's network namespace does not exist on this machine.
    #[error("{key}: network namespace {} does not exist", path.display())]
    NetnsMissing {
        /// The endpoint's `netns` or `netns_path` key.
        key: Key,
        /// The path looked for.
        path: PathBuf,
    },
}

impl ConfigError {
    /// The canonical path of the offending key (`endpoint[2].ip`), if there is one.
    pub fn key(&self) -> Option<&str> {
        use ConfigError::*;
        let key = match self {
            Read { .. } => return None,
            Syntax { key, .. } => return key.as_ref().map(Key::path),
            UnknownKey { key, .. }
            | MissingKey { key }
            | InvalidValue { key, .. }
            | Invalid { key, .. }
            | OutOfRange { key, .. }
            | InvalidIfname { key, .. }
            | InvalidName { key, .. }
            | DuplicateNetwork { key, .. }
            | DuplicateEndpoint { key, .. }
            | DuplicateVlan { key, .. }
            | UnknownNetwork { key, .. }
            | DuplicateMac { key, .. }
            | DuplicateIp { key, .. }
            | OutsideSubnet { key, .. }
            | RangeOutsideSubnet { key, .. }
            | BadMac { key, .. }
            | NetnsChoice { key, .. }
            | DuplicateIfname { key, .. }
            | PassthruTaken { key, .. }
            | SourcesNotAllowed { key, .. }
            | PoolExhausted { key, .. }
            | NetnsMissing { key, .. } => key,
        };
        Some(key.path())
    }

    /// Where in the text the error is, for TOML-level errors.
    pub fn location(&self) -> Option<Location> {
        match self {
            ConfigError::Syntax { at, .. } | ConfigError::UnknownKey { at, .. } => *at,
            _ => None,
        }
    }

    /// Turns a toml deserialization error into a `ConfigError` naming the key,
    /// found by matching the error's span against the document's spans.
    pub(crate) fn from_toml(text: &str, err: &toml::de::Error) -> ConfigError {
        let span = err.span();
        let at = span.as_ref().map(|s| location(text, s.start));
        let message = err.message().trim().to_string();
        let (tree, _) = DeTable::parse_recoverable(text);
        let locate = |span: &Range<usize>| {
            let mut found = None;
            find_key(tree.get_ref(), span, &Key::root(""), &mut found);
            found
        };

        if let Some(rest) = message.strip_prefix("unknown field `") {
            let (field, expected) = rest.split_once('`').unwrap_or((rest, ""));
            let key = span
                .as_ref()
                .and_then(locate)
                .unwrap_or_else(|| Key::root(field));
            let expected = expected.trim_start_matches(',').trim().to_string();
            return ConfigError::UnknownKey { key, at, expected };
        }
        if let Some(rest) = message.strip_prefix("missing field `") {
            let field = rest.split('`').next().unwrap_or(rest);
            // The span is that of the table's header, or empty for the root table.
            let table = span.as_ref().filter(|s| !s.is_empty()).and_then(locate);
            let key = match table {
                Some(table) => table.field(field),
                None => Key::root(field),
            };
            return ConfigError::MissingKey { key };
        }
        let key = span
            .as_ref()
            .and_then(|s| locate(s).or_else(|| key_from_lines(text, s.start)))
            .filter(|k| !k.path.is_empty());
        ConfigError::Syntax { key, at, message }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn location(text: &str, offset: usize) -> Location {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Location {
        line: before.matches('\n').count() + 1,
        column: before[line_start..].chars().count() + 1,
    }
}

/// Best effort for text the parser could not build a tree for (a duplicate
/// key, say): the `key =` on the error's line, under the last table header.
fn key_from_lines(text: &str, offset: usize) -> Option<Key> {
    let mut table: Option<Key> = None;
    let mut seen: Vec<(String, usize)> = Vec::new();
    let mut start = 0;
    for line in text.split_inclusive('\n') {
        let end = start + line.len();
        let code = line.split('#').next().unwrap_or("").trim();
        let header = code
            .strip_prefix("[[")
            .and_then(|h| h.strip_suffix("]]"))
            .map(|h| (h.trim(), true))
            .or_else(|| {
                code.strip_prefix('[')
                    .and_then(|h| h.strip_suffix(']'))
                    .map(|h| (h.trim(), false))
            })
            .filter(|(h, _)| !h.is_empty() && !h.contains([',', '"', '\'', '=']));
        if let Some((name, array)) = header {
            table = Some(if array {
                let n = match seen.iter_mut().find(|(s, _)| s == name) {
                    Some((_, n)) => {
                        *n += 1;
                        *n
                    }
                    None => {
                        seen.push((name.to_string(), 0));
                        0
                    }
                };
                Key::entry(name, n, None)
            } else {
                Key::root(name)
            });
        }
        if (start..end).contains(&offset) || end == text.len() && offset >= end {
            if header.is_some() {
                return table;
            }
            let (name, _) = code.split_once('=')?;
            let name = name.trim().trim_matches(['"', '\'']);
            if name.is_empty() {
                return None;
            }
            return Some(match table {
                Some(t) => t.field(name),
                None => Key::root(name),
            });
        }
        start = end;
    }
    None
}

/// True when `inner` (an error's span) falls inside `outer` (a node's span).
fn within(inner: &Range<usize>, outer: &Range<usize>) -> bool {
    if inner.is_empty() {
        outer.start <= inner.start && inner.start < outer.end
    } else {
        outer.start <= inner.start && inner.end <= outer.end
    }
}

/// Finds the deepest key whose key or value span holds `span`. Table spans
/// cover only their header, so children are always searched.
fn find_key(table: &DeTable<'_>, span: &Range<usize>, base: &Key, found: &mut Option<Key>) -> bool {
    for (name, value) in table.iter() {
        let key = base.field(name.get_ref());
        if within(span, &name.span()) {
            *found = Some(key);
            return true;
        }
        if find_in_value(value.get_ref(), value.span(), span, key, found) {
            return true;
        }
    }
    false
}

fn find_in_value(
    value: &DeValue<'_>,
    value_span: Range<usize>,
    span: &Range<usize>,
    key: Key,
    found: &mut Option<Key>,
) -> bool {
    match value {
        DeValue::Table(t) if find_key(t, span, &key, found) => return true,
        DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let item_key = match item.get_ref() {
                    DeValue::Table(t) => {
                        // Label array-of-tables entries with their name, as validation does.
                        let name = t.get("name").and_then(|v| v.get_ref().as_str());
                        let mut k = key.index(i);
                        if let Some(n) = name.filter(|n| !n.is_empty()) {
                            k.shown = format!("{} ({n})", k.shown);
                        }
                        k
                    }
                    _ => key.index(i),
                };
                if find_in_value(item.get_ref(), item.span(), span, item_key, found) {
                    return true;
                }
            }
        }
        _ => {}
    }
    if within(span, &value_span) {
        *found = Some(key);
        return true;
    }
    false
}

fn syntax_text(key: Option<&Key>, at: Option<&Location>, message: &str) -> String {
    match (key, at) {
        (Some(key), Some(at)) => format!("{key}: {message} ({at})"),
        (Some(key), None) => format!("{key}: {message}"),
        (None, Some(at)) => format!("{at}: {message}"),
        (None, None) => message.to_string(),
    }
}

fn at_text(at: Option<&Location>) -> String {
    at.map(|at| format!(" ({at})")).unwrap_or_default()
}

fn expected_text(expected: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!("; {expected}")
    }
}

fn vlan_text(vlan: Option<u16>) -> String {
    match vlan {
        Some(v) => format!("VLAN {v}"),
        None => "the untagged LAN".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_and_names() {
        let k = Key::entry("endpoint", 2, Some("web")).field("ip");
        assert_eq!(k.path(), "endpoint[2].ip");
        assert_eq!(k.to_string(), "endpoint[2] (web).ip");
        let a = Key::entry("network", 0, None)
            .field("aux_addresses")
            .index(1);
        assert_eq!(a.path(), "network[0].aux_addresses[1]");
    }

    #[test]
    fn keys_from_lines() {
        let text = "[parent]\ninterface = 1\n[[network]]\n[[network]]\nname = 2 # x\n";
        let at = |needle: &str| key_from_lines(text, text.find(needle).unwrap()).map(|k| k.path);
        assert_eq!(at("interface").as_deref(), Some("parent.interface"));
        assert_eq!(at("name").as_deref(), Some("network[1].name"));
        assert_eq!(at("[parent]").as_deref(), Some("parent"));
    }

    #[test]
    fn locations_are_one_based() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(location(text, 0), Location { line: 1, column: 1 });
        assert_eq!(location(text, 6), Location { line: 2, column: 1 });
        assert_eq!(location(text, 10), Location { line: 2, column: 4 });
    }
}
