//! Endpoints in the store: a row per endpoint with its public config (secrets as `***`),
//! its sealed config and the key id that sealed it, `max_concurrent` and its bandwidth
//! limit as written; created, edited and deleted with their audit records. Sealing and
//! unsealing is the keyring's job (`Orbit`), never this module's: only sealed bytes pass
//! through here.

use super::audit;
use super::store::{Cell, Store, db_error, put_named};
use crate::endpoint::{Bandwidth, Rates};
use crate::error::{Error, ErrorKind, Result};
use chrono::{DateTime, Local};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;

/// Transfers an endpoint takes at once when its declaration (config file, API) names none.
pub const DEFAULT_MAX_CONCURRENT: u32 = 4;

/// An endpoint as listed: its config with secrets shown as `***`.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct EndpointSummary {
    pub name: String,
    pub kind: String,
    pub config: Value,
    pub max_concurrent: i64,
    pub key_id: String,
    /// The bandwidth limit as written (also in `config`); none when unlimited.
    pub bandwidth: Option<String>,
    /// The rates the limit sets now (bytes per second; null is no limit).
    pub bandwidth_now: Rates,
    /// When a timetable next changes the rates, and to what.
    pub bandwidth_next: Option<BandwidthChange>,
}

/// A timetable's next change.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct BandwidthChange {
    pub at: DateTime<Local>,
    pub rates: Rates,
}

/// An endpoint as it is stored: what `Store::put_endpoint` writes.
pub(crate) struct StoredEndpoint<'a> {
    pub name: &'a str,
    /// `local`, `s3`, `sftp`, `smb`.
    pub kind: &'a str,
    /// The config with its secrets as `***`.
    pub public: &'a Value,
    /// The whole config, sealed under `key_id`.
    pub sealed: &'a str,
    pub key_id: &'a str,
    pub max_concurrent: u32,
    pub bandwidth: Option<&'a str>,
    /// The placement's stored form (`Placement::stored`); none: anywhere.
    pub placement: Option<&'a str>,
}

impl Store {
    /// Creates or replaces an endpoint's row and audits `endpoint.created` / `.edited`.
    pub(crate) async fn put_endpoint(
        &self,
        endpoint: &StoredEndpoint<'_>,
        actor: &str,
    ) -> Result<()> {
        let context = "storing an endpoint";
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let public = endpoint.public.to_string();
        let existed = put_named(
            &mut tx,
            "endpoints",
            endpoint.name,
            &[
                ("kind", Cell::Text(endpoint.kind)),
                ("public_config", Cell::Text(&public)),
                ("sealed_config", Cell::Text(endpoint.sealed)),
                ("key_id", Cell::Text(endpoint.key_id)),
                ("max_concurrent", Cell::Int(endpoint.max_concurrent as i64)),
                (
                    "bandwidth",
                    endpoint.bandwidth.map_or(Cell::Null, Cell::Text),
                ),
                (
                    "placement",
                    endpoint.placement.map_or(Cell::Null, Cell::Text),
                ),
            ],
            context,
        )
        .await?;
        let action = if existed {
            "endpoint.edited"
        } else {
            "endpoint.created"
        };
        let detail = json!({"kind": endpoint.kind, "max_concurrent": endpoint.max_concurrent,
            "bandwidth": endpoint.bandwidth, "placement": endpoint.placement});
        audit::append(
            &mut tx,
            self.backend,
            actor,
            action,
            &format!("endpoint/{}", endpoint.name),
            "ok",
            &detail,
        )
        .await?;
        tx.commit().await.map_err(db_error(context))
    }

