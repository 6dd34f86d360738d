//! Instruction counts of the wire floor and of the policy rewrite, per command, for
//! `valgrind --tool=callgrind`: counts are repeatable where wall-clock time on a shared VM is not.
//!
//! ```text
//! cargo build --release -p tenantgate-policy --example policy_cost
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null target/release/examples/policy_cost a_find_by_id rewrite 1000
//! ```
//! `scripts/bench-instructions` runs every case with 0 and N iterations and prints the
//! difference divided by N: instructions per operation, start-up excluded.

#[path = "../../benches/support/commands.rs"]
mod commands;

use std::hint::black_box;

use bytes::BytesMut;
use tenantgate_wire::{Limits, Message};

/// The allocator `tenantgate serve` runs with (src/main.rs), so allocations cost what they cost
/// in the proxy.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(case), Some(mode), Some(n)) = (
        args.get(1),
        args.get(2),
        args.get(3).and_then(|n| n.parse::<u32>().ok()),
    ) else {
        eprintln!("usage: policy_cost CASE floor|rewrite ITERATIONS");
        std::process::exit(2);
    };
    let Some((_, frame)) = commands::cases().into_iter().find(|(name, _)| name == case) else {
        eprintln!("unknown case {case}");
        std::process::exit(2);
    };
    let (config, principal) = commands::setup();
    let ctx = commands::context(&config, &principal);
    let limits = Limits::default();
    let mut out = BytesMut::with_capacity(64 * 1024);
    for _ in 0..n {
        out.clear();
        match mode.as_str() {
            "floor" => Message::decode(black_box(frame.clone()), &limits)
                .expect("decodes")
                .encode(&mut out)
                .expect("encodes"),
            _ => commands::rewrite(black_box(&frame), &ctx, &limits, &mut out),
        }
        black_box(&out);
    }
}
