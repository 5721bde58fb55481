//! A TCP relay on loopback that can be cut and restored: the network between the engine
//! (or the server) and a real server, for tests of outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A TCP relay to `target` that can be cut and restored.
pub struct Relay {
    pub port: u16,
    up: watch::Sender<bool>,
    /// Connections that were open when the relay was cut.
    pub severed: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, is_up) = watch::channel(true);
        let severed = Arc::new(AtomicUsize::new(0));
        let counted = severed.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*is_up.borrow() {
                    continue; // dropped: closed at once
                }
                let (target, counted) = (target.clone(), counted.clone());
                let mut is_up = is_up.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = is_up.wait_for(|up| !up) => {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        Relay {
            port,
            up,
            severed,
            accepting,
        }
    }

    /// Closes every open connection; new ones are closed at once.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

/// The test PostgreSQL server's address and, for the database at `url` on it, the same URL
/// through a new relay.
pub async fn relayed_postgres(url: &str) -> (Relay, String) {
    let direct = format!(
        "{}:{}",
        super::env("POSTGRES_HOST"),
        super::env("POSTGRES_PORT")
    );
    let relay = Relay::start(direct.clone()).await;
    let relayed = url.replace(&direct, &format!("127.0.0.1:{}", relay.port));
    assert_ne!(relayed, url, "{url} does not name {direct}");
    (relay, relayed)
}
