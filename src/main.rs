//! The `tenantgate` binary: a thin command-line wrapper around the workspace crates.
//!
//! `serve` runs the proxy and the HTTP API from a config file; `wire decode` prints captured
//! wire traffic for engineers; `tenant export|import|verify` moves one tenant's data.

mod cli;

/// glibc's allocator spends a fifth of a request's CPU in `malloc`/`free` under many threads
/// (measured with perf, see docs/benchmarks.md); mimalloc's thread-local heaps do not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// tenantgate: tenant isolation for MongoDB, enforced on the wire.
#[derive(Debug, Parser)]
#[command(name = "tenantgate", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the proxy and the HTTP API.
    Serve(cli::serve::ServeArgs),
    /// Inspect MongoDB wire-protocol frames.
    #[command(subcommand)]
    Wire(cli::wire::WireCommand),
    /// Export, import and verify one tenant's data (moving a tenant between upstreams).
    #[command(subcommand)]
    Tenant(cli::tenant::TenantCommand),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => cli::serve::run(args),
        Command::Wire(cmd) => cli::wire::run(cmd),
        Command::Tenant(cmd) => cli::tenant::run(cmd),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tenantgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
