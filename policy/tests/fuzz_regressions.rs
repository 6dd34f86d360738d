//! Replays the policy fuzz target's checked-in inputs through the very code the fuzz target
//! runs (`fuzz/src/policy_check.rs`, compiled here through `#[path]`), so every input that once
//! found a problem, and the minimized corpus, are re-checked by an ordinary `cargo test` — no
//! nightly toolchain or libFuzzer needed. What the harness checks is described in that file and
//! in `docs/fuzzing.md`.
//!
//! `TENANTGATE_WRITE_SEEDS=1 cargo test -p tenantgate-policy --test fuzz_regressions` rewrites
//! the generated seeds in `fuzz/seeds/policy/` (see `fuzz/src/seeds.rs`).

#[path = "../../fuzz/src/grammar.rs"]
mod grammar;
#[path = "../../fuzz/src/policy_check.rs"]
mod policy_check;
#[path = "../../fuzz/src/seeds.rs"]
mod seeds;

use std::path::{Path, PathBuf};

fn fuzz_dir(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz")
        .join(sub)
}

/// Every file in `dir` (none if it does not exist), sorted so failures name a stable file.
fn inputs(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("a readable directory entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != ".gitkeep"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).expect("a readable fuzz input");
            (p, bytes)
        })
        .collect()
}

fn replay(dir: &Path) -> usize {
    let files = inputs(dir);
    for (path, bytes) in &files {
        let result = std::panic::catch_unwind(|| policy_check::run(bytes));
        assert!(
            result.is_ok(),
            "{} fails the policy fuzz checks",
            path.display()
        );
    }
    files.len()
}

#[test]
fn every_policy_regression_input_passes_the_fuzz_checks() {
    // Empty until a campaign finds something; each file is an input that once failed.
    replay(&fuzz_dir("regressions/policy"));
}

#[test]
fn the_policy_seed_corpus_passes_the_fuzz_checks() {
    let n = replay(&fuzz_dir("seeds/policy"));
    assert!(
        n >= seeds::policy_seeds().len(),
        "the seed corpus is checked in ({n} files)"
    );
}

#[test]
fn the_seeds_reach_both_forwarding_and_rejection() {
    // A corpus of only rejections would leave the scope checks unexercised.
    let (mut forwarded, mut rejected) = (Vec::new(), Vec::new());
    for (name, bytes) in seeds::policy_seeds() {
        match policy_check::tenant_outcome(&bytes).map(|o| o.decision) {
            Some(tenantgate_policy::Decision::Forward(_)) => forwarded.push(name),
            Some(tenantgate_policy::Decision::Reject(_)) => rejected.push(name),
            _ => {}
        }
    }
    for name in [
        "find.bin",
        "aggregate_union_facet.bin",
        "insert_sequence.bin",
        "delete_sequence.bin",
    ] {
        assert!(
            forwarded.iter().any(|n| n == name),
            "{name} is forwarded: {forwarded:?}"
        );
    }
    for name in [
        "find_other_tenant.bin",
        "find_where.bin",
        "aggregate_out.bin",
        "act_as.bin",
    ] {
        assert!(
            rejected.iter().any(|n| n == name),
            "{name} is rejected: {rejected:?}"
        );
    }
}

#[test]
fn the_generated_seeds_are_the_checked_in_seeds() {
    let dir = fuzz_dir("seeds/policy");
    for (name, bytes) in seeds::policy_seeds() {
        let path = dir.join(&name);
        if std::env::var_os("TENANTGATE_WRITE_SEEDS").is_some() {
            std::fs::create_dir_all(&dir).expect("the seed directory can be created");
            std::fs::write(&path, &bytes).expect("a seed can be written");
        }
        let on_disk = std::fs::read(&path).unwrap_or_default();
        assert!(
            on_disk == bytes,
            "{} is stale: rerun with TENANTGATE_WRITE_SEEDS=1",
            path.display()
        );
    }
}

#[test]
fn the_harness_catches_an_unscoped_forward() {
    // The checks must be able to fail: a forwarded find whose filter is not scoped is refused.
    let body = bson::doc! { "find": "payments", "filter": { "amount": 1 }, "$db": "payments" };
    let raw = tenantgate_wire::RawDoc::from_buf(
        bson::RawDocumentBuf::try_from(&body).expect("the test body converts"),
    )
    .expect("the test body is valid");
    let outcome = tenantgate_policy::Outcome {
        decision: tenantgate_policy::Decision::Forward(tenantgate_policy::Forward {
            body: raw.clone(),
            sequences: Vec::new(),
            reply: tenantgate_policy::ReplyShape::AsIs,
        }),
        audit: None,
    };
    let caught = std::panic::catch_unwind(|| {
        policy_check::check_outcome_for_test(&outcome, raw.as_raw());
    });
    assert!(caught.is_err(), "an unscoped filter must fail the harness");
}

/// A command nested `levels` deep under its filter (`q` for update), as a raw-mode fuzz input.
/// The filter also names `deletedAt`, so the engine must keep it under `$and: [ … ]` (two levels
/// deeper) rather than joining its conditions to the scope's at the top.
fn deep_input(command: &str, levels: u32) -> Vec<u8> {
    let mut inner = bson::doc! { "x": 1 };
    for _ in 0..levels {
        inner = bson::doc! { "a": inner };
    }
    let mut wrapped = bson::doc! { "deletedAt": { "$exists": true } };
    wrapped.extend(inner);
    let inner = wrapped;
    let body = match command {
        "find" => bson::doc! { "find": "payments", "filter": inner, "$db": "payments" },
        _ => bson::doc! {
            "update": "payments",
            "updates": [ { "q": inner, "u": { "$set": { "status": "paid" } } } ],
            "$db": "payments",
        },
    };
    let mut input = vec![0u8];
    input.extend(grammar::sections(&body, &[]).expect("the deep command encodes"));
    input
}

/// Found by the harness's wire invariant: a filter within the depth limit was moved under
/// `$and: [ … ]` and forwarded two levels past `MAX_BSON_DEPTH`, a command MongoDB (and
/// tenantgate's own codec) refuse as malformed. The engine now refuses it itself.
#[test]
fn a_filter_deepened_past_the_depth_limit_is_refused_not_forwarded() {
    let dir = fuzz_dir("regressions/policy");
    for (file, command, levels) in [
        ("deep_filter_find.bin", "find", 198),
        ("deep_filter_update.bin", "update", 196),
    ] {
        let path = dir.join(file);
        if std::env::var_os("TENANTGATE_WRITE_SEEDS").is_some() {
            std::fs::write(&path, deep_input(command, levels)).expect("the regression is written");
        }
        let input = std::fs::read(&path).expect("the regression input is checked in");
        assert_eq!(input, deep_input(command, levels), "{file} is what it says");
        let outcome = policy_check::tenant_outcome(&input).expect("the input decodes");
        match outcome.decision {
            tenantgate_policy::Decision::Reject(r) => {
                assert_eq!(r.rule, tenantgate_policy::Rule::MalformedCommand, "{file}");
                assert!(
                    r.message.contains("nests too deeply"),
                    "{file}: {}",
                    r.message
                );
            }
            other => panic!("{file}: {other:?}"),
        }
        // Ordinary nesting is not refused: the same command a few levels shallower forwards.
        let shallow = policy_check::tenant_outcome(&deep_input(command, levels - 8))
            .expect("the input decodes");
        assert!(
            matches!(shallow.decision, tenantgate_policy::Decision::Forward(_)),
            "{file} minus 8 levels forwards"
        );
    }
}
