//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the fuzz targets'
//! bodies on stable Rust, so every input the fuzzer kept — crashes it found included, once
//! fixed — is checked by `cargo test` without libFuzzer.

use std::path::PathBuf;

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus");
    for (target, body) in ocala_vectors::fuzz::TARGETS {
        let dir = root.join(target);
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(
            files.len() >= 3,
            "{target}: corpus too small ({})",
            files.len()
        );
        for f in files {
            let data = std::fs::read(&f).expect("readable");
            // A panic names the file through the test's output.
            println!("{}", f.display());
            body(&data);
        }
    }
}
