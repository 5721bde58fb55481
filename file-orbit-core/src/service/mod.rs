//! What the long-running services (features `server`, `worker`) share: their log files
//! and the viewer over them (`logs`), what both declare in their TOML (`declared`: secret
//! references, the node, sources), and the shutdown signal.

pub mod declared;
pub mod logs;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let term = async {
        match term.as_mut() {
            Some(term) => {
                term.recv().await;
            }
            None => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}
