//! The simulator's speed on its 1000-node scenario (`driver-sim/scenarios/scale.toml`: two
//! i3 servers, two gateways, 996 hosts pinging each other, encrypted end to end), in
//! deliveries — datagrams and packets handed to an engine or a host's stack — per second of
//! wall-clock time, invariants checked after every step as in every run.
//!
//! Twice: as shipped (200 pings per host over 23 s), and cut to 30 pings per host over 6 s,
//! where building the thousand engines and their 1000 handshakes weigh heavily. The
//! difference between the two is what the simulator does per delivery once the paths are up.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::time::Duration;

const SCALE: &str = include_str!("../../driver-sim/scenarios/scale.toml");

fn scale(c: &mut Criterion) {
    let short = SCALE
        .replace("duration_ms = 23000", "duration_ms = 6000")
        .replace("count = 200", "count = 30")
        .replace("expect_replies = 180", "expect_replies = 27");
    assert_ne!(short, SCALE, "the short run changed the scenario");
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    for (label, text, secs) in [
        ("scale, 1000 nodes, 30 pings each", short.as_str(), 10),
        ("scale, 1000 nodes, 200 pings each (as shipped)", SCALE, 20),
    ] {
        let run = || ocala_sim::run_text("scale.toml", text, None).expect("the scenario runs");
        let first = run();
        assert!(first.failures.is_empty(), "{}", first.summary);
        group.measurement_time(Duration::from_secs(secs));
        group.throughput(Throughput::Elements(first.network.deliveries));
        group.bench_function(label, |b| b.iter(run));
    }
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
