//! `switchyard-mock --listen 127.0.0.1:9100`: the mock upstream as a standalone server.
//!
//! Prints the bound address (one line, e.g. `127.0.0.1:9100`) on stdout once it accepts
//! connections, so scripts that pass port 0 can read the real port, and serves until SIGINT or
//! SIGTERM.

use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use switchyard_mock::{router, serve, MockState};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(
    name = "switchyard-mock",
    version,
    about = "OpenAI-compatible mock upstream with fault injection"
)]
struct Args {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "SWITCHYARD_MOCK_LISTEN", default_value = "127.0.0.1:9100")]
    listen: SocketAddr,

    /// Runtime worker threads (default: one per core). Benchmarks pin this to share cores
    /// fairly with the gateway under test.
    #[arg(long, env = "SWITCHYARD_MOCK_WORKERS")]
    workers: Option<usize>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    runtime.enable_all();
    if let Some(workers) = args.workers.filter(|&w| w > 0) {
        runtime.worker_threads(workers);
    }
    let result = match runtime.build() {
        Ok(runtime) => runtime.block_on(run(args.listen)),
        Err(err) => Err(err),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("switchyard-mock: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(listen: SocketAddr) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{addr}")?;
    stdout.flush()?;
    tokio::select! {
        () = serve(listener, router(MockState::new())) => {}
        () = shutdown_signal() => {}
    }
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut sigterm) => {
                tokio::select! {
                    Ok(()) = tokio::signal::ctrl_c() => {}
                    _ = sigterm.recv() => {}
                }
            }
            // Without a SIGTERM handler, SIGINT still stops us and SIGTERM's default kills us.
            Err(_) => ctrl_c().await,
        }
    }
    #[cfg(not(unix))]
    ctrl_c().await;
}

/// Resolves on SIGINT; never, if no handler can be installed (serving on beats exiting at once).
async fn ctrl_c() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}
