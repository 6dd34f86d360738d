//! Replays the decode fuzz target's checked-in inputs through the very code the fuzz target runs
//! (`fuzz/src/decode_check.rs`, compiled here through `#[path]`), so every input that once found
//! a problem, and the minimized corpus, are re-checked by an ordinary `cargo test` — no nightly
//! toolchain or libFuzzer needed. See `docs/fuzzing.md`.

#[path = "../../fuzz/src/decode_check.rs"]
mod decode_check;

use std::path::{Path, PathBuf};

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
}

fn replay(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    for path in &files {
        let bytes = std::fs::read(path).expect("a readable fuzz input");
        let result = std::panic::catch_unwind(|| decode_check::run(&bytes));
        assert!(
            result.is_ok(),
            "{} fails the decode fuzz checks",
            path.display()
        );
    }
    files.len()
}

#[test]
fn every_decode_regression_input_passes_the_fuzz_checks() {
    // Empty until a campaign finds something; each file is an input that once failed.
    replay(&fuzz_dir("regressions/decode"));
}

#[test]
fn the_decode_seed_corpus_passes_the_fuzz_checks() {
    let n = replay(&fuzz_dir("seeds/decode"));
    assert!(n >= 14, "the decode seeds are checked in ({n} files)");
}
