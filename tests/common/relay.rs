//! A TCP relay on loopback that can be cut and restored: the network between the engine
//! (or the server) and a real server, for tests of outages.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the relay does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// Relays both ways.
    Up,
    /// Closes every connection at once, open or new: a server that went away.
    Cut,
    /// Holds every connection open and relays nothing: a network that drops packets.
    Silent,
}

/// A TCP relay to `target` that can be cut, silenced and restored.
pub struct Relay {
    pub port: u16,
    line: watch::Sender<Line>,
    /// Connections that were open when the line went down.
    pub severed: Arc<AtomicUsize>,
    accepting: JoinHandle<()>,
}

impl Relay {
    pub async fn start(target: String) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (line, watching) = watch::channel(Line::Up);
        let severed = Arc::new(AtomicUsize::new(0));
        let counted = severed.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let (target, counted) = (target.clone(), counted.clone());
                let mut line = watching.clone();
                let now = *line.borrow_and_update();
                tokio::spawn(async move {
                    match now {
                        Line::Cut => return, // dropped: closed at once
                        Line::Silent => {
                            // Held without a word until the line changes, then closed.
                            let _ = line.changed().await;
                            return;
                        }
                        Line::Up => {}
                    }
                    let Ok(mut server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
                        _ = line.wait_for(|line| *line != Line::Up) => {
                            counted.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if *line.borrow_and_update() == Line::Silent {
                        let _ = line.changed().await;
                    }
                });
            }
        });
        Relay {
            port,
            line,
            severed,
            accepting,
        }
    }

    /// Closes every open connection; new ones are closed at once.
    pub fn cut(&self) {
        self.line.send_replace(Line::Cut);
    }

    /// Stops relaying but holds every connection, open or new, without a word (until the
    /// line changes; then they are closed).
    pub fn silence(&self) {
        self.line.send_replace(Line::Silent);
    }

    pub fn restore(&self) {
        self.line.send_replace(Line::Up);
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
