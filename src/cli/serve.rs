//! `tenantgate serve --config tenantgate.toml`: the proxy listener and the HTTP API.
//!
//! Start-up errors say which part failed and why (bad config key, unreachable upstream, port
//! in use) and exit non-zero. SIGTERM or Ctrl-C stops accepting, lets in-flight commands finish
//! within the grace period, then exits.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use tenantgate_proxy::{Config, ProcessEnv, Proxy};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The configuration file.
    #[arg(
        long,
        short,
        env = "TENANTGATE_CONFIG",
        default_value = "tenantgate.toml"
    )]
    config: PathBuf,
    /// Log format: `text` or `json` (audit events are structured either way).
    #[arg(long, env = "TENANTGATE_LOG_FORMAT", default_value = "text")]
    log_format: String,
    /// Seconds to let in-flight commands finish on shutdown.
    #[arg(long, default_value_t = 10)]
    grace_secs: u64,
}

pub fn run(args: ServeArgs) -> Result<()> {
    init_logging(&args.log_format);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(serve(args));
    // Background tasks (audit writer, cache refreshers) are cancelled, not awaited: the grace
    // period is already spent.
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}

async fn serve(args: ServeArgs) -> Result<()> {
    let config = Config::load(&args.config, &ProcessEnv)
        .with_context(|| format!("loading {}", args.config.display()))?;
    let api_listen = config.api.listen.clone();
    if config.api.dev_mode {
        tracing::warn!(
            "api.dev_mode is on: POST /v1/dev/token signs a token for any tenant and role on \
             request; never run it this way where real data lives"
        );
    }
    let proxy = Proxy::bind(config, &ProcessEnv)
        .await
        .context("starting the proxy")?;
    let proxy_addr = proxy.local_addr().context("reading the proxy address")?;
    let metrics: tenantgate_api::MetricsRenderer = std::sync::Arc::new(proxy.metrics_renderer());
    let state = tenantgate_api::ApiState::new(proxy.services(), metrics);
    let api = tokio::net::TcpListener::bind(&api_listen)
        .await
        .with_context(|| format!("api.listen: cannot listen on {api_listen}"))?;
    tracing::info!(proxy = %proxy_addr, api = %api_listen, "tenantgate serving");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut proxy_stop = stop_rx.clone();
    let mut api_stop = stop_rx;
    let grace = Duration::from_secs(args.grace_secs);
    let proxy_task = tokio::spawn(async move {
        proxy
            .run(
                async move {
                    let _ = proxy_stop.changed().await;
                },
                grace,
            )
            .await;
    });
    let api_task = tokio::spawn(async move {
        axum::serve(
            api,
            tenantgate_api::app(state)
                .into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = api_stop.changed().await;
        })
        .await
    });
    shutdown_signal().await;
    tracing::info!("shutdown requested");
    // Both listeners close and both drains run at once, against one deadline: the proxy bounds
    // its own drain by `grace`; an HTTP request still running at the deadline is cut off rather
    // than allowed to hold the process past the grace period its operator configured.
    let deadline = tokio::time::Instant::now() + grace;
    let _ = stop_tx.send(true);
    let _ = proxy_task.await;
    let api_abort = api_task.abort_handle();
    match tokio::time::timeout_at(deadline, api_task).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "api server error"),
        Ok(_) => {}
        Err(_) => {
            tracing::warn!("grace period over; closing remaining HTTP requests");
            api_abort.abort();
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
