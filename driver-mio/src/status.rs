//! The engine's status as documented JSON (`ocala status --json`) and as a readable table.
//!
//! JSON shape:
//! ```json
//! { "handles":  [ { "name": "bob.udp", "v4": "198.18.0.3", "v6": "fd6f:6361:6c61::3", "path": "up (...)" } ],
//!   "paths":    [ { "name": "bob.udp", "role": "initiator", "state": "up", "protection": "encrypt",
//!                   "cipher": "aes-256-gcm" (or null), "partial_checksums": true,
//!                   "label": 1048576, "peer_label": 2097152 } ],
//!   "tunnels":  [ { "overlay": "udp", "remote": "bob at 10.0.0.2:4789", "paths": 1 } ],
//!   "relayed":  0,
//!   "middlebox": "5 control, 25 readable (icmp x15, udp/7 x10), 10 opened, 15 sealed, 10 dropped",  (or null)
//!   "drops":    [ { "reason": "unknown label", "count": 3 } ],
//!   "counters": { "tun_in": 10, "tun_out": 9, "datagrams_in": 12, "datagrams_out": 12, "relayed": 0, "dns_answered": 2,
//!                 "cookie_replies": 0, "rekeys": 0, "ecn_marked": 0, "setups_timed": 1 },
//!   "overlays": [ { "overlay": "udp", "datagrams_in": 12, "bytes_in": 1460, "datagrams_out": 12, "bytes_out": 1502 } ],
//!   "datapath": { "tun_offload": true, "tun_uso": true, "tun_segments": 45 (or null), "udp_gso_segments": 64, "udp_gro": true,
//!                 "threads": 1, "cpus": [] (or the engine thread's CPU, then the writer's), "tun_reads": 4, "tun_packets_in": 90, "tun_writes": 3, "tun_joined": 88,
//!                 "tun_in_place": 85, "bad_tun_reads": 0,
//!                 "udp_receives": 2, "udp_datagrams_in": 91, "udp_sends": 3, "udp_datagrams_out": 92,
//!                 "udp_send_errors": 0, "batches_handed_off": 0 } }
//! ```

use ocala_engine::Status;
use serde_json::{json, Value};

