//! Notifications managed through `Orbit`: stored (the channel's host checked against the
//! allow-list, the channel sealed), read back, listed, deleted, re-sealed, tested with a
//! message sent at once; their outbox listed and a dead message retried.

use super::deliver::Delivery;
use super::guard::AllowList;
use super::{Channel, Message, Notification};
use crate::engine::{
    MessageFilter, NotificationSummary, Orbit, OutboxMessage, StoredNotification, now_ms,
};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::with_secrets_revealed;
use crate::serde_errors::from_json_value;
use serde_json::json;
use std::time::Duration;

/// How long a test message may take.
const TEST_TIMEOUT: Duration = Duration::from_secs(20);

impl Orbit {
    /// The allow-list of the hosts channels may reach (`OrbitOptions::notify_allow`).
    pub(crate) fn notify_allow_list(&self) -> Result<AllowList> {
        AllowList::parse(&self.options().notify_allow)
    }

    /// Creates or replaces a notification: checked, its channel's host checked against the
    /// allow-list (and what the name resolves to), the channel sealed.
    pub async fn put_notification(&self, notification: &Notification) -> Result<()> {
        notification.validate()?;
        let context = "storing a notification";
        self.notify_allow_list()?
            .check_channel(&notification.channel)
            .await?;
        let sealed_json = with_secrets_revealed(|| serde_json::to_vec(&notification.channel))
            .map_err(|err| Error::new(ErrorKind::InvalidInput, context, err.to_string()))?;
        let (key_id, sealed) = self.keyring().seal(&sealed_json)?;
        let public = serde_json::to_value(&notification.channel)
            .map_err(|err| Error::new(ErrorKind::InvalidInput, context, err.to_string()))?;
        let rule = serde_json::to_value(&notification.rule)
            .map_err(|err| Error::new(ErrorKind::InvalidInput, context, err.to_string()))?;
        let stored = StoredNotification {
            name: &notification.name,
            channel: notification.channel.kind(),
            rule: &rule,
            public_channel: &public,
            sealed_channel: &sealed,
            key_id: &key_id,
            enabled: notification.enabled,
        };
        self.store().put_notification(&stored, self.actor()).await
    }

    /// The notification `name`, its channel unsealed.
    pub async fn notification(&self, name: &str) -> Result<Notification> {
        let summary = self.store().notification(name).await?;
        let channel = self.notification_channel(name).await?;
        let rule = from_json_value("reading a notification", summary.rule)?;
        Ok(Notification {
            name: summary.name,
            channel,
            rule,
            enabled: summary.enabled,
        })
    }

    /// The channel of notification `name`, unsealed.
    pub(crate) async fn notification_channel(&self, name: &str) -> Result<Channel> {
        let (sealed, key_id) = self.store().sealed_notification(name).await?;
        let plain = self.keyring().open(&key_id, &sealed)?;
        serde_json::from_slice(&plain)
            .map_err(|err| Error::new(ErrorKind::Store, "reading a notification", err.to_string()))
    }

    /// Every notification (secrets as `***`) with its messages counted by state.
    pub async fn notifications(&self) -> Result<Vec<NotificationSummary>> {
        self.store().notifications().await
    }

    /// Deletes notification `name`; its unsent messages die at their next try.
    pub async fn delete_notification(&self, name: &str) -> Result<()> {
        self.store().delete_notification(name, self.actor()).await
    }

    /// Sends a test message through notification `name` at once (not through the outbox)
    /// and returns the channel's answer; a failure is the channel's error. Audited as
    /// `notification.tested`.
    pub async fn test_notification(&self, name: &str) -> Result<String> {
        let channel = self.notification_channel(name).await?;
        let message = Message {
            test: true,
            ..Message::new(name, "test", chrono::Utc::now())
        };
        let delivery = Delivery::new(self.notify_allow_list()?, TEST_TIMEOUT)?;
        let sent = delivery.send(&channel, &message).await;
        let (outcome, detail) = match &sent {
            Ok(answer) => ("ok", json!({"message_id": message.id, "answer": answer})),
            Err(err) => (
                "failed",
                json!({"message_id": message.id, "error": err.to_string()}),
            ),
        };
        self.store()
            .append_audit(
                self.actor(),
                "notification.tested",
                &format!("notification/{name}"),
                outcome,
                &detail,
            )
            .await?;
        sent
    }

    /// Outbox messages, newest first (`limit` 1 to 1,000; default 100).
    pub async fn notification_messages(
        &self,
        filter: &MessageFilter,
    ) -> Result<Vec<OutboxMessage>> {
        self.store().notification_messages(filter).await
    }

    /// Queues dead message `id` again for as many tries as it had.
    pub async fn retry_notification_message(&self, id: i64) -> Result<()> {
        self.store().retry_message(id, self.actor()).await
    }

    /// Re-seals the notifications sealed by another key than `current`; how many.
    pub(crate) async fn reseal_notifications(&self, current: &str) -> Result<usize> {
        let stale = self
            .store()
            .notifications_sealed_by_other_keys(current)
            .await?;
        for name in &stale {
            let notification = self.notification(name).await?;
            self.put_notification(&notification).await?;
        }
        Ok(stale.len())
    }
}

/// Milliseconds since the epoch, `delay` from now.
pub(crate) fn after(delay: Duration) -> i64 {
    now_ms() + delay.as_millis() as i64
}
