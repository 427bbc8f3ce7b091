//! The HTTP server loop: hyper's HTTP/1.1 connections with a header-read timeout (which also
//! ends idle keep-alive connections), and connection limits per client address and in all,
//! checked on accept: a connection over a limit is closed at once, before any byte is read.
//! Shutdown stops accepting and lets requests in flight finish.

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;

use glass_images::config::ServerConfig;

/// What the server enforces on each connection.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub keepalive: bool,
    pub per_client: usize,
    pub total: usize,
}

impl Limits {
    pub fn of(config: &ServerConfig) -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(config.header_read_timeout_s.max(1)),
            keepalive: config.http_keepalive,
            per_client: config.max_connections_per_client.max(1),
            total: config.max_connections.max(1),
        }
    }
}

/// Open connections, by client address and in all.
#[derive(Debug, Default)]
struct Connections {
    open: Mutex<(HashMap<IpAddr, usize>, usize)>,
}

/// One admitted connection; dropping it gives its place back.
struct Admitted {
    connections: Arc<Connections>,
    client: IpAddr,
}

impl Connections {
    /// A place for a new connection from `client`, unless a limit is reached.
    fn admit(self: &Arc<Self>, client: IpAddr, limits: &Limits) -> Option<Admitted> {
        let mut open = self.open.lock().expect("connections lock");
        let (by_client, total) = &mut *open;
        let mine = by_client.get(&client).copied().unwrap_or(0);
        if *total >= limits.total || mine >= limits.per_client {
            return None;
        }
        *total += 1;
        by_client.insert(client, mine + 1);
        Some(Admitted {
            connections: self.clone(),
            client,
        })
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut open = self.connections.open.lock().expect("connections lock");
        let (by_client, total) = &mut *open;
        *total = total.saturating_sub(1);
        if let Some(n) = by_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                by_client.remove(&self.client);
            }
        }
    }
}

/// Serves `router` on `listener` until `shutdown` completes, then waits for the
/// connections still open to finish their requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let connections = Arc::new(Connections::default());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(admitted) = connections.admit(peer.ip(), &limits) else {
            refused += 1;
            // Once per power of two, so a flood does not flood the log too.
            if refused.is_power_of_two() {
                tracing::warn!(client = %peer.ip(), refused,
                    "connection limit reached: closing new connections");
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .keep_alive(limits.keepalive);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _admitted = admitted;
            if let Err(e) = connection.await {
                tracing::debug!(client = %peer, error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_per_client_and_in_all() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(1),
            keepalive: true,
            per_client: 2,
            total: 3,
        };
        let c = Arc::new(Connections::default());
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let a1 = c.admit(a, &limits).expect("first");
        let _a2 = c.admit(a, &limits).expect("second");
        assert!(
            c.admit(a, &limits).is_none(),
            "a third from the same client"
        );
        let _b1 = c.admit(b, &limits).expect("another client");
        assert!(c.admit(b, &limits).is_none(), "over the total");
        drop(a1);
        assert!(
            c.admit(b, &limits).is_some(),
            "a place freed by a closed connection"
        );
    }
}