/// The JSON form.
pub fn to_json(s: &Status) -> Value {
    json!({
        "handles": s.handles.iter().map(|h| json!({
            "name": h.name, "v4": h.v4.to_string(), "v6": h.v6.to_string(), "path": h.path,
        })).collect::<Vec<_>>(),
        "paths": s.paths.iter().map(|p| json!({
            "name": p.name, "role": p.role, "state": p.state, "protection": p.protection,
            "cipher": p.cipher, "partial_checksums": p.partial_checksums,
            "label": p.label, "peer_label": p.peer_label,
        })).collect::<Vec<_>>(),
        "tunnels": s.tunnels.iter().map(|t| json!({
            "overlay": t.overlay, "remote": t.remote, "paths": t.paths,
        })).collect::<Vec<_>>(),
        "relayed": s.relayed,
        "middlebox": s.middlebox.as_ref().map(|m| m.to_string()),
        "drops": s.drops.iter().map(|(r, n)| json!({ "reason": r.to_string(), "count": n })).collect::<Vec<_>>(),
        "counters": {
            "tun_in": s.counters.tun_in,
            "tun_out": s.counters.tun_out,
            "datagrams_in": s.counters.datagrams_in,
            "datagrams_out": s.counters.datagrams_out,
            "relayed": s.counters.relayed,
            "dns_answered": s.counters.dns_answered,
            "cookie_replies": s.counters.cookie_replies,
            "rekeys": s.counters.rekeys,
            "ecn_marked": s.counters.ecn_marked,
            "setups_timed": s.counters.setup_latency.count,
        },
        "overlays": s.overlays.iter().map(|o| json!({
            "overlay": o.overlay, "datagrams_in": o.datagrams_in, "bytes_in": o.bytes_in,
            "datagrams_out": o.datagrams_out, "bytes_out": o.bytes_out,
        })).collect::<Vec<_>>(),
    })
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The table form, from the JSON (what the CLI receives).
pub fn to_table(v: &Value) -> String {
    let mut out = String::new();
    let rows = |key: &str| {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    out.push_str("HANDLES\n");
    for h in rows("handles") {
        out.push_str(&format!(
            "  {:<32} {:<16} {:<28} {}\n",
            text(&h["name"]),
            text(&h["v4"]),
            text(&h["v6"]),
            text(&h["path"])
        ));
    }
    out.push_str("PATHS\n");
    for p in rows("paths") {
        let partial = p["partial_checksums"] == true;
        let protection = match (p["cipher"].as_str(), partial) {
            (Some(c), true) => format!("{} ({c}, partial checksums)", text(&p["protection"])),
            (Some(c), false) => format!("{} ({c})", text(&p["protection"])),
            (None, true) => format!("{} (partial checksums)", text(&p["protection"])),
            (None, false) => text(&p["protection"]),
        };
        out.push_str(&format!(
            "  {:<32} {:<18} {:<8} {}\n",
            text(&p["name"]),
            text(&p["role"]),
            protection,
            text(&p["state"])
        ));
    }
    out.push_str("TUNNELS\n");
    for t in rows("tunnels") {
        out.push_str(&format!(
            "  {:<10} {:<40} {} path(s)\n",
            text(&t["overlay"]),
            text(&t["remote"]),
            text(&t["paths"])
        ));
    }
    out.push_str(&format!("RELAYED PATHS  {}\n", text(&v["relayed"])));
    if let Some(m) = v.get("middlebox").and_then(Value::as_str) {
        out.push_str(&format!("MIDDLEBOX      {m}\n"));
    }
    out.push_str("DROPS\n");
    for d in rows("drops") {
        out.push_str(&format!(
            "  {:>8}  {}\n",
            text(&d["count"]),
            text(&d["reason"])
        ));
    }
    if let Some(d) = v.get("datapath").filter(|d| d.is_object()) {
        let on = |k: &str| if d[k] == true { "on" } else { "off" };
        let cpus: Vec<u64> = d["cpus"]
            .as_array()
            .map_or(Vec::new(), |a| a.iter().filter_map(Value::as_u64).collect());
        let segments = match d["tun_segments"].as_u64() {
            Some(n) => format!(" ({n} segments at most)"),
            None => String::new(),
        };
        out.push_str(&format!(
            "DATAPATH       TUN offloads {}{segments}, TUN USO {}, UDP GSO {} segment(s), UDP GRO {}, {}\n",
            on("tun_offload"),
            on("tun_uso"),
            text(&d["udp_gso_segments"]),
            on("udp_gro"),
            crate::datapath::placement(d["threads"].as_u64().unwrap_or(0), &cpus),
        ));
        out.push_str(&format!(
            "  TUN   {} reads -> {} packets, {} bad; {} writes carrying {} joined packets, {} written from where they arrived\n",
            text(&d["tun_reads"]),
            text(&d["tun_packets_in"]),
            text(&d["bad_tun_reads"]),
            text(&d["tun_writes"]),
            text(&d["tun_joined"]),
            text(&d["tun_in_place"]),
        ));
        out.push_str(&format!(
            "  UDP   {} receives -> {} datagrams; {} sends <- {} datagrams, {} failed\n",
            text(&d["udp_receives"]),
            text(&d["udp_datagrams_in"]),
            text(&d["udp_sends"]),
            text(&d["udp_datagrams_out"]),
            text(&d["udp_send_errors"]),
        ));
        if d["threads"] == 2 {
            out.push_str(&format!(
                "  WRITER {} batches written by the writer thread\n",
                text(&d["batches_handed_off"]),
            ));
        }
    }
    for o in rows("overlays") {
        out.push_str(&format!(
            "OVERLAY {:<7}in {} datagrams ({} B), out {} datagrams ({} B)\n",
            text(&o["overlay"]),
            text(&o["datagrams_in"]),
            text(&o["bytes_in"]),
            text(&o["datagrams_out"]),
            text(&o["bytes_out"]),
        ));
    }
    out.push_str("COUNTERS\n");
    if let Some(c) = v.get("counters").and_then(Value::as_object) {
        for (k, n) in c {
            out.push_str(&format!("  {:<14} {}\n", k, text(n)));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ocala_engine::middlebox::FilterStats;
    use ocala_engine::{DropReason, HandleStatus, PathStatus};

    #[test]
    fn json_and_table_carry_the_same_facts() {
        let s = Status {
            handles: vec![HandleStatus {
                name: "bob.udp".into(),
                v4: "198.18.0.3".parse().unwrap(),
                v6: "fd6f:6361:6c61::3".parse().unwrap(),
                path: "up".into(),
            }],
            paths: vec![PathStatus {
                name: "bob.udp".into(),
                role: "initiator".into(),
                state: "up".into(),
                protection: "encrypt".into(),
                cipher: Some("aes-256-gcm"),
                partial_checksums: true,
                label: 0x10_0000,
                peer_label: 0x20_0000,
            }],
            drops: vec![(DropReason::UnknownLabel, 3)],
            middlebox: Some(FilterStats {
                control: 2,
                readable: 4,
                opened: 3,
                dropped: 1,
                by_port: [((17, 7), 4)].into(),
                ..FilterStats::default()
            }),
            ..Status::default()
        };
        let v = to_json(&s);
        assert_eq!(v["handles"][0]["v4"], "198.18.0.3");
        assert_eq!(v["drops"][0]["reason"], "unknown label");
        assert_eq!(v["drops"][0]["count"], 3);
        assert_eq!(v["paths"][0]["protection"], "encrypt");
        assert_eq!(v["paths"][0]["cipher"], "aes-256-gcm");
        let t = to_table(&v);
        assert_eq!(v["paths"][0]["partial_checksums"], true);
        assert!(
            t.contains("encrypt (aes-256-gcm, partial checksums)"),
            "{t}"
        );
        assert!(
            t.contains("bob.udp") && t.contains("198.18.0.3") && t.contains("unknown label"),
            "{t}"
        );
        let mb = "2 control, 4 readable (udp/7 x4), 3 opened, 0 sealed, 1 dropped";
        assert_eq!(v["middlebox"], mb);
        assert!(t.contains(&format!("MIDDLEBOX      {mb}")), "{t}");
        assert!(to_table(&to_json(&Status::default()))
            .find("MIDDLEBOX")
            .is_none());
        let mut v = to_json(&Status::default());
        v["datapath"] = crate::datapath::DatapathStats {
            tun_offload: true,
            tun_uso: true,
            tun_segments: Some(45),
            udp_gso: 64,
            threads: 2,
            cpus: [Some(1), Some(0)],
            handed_off: 7,
            tun_reads: 4,
            tun_packets_in: 90,
            tun_in_place: 85,
            ..Default::default()
        }
        .to_json();
        let t = to_table(&v);
        assert!(
            t.contains("TUN offloads on (45 segments at most), TUN USO on, UDP GSO 64 segment(s), UDP GRO off, 2 thread(s) on CPUs 1, 0")
                && t.contains("4 reads -> 90 packets")
                && t.contains("7 batches written by the writer thread")
                && t.contains("85 written from where they arrived"),
            "{t}"
        );
        assert_eq!(v["datapath"]["cpus"], json!([1, 0]));
        v["datapath"]["cpus"] = json!([]);
        assert!(to_table(&v).contains("UDP GRO off, 2 thread(s)\n"));
        v["datapath"]["cpus"] = json!([3]);
        assert!(to_table(&v).contains("UDP GRO off, 2 thread(s) on CPU 3\n"));
    }
}