    /// Deletes an endpoint. Refused while queued or running jobs or a template use it.
    pub(crate) async fn delete_endpoint(&self, name: &str, actor: &str) -> Result<()> {
        let context = "deleting an endpoint";
        let in_use: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('queued', 'leased') \
                 AND (source_endpoint = $1 OR destination_endpoint = $1)",
        )
        .bind(name)
        .fetch_one(&self.pool)
        .await
        .map_err(db_error(context))?;
        if in_use > 0 {
            return Err(Error::invalid_field(
                context,
                "name",
                format!(
                    "endpoint {name:?} is used by {in_use} queued or running jobs; cancel them first"
                ),
            ));
        }
        let used_by = self.templates().await?.into_iter().find(|template| {
            template.matcher.source == name
                || std::iter::once(&template.spec)
                    .chain(&template.next_hops)
                    .any(|spec| spec.source == name || spec.destination == name)
        });
        if let Some(template) = used_by {
            return Err(Error::invalid_field(
                context,
                "name",
                format!("endpoint {name:?} is used by template {:?}", template.name),
            ));
        }
        let tx = self.pool.begin().await.map_err(db_error(context))?;
        let delete = "DELETE FROM endpoints WHERE name = $1";
        self.delete_named(tx, delete, "endpoint", name, actor).await
    }

    /// The sealed config of the endpoint named `name` and the id of the key that sealed it.
    pub(crate) async fn sealed_endpoint(&self, name: &str) -> Result<(String, String)> {
        match self.sealed_endpoints(&[name]).await?.pop() {
            Some((_, sealed, key_id)) => Ok((sealed, key_id)),
            None => Err(Error::new(
                ErrorKind::NotFound,
                "reading an endpoint",
                format!("no endpoint named {name:?}"),
            )),
        }
    }

    /// (name, sealed config, key id) of those of the endpoints `names` that exist, in one
    /// read: the endpoints of a batch of leased jobs.
    pub(crate) async fn sealed_endpoints(
        &self,
        names: &[&str],
    ) -> Result<Vec<(String, String, String)>> {
        let context = "reading endpoints";
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let list: Vec<String> = (1..=names.len()).map(|n| format!("${n}")).collect();
        let sql = format!(
            "SELECT name, sealed_config, key_id FROM endpoints WHERE name IN ({})",
            list.join(", ")
        );
        let mut query = sqlx::query(&sql);
        for name in names {
            query = query.bind(*name);
        }
        let rows = query
            .fetch_all(&self.reader)
            .await
            .map_err(db_error(context))?;
        rows.iter()
            .map(|row| {
                let read = || -> Result<(String, String, String), sqlx::Error> {
                    Ok((
                        row.try_get("name")?,
                        row.try_get("sealed_config")?,
                        row.try_get("key_id")?,
                    ))
                };
                read().map_err(db_error(context))
            })
            .collect()
    }

    /// Every endpoint, secrets shown as `***`, with the bandwidth rates in force at `now`.
    pub async fn endpoints(&self, now: DateTime<Local>) -> Result<Vec<EndpointSummary>> {
        let rows = sqlx::query(
            "SELECT name, kind, public_config, max_concurrent, key_id, bandwidth FROM endpoints \
             ORDER BY name",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("listing endpoints"))?;
        rows.iter()
            .map(|row| {
                let read = || -> Result<EndpointSummary, sqlx::Error> {
                    let bandwidth: Option<String> = row.try_get("bandwidth")?;
                    let limit = bandwidth
                        .as_deref()
                        .and_then(|text| text.parse::<Bandwidth>().ok());
                    Ok(EndpointSummary {
                        bandwidth_now: limit
                            .as_ref()
                            .map_or(Rates::UNLIMITED, |l| l.rates_at(&now)),
                        bandwidth_next: limit
                            .as_ref()
                            .and_then(|l| l.next_change(&now))
                            .map(|(at, rates)| BandwidthChange { at, rates }),
                        bandwidth,
                        name: row.try_get("name")?,
                        kind: row.try_get("kind")?,
                        config: serde_json::from_str(&row.try_get::<String, _>("public_config")?)
                            .unwrap_or(Value::Null),
                        max_concurrent: row.try_get("max_concurrent")?,
                        key_id: row.try_get("key_id")?,
                    })
                };
                read().map_err(db_error("listing endpoints"))
            })
            .collect()
    }

    /// The endpoints sealed under another key than `current`: (name, max_concurrent).
    pub(crate) async fn endpoints_sealed_by_other_keys(
        &self,
        current: &str,
    ) -> Result<Vec<(String, u32)>> {
        let context = "rotating keys";
        let rows = sqlx::query("SELECT name, max_concurrent FROM endpoints WHERE key_id <> $1")
            .bind(current)
            .fetch_all(&self.pool)
            .await
            .map_err(db_error(context))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get("name").map_err(db_error(context))?;
                let max: i64 = row.try_get("max_concurrent").map_err(db_error(context))?;
                Ok((name, u32::try_from(max).unwrap_or(u32::MAX)))
            })
            .collect()
    }

    /// The endpoints and lease owner of every running (leased) job.
    pub(crate) async fn running_transfers(&self) -> Result<Vec<(String, String, String)>> {
        sqlx::query_as(
            "SELECT source_endpoint, destination_endpoint, lease_owner FROM jobs \
             WHERE state = 'leased' AND lease_owner IS NOT NULL",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(db_error("reading running transfers"))
    }

    /// Every endpoint's bandwidth limit as written: (name, limit or none).
    pub(crate) async fn endpoint_bandwidths(&self) -> Result<Vec<(String, Option<String>)>> {
        sqlx::query_as("SELECT name, bandwidth FROM endpoints")
            .fetch_all(&self.reader)
            .await
            .map_err(db_error("reading bandwidth limits"))
    }
}
