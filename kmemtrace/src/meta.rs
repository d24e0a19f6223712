// SPDX-License-Identifier: GPL-2.0-only
//! `meta.json`, the metadata the guest collector writes beside the `cpu<N>.out` files
//! (`docs/contracts.md` §1).

use crate::abi::ByteOrder;
use serde::{Deserialize, Serialize};

/// Contents of `meta.json`. Unknown keys are kept in `extra` so a rewrite (e.g. `convert`)
/// preserves them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Meta {
    /// Version of the metadata format (1).
    #[serde(default = "one")]
    pub kmemtrace_meta: u32,
    /// Name and version of the program that wrote the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<String>,
    /// kmemtrace ABI version read from debugfs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abi_version: Option<u32>,
    /// The traced CPU's byte order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub byte_order: Option<ByteOrder>,
    /// `uname -m` of the traced machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    /// `uname -r` of the traced machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_release: Option<String>,
    /// The slab allocator (debugfs `kmemtrace/allocator`: `slab`, `slub`, `slub-tiny`, `slob`),
    /// which decides which frees are errors. Kept as text: a name this version does not know is
    /// reported, not rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocator: Option<String>,
    /// Page size in bytes (used to turn page allocations into orders; 4096 if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<u64>,
    /// `kmemtrace/total_overruns` after the last drain: bytes the kernel dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_overruns: Option<u64>,
    /// One entry per CPU file.
    #[serde(default)]
    pub cpus: Vec<MetaCpu>,
    /// Start of tracing, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_unix_ms: Option<u64>,
    /// End of tracing, ms since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_unix_ms: Option<u64>,
    /// Keys this version does not know, kept verbatim.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

fn one() -> u32 {
    1
}

/// One CPU of `meta.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaCpu {
    /// CPU number.
    pub cpu: u32,
    /// NUMA node of the CPU; -1 or absent when the kernel does not say (then node 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<i32>,
    /// File name of the CPU's trace, relative to the trace directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Bytes written to `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Bytes of records the kernel logged in this CPU's relay buffer since the channel was opened
    /// (debugfs `kmemtrace/cpu_bytes`, read after the last drain): what `file` must hold exactly.
    /// Absent in traces from collectors before it; `check` then compares nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logged_bytes: Option<u64>,
    /// Bytes of records the kernel refused on this CPU because its buffer was full (debugfs
    /// `kmemtrace/cpu_bytes`): this CPU's share of `total_overruns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dropped_bytes: Option<u64>,
}

impl Meta {
    /// Parse `meta.json` text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// Pretty JSON text (with a final newline).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).expect("Meta serialises");
        s.push('\n');
        s
    }

    /// NUMA node of `cpu`: the metadata's node when it is 0 or more; node 0 when the metadata does
    /// not list the CPU, lists no node, or says -1 (a machine without NUMA information).
    pub fn node_of(&self, cpu: u32) -> i32 {
        node_of(Some(self), cpu)
    }
}

/// NUMA node of `cpu` under optional metadata (see [`Meta::node_of`]).
pub fn node_of(meta: Option<&Meta>, cpu: u32) -> i32 {
    meta.and_then(|m| m.cpus.iter().find(|c| c.cpu == cpu))
        .and_then(|c| c.node)
        .filter(|n| *n >= 0)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{
      "kmemtrace_meta": 1, "collector": "kmemtraced 0.1.0", "abi_version": 1,
      "byte_order": "little", "machine": "x86_64", "kernel_release": "6.12.57",
      "page_size": 4096, "total_overruns": 0,
      "cpus": [ { "cpu": 0, "node": 0, "file": "cpu0.out", "bytes": 123456 },
                { "cpu": 1, "node": -1, "file": "cpu1.out", "bytes": 654321 } ],
      "start_unix_ms": 1764172800000, "stop_unix_ms": 1764172801234, "future_key": [1]
    }"#;

    #[test]
    fn contract_example_parses_and_keeps_unknown_keys() {
        let m = Meta::from_json(EXAMPLE).unwrap();
        assert_eq!(m.byte_order, Some(ByteOrder::Little));
        assert_eq!(m.total_overruns, Some(0));
        assert_eq!(m.cpus[1].bytes, Some(654321));
        assert!(m.extra.contains_key("future_key"));
        assert_eq!(
            (m.cpus[0].logged_bytes, m.cpus[0].dropped_bytes),
            (None, None)
        );
        let again = Meta::from_json(&m.to_json()).unwrap();
        assert_eq!(again, m);
    }

    /// Found by the `meta` fuzz target: serde_json's default float parsing is not correctly
    /// rounded, so a number in an unknown key (here an integer too big for u64, read as f64)
    /// changed when `convert` rewrote meta.json.
    #[test]
    fn meta_json_number_in_an_unknown_key_survives_a_rewrite() {
        for text in [
            r#"{"":700000000000000002801234}"#,
            r#"{"future": 1.7641700000000000000000001e136}"#,
        ] {
            let m = Meta::from_json(text).unwrap();
            assert_eq!(Meta::from_json(&m.to_json()).unwrap(), m, "{text}");
        }
    }

    /// A collector that reads `kmemtrace/cpu_bytes` writes each CPU's logged and dropped bytes;
    /// they survive a rewrite, and an entry without them gains no keys.
    #[test]
    fn logged_and_dropped_bytes_round_trip() {
        let text = r#"{ "cpus": [
            { "cpu": 0, "node": 0, "file": "cpu0.out", "bytes": 123456,
              "logged_bytes": 123456, "dropped_bytes": 0 },
            { "cpu": 1, "file": "cpu1.out", "bytes": 1049096,
              "logged_bytes": 524808, "dropped_bytes": 4096 },
            { "cpu": 2, "file": "cpu2.out", "bytes": 48 } ] }"#;
        let m = Meta::from_json(text).unwrap();
        assert_eq!(m.cpus[0].logged_bytes, Some(123456));
        assert_eq!(m.cpus[0].dropped_bytes, Some(0));
        assert_eq!(
            (m.cpus[1].logged_bytes, m.cpus[1].dropped_bytes),
            (Some(524808), Some(4096))
        );
        assert_eq!(Meta::from_json(&m.to_json()).unwrap(), m);
        let json = m.to_json();
        assert_eq!(json.matches("logged_bytes").count(), 2, "{json}");
        assert_eq!(json.matches("dropped_bytes").count(), 2, "{json}");
    }

    #[test]
    fn cpus_without_node_information_are_on_node_0() {
        let m = Meta::from_json(EXAMPLE).unwrap();
        assert_eq!(m.node_of(0), 0);
        assert_eq!(m.node_of(1), 0);
        assert_eq!(m.node_of(7), 0);
        assert_eq!(node_of(None, 3), 0);
    }
}
