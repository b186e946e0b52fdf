//! `ocala-sim run FILE --report DIR`: every file of the report says what the run's
//! `Outcome` says, the pcap files open in tshark with the frames the links carried, and the
//! same run writes the same bytes. Needs tshark (Debian's `tshark`; `.ci/run` installs it),
//! which reads the pcap files back: without it the test fails, naming it.

use ocala_sim::outcome::Outcome;
use ocala_sim::RunOptions;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const SCENARIO: &str = "i3-middlebox";

fn scenario_file() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{SCENARIO}.toml"));
    path.display().to_string()
}

/// The run as the command makes it for a report: every link captured unless `links` names
/// some.
fn outcome(links: &[&str]) -> Outcome {
    let file = scenario_file();
    let text = std::fs::read_to_string(&file).expect("scenario readable");
    let options = RunOptions {
        capture: Some(links.iter().map(|l| l.to_string()).collect()),
        series: true,
        ..RunOptions::default()
    };
    ocala_sim::run_with(&file, &text, &options, &mut |_, _| {}).expect("scenario runs")
}

/// A fresh folder for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("ocala-sim-report-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ocala_sim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ocala-sim"))
        .args(args)
        .output()
        .expect("ocala-sim runs")
}

/// Runs the scenario with a report into `dir`; the digest it printed.
fn report(dir: &Path, more: &[&str]) -> String {
    let file = scenario_file();
    let dir = dir.display().to_string();
    let out = ocala_sim(&[&["run", &file, "--report", &dir], more].concat());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let last = stdout.lines().last().unwrap_or_default();
    last.strip_prefix("digest: ")
        .unwrap_or_else(|| panic!("no digest last: {last}"))
        .to_string()
}

/// tshark's fields of each frame of a pcap file (the outermost IP and UDP header's, not
/// those tshark finds inside a payload).
fn tshark(file: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-r".to_string(), file.display().to_string()];
    args.extend(["-T", "fields", "-E", "occurrence=f"].map(String::from));
    for f in fields {
        args.extend(["-e".to_string(), f.to_string()]);
    }
    let out = Command::new("tshark")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("tshark {}: {e} (install tshark)", args.join(" ")));
    assert!(
        out.status.success(),
        "tshark {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

/// Every file under `dir`, relative to it, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("readable folder") {
            let path = e.expect("entry").path();
            if path.is_dir() {
                todo.push(path);
            } else {
                let rel = path.strip_prefix(dir).expect("inside");
                found.push(rel.display().to_string());
            }
        }
    }
    found.sort();
    found
}

