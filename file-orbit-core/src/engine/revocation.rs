//! Revoking a named credential (an API key, an agent): one statement that marks its row
//! revoked, and the audit record, in one transaction.

use super::audit;
use super::store::{Store, db_error, now_ms};
use crate::error::{Error, ErrorKind, Result};
use serde_json::json;

impl Store {
    /// Revokes the row `name` of `table` (`set`: the columns a revocation sets, `$1` being
    /// now) unless it is revoked already, audited as `{kind}.revoked` on `{kind}/{name}` by
    /// `actor`, in one transaction. Revoking twice changes nothing; NotFound, naming
    /// `what`, when there is no such row.
    pub(crate) async fn revoke_named(
        &self,
        (table, kind, what): (&'static str, &str, &str),
        set: &'static str,
        name: &str,
        actor: &str,
    ) -> Result<()> {
        let context = format!("revoking {what} {name:?}");
        let mut tx = self.pool.begin().await.map_err(db_error(&context))?;
        let revoked = sqlx::query(&format!(
            "UPDATE {table} SET {set} WHERE name = $2 AND revoked_at IS NULL"
        ))
        .bind(now_ms())
        .bind(name)
        .execute(&mut *tx)
        .await
        .map_err(db_error(&context))?
        .rows_affected();
        if revoked == 0 {
            let exists = sqlx::query(&format!("SELECT name FROM {table} WHERE name = $1"))
                .bind(name)
                .fetch_optional(&mut *tx)
                .await
                .map_err(db_error(&context))?
                .is_some();
            return match exists {
                true => Ok(()),
                false => Err(Error::new(
                    ErrorKind::NotFound,
                    context,
                    format!("no {what} named {name:?}"),
                )),
            };
        }
        let (action, subject) = (format!("{kind}.revoked"), format!("{kind}/{name}"));
        audit::append(
            &mut tx,
            self.backend,
            actor,
            &action,
            &subject,
            "ok",
            &json!({}),
        )
        .await?;
        tx.commit().await.map_err(db_error(&context))
    }
}
