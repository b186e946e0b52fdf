//! The simulator's speed on its 1000-node scenario (`driver-sim/scenarios/scale.toml`: two
//! i3 servers, two gateways, 996 hosts pinging each other, encrypted end to end), in
//! deliveries — datagrams and packets handed to an engine or a host's stack — per second of
//! wall-clock time, invariants checked after every step as in every run.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SCALE: &str = include_str!("../../driver-sim/scenarios/scale.toml");

fn scale(c: &mut Criterion) {
    let run = || ocala_sim::run_text("scale.toml", SCALE, None).expect("the scenario runs");
    let first = run();
    assert!(first.failures.is_empty(), "{}", first.summary);
    let mut group = c.benchmark_group("simulator");
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    group.throughput(Throughput::Elements(first.network.deliveries));
    group.bench_function("scale, 1000 nodes", |b| b.iter(run));
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