#[test]
fn a_report_says_what_the_run_did() {
    let dir = TempDir::new("full");
    let digest = report(&dir.0, &[]);
    let out = outcome(&[]);
    assert_eq!(digest, out.digest, "the report's run is the library's run");
    assert!(out.failures.is_empty(), "{}", out.summary);

    // summary.json: the run's records, and what the scenario is known to do.
    let text = std::fs::read_to_string(dir.0.join("summary.json")).expect("summary.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("summary.json is JSON");
    assert_eq!(json["scenario"], SCENARIO);
    assert_eq!(json["digest"], out.digest.as_str());
    assert_eq!(json["seed"], out.seed);
    assert_eq!(json["duration_ms"], 12000);
    assert_eq!(json["passed"], true);
    assert_eq!(json["apps"], serde_json::to_value(&out.apps).expect("apps"));
    assert_eq!(
        json["paths"],
        serde_json::to_value(&out.paths).expect("paths")
    );
    assert_eq!(
        json["drops"],
        serde_json::to_value(&out.drops).expect("drops")
    );
    assert_eq!(json["network"]["datagrams"], out.network.datagrams);
    assert_eq!(
        json["faults"],
        serde_json::json!([]),
        "i3-middlebox injects none"
    );
    assert_eq!(json["invariants"]["checks"], out.checks);
    assert_eq!(json["invariants"]["violations"], serde_json::json!([]));
    assert_eq!(json["expectations_failed"], serde_json::json!([]));
    let apps = json["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 6);
    // The plain ping passes fw, its UDP echo (port 7) is filtered: none come back.
    assert_eq!(
        (&apps[0]["kind"], &apps[0]["sent"], &apps[0]["received"]),
        (&"ping".into(), &5.into(), &5.into())
    );
    assert_eq!(
        (&apps[1]["kind"], &apps[1]["received"]),
        (&"udp".into(), &0.into())
    );
    assert_eq!(apps[0]["lookup"]["rcode"], "noerror");
    let median = apps[0]["rtt_ms"]["median"].as_f64().expect("a median RTT");
    assert!((49.0..=53.0).contains(&median), "{median}");
    let filtered = json["drops"]
        .as_array()
        .expect("drops")
        .iter()
        .find(|d| d["node"] == "fw" && d["reason"] == "middlebox: port filtered")
        .expect("fw's filter drops");
    assert!(filtered["count"].as_u64() >= Some(10), "{filtered}");
    assert!(json["middleboxes"][0]["text"]
        .as_str()
        .is_some_and(|t| t.contains("udp/7")));

    // The pcap files: one per link, read back by tshark frame by frame.
    let names: Vec<&str> = out.links.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(names, ["alice-bob", "alice-s", "bob-s", "carol-s", "fw-s"]);
    let listed = json["links"].as_array().expect("links");
    assert_eq!(listed.len(), names.len());
    for (link, entry) in out.links.iter().zip(listed) {
        let file = format!("links/{}.pcap", link.name);
        assert_eq!(
            (&entry["file"], &entry["frames"]),
            (&file.as_str().into(), &link.frames.len().into())
        );
        let rows = tshark(
            &dir.0.join(&file),
            &[
                "frame.number",
                "ip.src",
                "udp.dstport",
                "udp.length",
                "frame.time_epoch",
            ],
        );
        assert_eq!(rows.len(), link.frames.len(), "{file}");
        for (i, (row, f)) in rows.iter().zip(&link.frames).enumerate() {
            let want = [
                (i + 1).to_string(),
                f.from.ip().to_string(),
                f.to.port().to_string(),
                (f.payload.len() + 8).to_string(),
            ];
            assert_eq!(row[..4], want, "{file} frame {}", i + 1);
            let t: f64 = row[4].parse().expect("a time");
            assert!(
                (t - f.at.as_nanos() as f64 / 1e9).abs() < 1e-6,
                "{file}: {row:?}"
            );
        }
    }
    assert!(
        out.links[0].frames.is_empty(),
        "no shortcut: the direct link stays idle"
    );
    assert!(out.links[1..].iter().all(|l| !l.frames.is_empty()));
    // What the links carried from alice is every datagram she sent (she sends none to
    // herself): the capture taps the sender's end.
    let mut captured: Vec<&[u8]> = out
        .links
        .iter()
        .flat_map(|l| &l.frames)
        .filter(|f| f.from.ip().to_string() == "10.0.0.1")
        .map(|f| f.payload.as_slice())
        .collect();
    let mut sent: Vec<&[u8]> = out.sent["alice"].iter().map(Vec::as_slice).collect();
    captured.sort();
    sent.sort();
    assert!(!sent.is_empty());
    assert_eq!(captured, sent);

    // The plot: an SVG with a line per app that got answers, each in the legend.
    let svg = std::fs::read_to_string(dir.0.join("rtt.svg")).expect("rtt.svg");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(60)]);
    assert!(svg.contains("<polyline") || svg.contains("<path"));
    for part in [
        "RTT (ms)",
        "simulated time (s)",
        "app0 alice: ping bob.i3_plain.oci",
        "app1 alice: udp bob.i3_plain.oci (no data)",
    ] {
        assert!(svg.contains(part), "rtt.svg has no '{part}'");
    }
    assert!(out.goodput_csv.is_empty());
    assert!(
        !dir.0.join("goodput.svg").exists(),
        "no TCP apps, no goodput plot"
    );

    // The page shows the summary and links every file.
    let html = std::fs::read_to_string(dir.0.join("index.html")).expect("index.html");
    assert!(html.starts_with("<!DOCTYPE html>") && html.ends_with("</html>\n"));
    assert!(html.contains("href=\"summary.json\"") && html.contains("src=\"rtt.svg\""));
    for name in names {
        assert!(
            html.contains(&format!("href=\"links/{name}.pcap\"")),
            "{name}"
        );
    }
    assert!(html.contains(&out.digest) && html.contains("middlebox: port filtered"));
    assert!(!html.contains("goodput"));
    assert!(!html.contains("<script"));
}

