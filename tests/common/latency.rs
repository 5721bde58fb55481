//! A TCP relay on loopback that adds round-trip time without capping throughput: the
//! distance between the engine (or the rclone CLI) and a real test server, for the latency
//! bench and for tests that count the connections a server accepts.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// A TCP relay to `target` that holds every chunk for half the round-trip time in each
/// direction. Each direction is a timestamped queue: a chunk read at `t` is written at
/// `t + rtt/2` whatever came before it, so the delay adds to every round trip but never
/// limits how many bytes are in flight.
pub struct LatencyRelay {
    pub port: u16,
    /// Connections accepted so far (each one a connection to the target).
    pub accepted: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl LatencyRelay {
    pub async fn start(target: String, rtt: Duration) -> LatencyRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counted = accepted.clone();
        let one_way = rtt / 2;
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::Relaxed);
                let target = target.clone();
                tokio::spawn(async move {
                    // The client pays the delay of the connection's handshake too.
                    let opened = Instant::now();
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::time::sleep_until(opened + rtt).await;
                    let _ = (client.set_nodelay(true), server.set_nodelay(true));
                    let (client_read, client_write) = client.into_split();
                    let (server_read, server_write) = server.into_split();
                    tokio::join!(
                        delayed(client_read, server_write, one_way),
                        delayed(server_read, client_write, one_way),
                    );
                });
            }
        });
        LatencyRelay {
            port,
            accepted,
            accepting,
        }
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.accepted.load(Ordering::Relaxed)
    }
}

impl Drop for LatencyRelay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read; an end of stream
/// is passed on (after the chunks before it) as a shutdown of `to`.
async fn delayed(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (queue, mut queued) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let reading = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if queue
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let writing = async move {
        while let Some((due, chunk)) = queued.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(reading, writing);
}
