//! Cron schedules: each due tick of a template's schedule fires once across every engine
//! sharing the store (a compare-and-set on `next_fire_at`, and the tick in the event's
//! dedup key). Ticks missed while down follow the template's `MissedTicks` policy.

use super::{IncomingEvent, Ingested};
use crate::engine::{MissedTicks, Orbit};
use crate::error::Result;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A running scheduler loop; `shutdown` (or dropping it) stops it.
pub struct Scheduler {
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

impl Scheduler {
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.handle.await;
    }
}

impl Orbit {
    /// Fires every schedule tick that is due now; returns the events it stored.
    pub async fn fire_due_schedules(&self) -> Result<Vec<Ingested>> {
        let now = chrono::Utc::now().timestamp_millis();
        let templates = self.templates().await?;
        let mut fired = Vec::new();
        for (name, due) in self.store().due_schedules(now).await? {
            let Some(schedule) = templates
                .iter()
                .find(|t| t.name == name)
                .and_then(|t| t.schedule.clone())
            else {
                continue;
            };
            let next = schedule.next_after(now)?;
            // Missed: the tick after `due` has passed too.
            let missed = schedule.next_after(due)? <= now;
            if !self.store().claim_schedule_tick(&name, due, next).await? {
                continue; // another engine fired this tick
            }
            if missed && schedule.missed == MissedTicks::Skip {
                tracing::info!(template = %name, "skipping schedule ticks missed while down");
                continue;
            }
            let event = IncomingEvent {
                source: "schedule".into(),
                dedup_key: Some(format!("schedule:{name}:{due}")),
                file: None,
                template: Some(name.clone()),
                payload: json!({"template": name, "tick": due, "missed": missed}),
            };
            fired.push(self.ingest(&event).await?);
        }
        Ok(fired)
    }

    /// Checks the schedules every `interval` until shut down.
    pub fn start_scheduler(&self, interval: Duration) -> Scheduler {
        let (stop, mut stopped) = watch::channel(false);
        let orbit = self.clone();
        let handle = tokio::spawn(async move {
            let mut ticker = tokio::time::interval(interval);
            while !*stopped.borrow() {
                tokio::select! {
                    _ = ticker.tick() => {
                        if let Err(err) = orbit.fire_due_schedules().await {
                            tracing::warn!(%err, "firing schedules failed");
                        }
                    }
                    _ = stopped.changed() => break,
                }
            }
        });
        Scheduler { stop, handle }
    }
}