#[test]
fn pcap_picks_links_and_the_same_run_writes_the_same_bytes() {
    let (a, b) = (TempDir::new("one"), TempDir::new("two"));
    // Either order of a link's two names.
    report(&a.0, &["--pcap", "s-fw", "--pcap", "alice-s"]);
    report(&b.0, &["--pcap", "fw-s", "--pcap", "alice-s"]);
    let written = files(&a.0);
    assert_eq!(
        written,
        [
            "index.html",
            "links/alice-s.pcap",
            "links/fw-s.pcap",
            "rtt.svg",
            "summary.json"
        ]
    );
    assert_eq!(files(&b.0), written);
    for f in &written {
        let (x, y) = (std::fs::read(a.0.join(f)), std::fs::read(b.0.join(f)));
        assert!(
            x.expect("readable") == y.expect("readable"),
            "{f} differs between runs"
        );
    }
    let out = outcome(&["fw-s"]);
    assert_eq!(out.links.len(), 1);
    let rows = tshark(&a.0.join("links/fw-s.pcap"), &["ip.src"]);
    assert_eq!(rows.len(), out.links[0].frames.len());
    assert!(!rows.is_empty());
}

#[test]
fn bad_links_and_unwritable_folders_are_named() {
    let dir = TempDir::new("bad");
    let target = dir.0.join("r").display().to_string();
    let out = ocala_sim(&[
        "run",
        &scenario_file(),
        "--report",
        &target,
        "--pcap",
        "alice-carol",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("alice-carol"), "{err}");
    // A report folder under a file cannot be made: the error names the file it wanted.
    std::fs::write(dir.0.join("blocker"), b"x").expect("file");
    let target = dir.0.join("blocker").join("r").display().to_string();
    let out = ocala_sim(&["run", &scenario_file(), "--report", &target]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&target), "{err}");
}

#[test]
fn runs_without_a_report_keep_no_traffic() {
    let file = scenario_file();
    let text = std::fs::read_to_string(&file).expect("scenario readable");
    let plain = ocala_sim::run_text(&file, &text, None).expect("runs");
    assert!(plain.links.is_empty());
    // Capturing watches the run without changing it.
    assert_eq!(plain.digest, outcome(&[]).digest);
}

#[test]
fn goodput_is_plotted_when_a_run_has_bulk_apps() {
    // The simulator has no TCP apps yet: a run given goodput series as they will give them.
    let mut out = outcome(&["alice-s"]);
    let ramp: String = (0..=40)
        .map(|i| format!("{},{}\n", i * 250, (f64::from(i) * 0.6).min(18.0)))
        .collect();
    out.goodput_csv = vec![(
        "app3-alice-bob.i3.csv".to_string(),
        format!("t_ms,mbps\n{ramp}"),
    )];
    let dir = TempDir::new("goodput");
    ocala_sim::report::write(&dir.0, &out).expect("written");
    let svg = std::fs::read_to_string(dir.0.join("goodput.svg")).expect("goodput.svg");
    assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
    assert!(svg.contains("goodput (Mbit/s)") && svg.contains("app3 alice: udp bob.i3"));
    let html = std::fs::read_to_string(dir.0.join("index.html")).expect("index.html");
    assert!(html.contains("src=\"goodput.svg\""));
    let text = std::fs::read_to_string(dir.0.join("summary.json")).expect("summary.json");
    let json: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(json["plots"], serde_json::json!(["rtt.svg", "goodput.svg"]));
}

#[test]
fn a_report_lists_the_faults_injected() {
    let dir = TempDir::new("faults");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/partition.toml");
    let text = std::fs::read_to_string(&path).expect("scenario");
    let out = ocala_sim::run_text("partition.toml", &text, None).expect("runs");
    ocala_sim::report::write(&dir.0, &out).expect("report written");
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.0.join("summary.json")).expect("summary.json"),
    )
    .expect("JSON");
    assert_eq!(
        json["faults"],
        serde_json::json!([
            {"at_ms": 3000, "text": "carol cut off"},
            {"at_ms": 5000, "text": "carol joined again"}
        ])
    );
    let html = std::fs::read_to_string(dir.0.join("index.html")).expect("index.html");
    assert!(html.contains("<h2>Faults injected</h2>") && html.contains("carol joined again"));
}
