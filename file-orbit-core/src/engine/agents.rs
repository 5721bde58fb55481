//! Agents as stored: created by an admin with a one-time enrolment token, enrolled (the
//! token exchanged for a credential), heard from, revoked; only SHA-256s of tokens and
//! credentials are kept, each change is audited in its transaction. Also whether some
//! agent can run a job whose endpoints are placed (checked at submission). What agents do
//! with jobs is `agent_work`'s.

use super::audit;
use super::store::{Store, db_error, now_ms};
use super::{JobRequest, Orbit};
use crate::endpoint::{EndpointPlacement, check_agent_names, valid_agent_name};
use crate::error::{Error, ErrorKind, Result};
use crate::secret::{random_token, sha256_hex};
use crate::transfer::TransferSpec;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::any::AnyRow;
use std::collections::HashMap;
use std::time::Duration;

/// The prefix of enrolment tokens.
pub const ENROLMENT_PREFIX: &str = "foe_";
/// The prefix of agent credentials.
pub const CREDENTIAL_PREFIX: &str = "foa_";
/// The most backends an agent may declare, and the longest host or version it may send.
const MAX_BACKENDS: usize = 32;
const MAX_TEXT: usize = 255;
/// The most slots an agent may declare.
pub const MAX_AGENT_SLOTS: u32 = 1024;

/// An agent as listed.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct AgentSummary {
    pub name: String,
    pub labels: Vec<String>,
    /// `pending` (not enrolled yet), `online` (heard from within three leases),
    /// `offline`, `revoked`.
    pub status: String,
    pub host: Option<String>,
    pub version: Option<String>,
    pub slots: i64,
    pub backends: Vec<String>,
    /// Milliseconds since the Unix epoch, like every time below.
    pub created_at: i64,
    pub enrolled_at: Option<i64>,
    pub last_contact: Option<i64>,
    pub revoked_at: Option<i64>,
    /// Until when the enrolment token may be used (pending agents only).
    pub enrolment_expires_at: Option<i64>,
    /// The jobs it runs now.
    pub running: Vec<i64>,
}

/// A new agent's one-time enrolment token: shown once.
#[cfg_attr(feature = "server", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Enrolment {
    pub name: String,
    pub labels: Vec<String>,
    pub enrolment_token: String,
    pub expires_at: i64,
}

/// An agent as its credential identifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentIdentity {
    pub name: String,
    pub labels: Vec<String>,
}

impl AgentIdentity {
    /// The lease owner of slot `slot`: `agent:{name}/{slot}`.
    pub fn owner(&self, slot: u32) -> String {
        format!("{}{slot}", owner_prefix(&self.name))
    }
}

/// What every lease owner of agent `name` starts with.
pub(crate) fn owner_prefix(name: &str) -> String {
    format!("agent:{name}/")
}

/// What an agent says of itself when it enrols and then regularly.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentHello {
    pub host: String,
    pub version: String,
    pub slots: u32,
    #[serde(default)]
    pub backends: Vec<String>,
    /// True at the agent's start: the leases it still holds are from its previous run.
    #[serde(default)]
    pub started: bool,
}

impl AgentHello {
    /// Checks the fields; the error names the field.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, why: String| Err(Error::invalid_field("agent", field, why));
        for (field, text) in [("host", &self.host), ("version", &self.version)] {
            if text.is_empty() || text.len() > MAX_TEXT || text.chars().any(char::is_control) {
                return invalid(field, format!("must be 1-{MAX_TEXT} characters of text"));
            }
        }
        if self.slots == 0 || self.slots > MAX_AGENT_SLOTS {
            return invalid("slots", format!("must be 1-{MAX_AGENT_SLOTS}"));
        }
        if self.backends.len() > MAX_BACKENDS
            || self
                .backends
                .iter()
                .any(|backend| !valid_agent_name(backend))
        {
            return invalid(
                "backends",
                format!("at most {MAX_BACKENDS} names of a-z 0-9 . _ -"),
            );
        }
        Ok(())
    }
}

const AGENT_COLUMNS: &str = "name, labels, host, version, slots, backends, created_at, \
     enrolled_at, last_contact, revoked_at, enrolment_expires_at";

fn agent_from_row(row: &AnyRow, online_within: i64, now: i64) -> Result<AgentSummary> {
    let read = || -> std::result::Result<AgentSummary, sqlx::Error> {
        let labels: String = row.try_get("labels")?;
        let backends: String = row.try_get("backends")?;
        let enrolled_at: Option<i64> = row.try_get("enrolled_at")?;
        let last_contact: Option<i64> = row.try_get("last_contact")?;
        let revoked_at: Option<i64> = row.try_get("revoked_at")?;
        let status = match (revoked_at, enrolled_at, last_contact) {
            (Some(_), _, _) => "revoked",
            (None, None, _) => "pending",
            (None, Some(_), Some(seen)) if now - seen <= online_within => "online",
            _ => "offline",
        };
        Ok(AgentSummary {
            name: row.try_get("name")?,
            labels: serde_json::from_str(&labels).unwrap_or_default(),
            status: status.into(),
            host: row.try_get("host")?,
            version: row.try_get("version")?,
            slots: row.try_get("slots")?,
            backends: serde_json::from_str(&backends).unwrap_or_default(),
            created_at: row.try_get("created_at")?,
            enrolled_at,
            last_contact,
            revoked_at,
            enrolment_expires_at: match enrolled_at {
                None => row.try_get("enrolment_expires_at")?,
                Some(_) => None,
            },
            running: Vec::new(),
        })
    };
    read().map_err(db_error("reading an agent"))
}

fn to_text<T: Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "[]".into())
}

impl Store {
    /// Stores agent `name` waiting for enrolment under the token's SHA-256; a revoked
    /// agent's name may be used again (its old credential stays refused).
    async fn create_agent(
        &self,
        name: &str,
        labels: &[String],
        token_sha256: &str,
        expires_at: i64,
        actor: &str,
    ) -> Result<()> {
        let context = format!("creating agent {name:?}");
        let mut tx = self.pool.begin().await.map_err(db_error(&context))?;
        let created = sqlx::query(
            "INSERT INTO agents (name, labels, enrolment_hash, enrolment_expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (name) DO UPDATE SET labels = $2, enrolment_hash = $3, \
                 enrolment_expires_at = $4, created_at = $5, credential_hash = NULL, host = NULL, \
                 version = NULL, slots = 0, backends = '[]', enrolled_at = NULL, \
                 last_contact = NULL, revoked_at = NULL \
                 WHERE agents.revoked_at IS NOT NULL",
        )
        .bind(name)
        .bind(to_text(labels))
        .bind(token_sha256)
        .bind(expires_at)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .map_err(db_error(&context))?
        .rows_affected();
        if created == 0 {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                context,
                format!("an agent named {name:?} exists; revoke it first"),
            )
            .with_field("name"));
        }
        audit::append(
            &mut tx,
            self.backend,
            actor,
            "agent.created",
            &format!("agent/{name}"),
            "ok",
            &json!({"labels": labels, "enrolment_expires_at": expires_at}),
        )
        .await?;
        tx.commit().await.map_err(db_error(&context))
    }

    /// Exchanges an unused, unexpired enrolment token for the credential: the agent's name,
    /// or None when the token is unknown, used or expired.
    async fn enrol_agent(
        &self,
        token_sha256: &str,
        credential_sha256: &str,
        hello: &AgentHello,
    ) -> Result<Option<String>> {
        let context = "enrolling an agent";
        let now = now_ms();
        let mut tx = self.pool.begin().await.map_err(db_error(context))?;
        let name: Option<String> = sqlx::query_scalar(
            "UPDATE agents SET enrolment_hash = NULL, enrolment_expires_at = NULL, \
                 credential_hash = $1, enrolled_at = $2, last_contact = $2, host = $3, \
                 version = $4, slots = $5, backends = $6 \
             WHERE enrolment_hash = $7 AND enrolment_expires_at >= $2 AND revoked_at IS NULL \
             RETURNING name",
        )
        .bind(credential_sha256)
        .bind(now)
        .bind(&hello.host)
        .bind(&hello.version)
        .bind(hello.slots as i64)
        .bind(to_text(&hello.backends))
        .bind(token_sha256)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db_error(context))?;
        if let Some(name) = &name {
            audit::append(
                &mut tx,
                self.backend,
                &format!("agent:{name}"),
                "agent.enrolled",
                &format!("agent/{name}"),
                "ok",
                &json!({"host": hello.host, "version": hello.version, "slots": hello.slots}),
            )
            .await?;
        }
        tx.commit().await.map_err(db_error(context))?;
        Ok(name)
    }

    /// The unrevoked agent whose credential has this SHA-256.
    async fn agent_by_credential(&self, credential_sha256: &str) -> Result<Option<AgentIdentity>> {
        let row = sqlx::query(
            "SELECT name, labels FROM agents WHERE credential_hash = $1 AND revoked_at IS NULL",
        )
        .bind(credential_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(db_error("finding an agent"))?;
        row.map(|row| {
            let labels: String = row.try_get("labels")?;
            Ok(AgentIdentity {
                name: row.try_get("name")?,
                labels: serde_json::from_str(&labels).unwrap_or_default(),
            })
        })
        .transpose()
        .map_err(db_error("finding an agent"))
    }

    /// Records an agent's hello (host, version, slots, backends, last contact).
    async fn agent_hello(&self, name: &str, hello: &AgentHello) -> Result<()> {
        sqlx::query(
            "UPDATE agents SET host = $1, version = $2, slots = $3, backends = $4, \
                 last_contact = $5 WHERE name = $6 AND revoked_at IS NULL",
        )
        .bind(&hello.host)
        .bind(&hello.version)
        .bind(hello.slots as i64)
        .bind(to_text(&hello.backends))
        .bind(now_ms())
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(db_error("recording an agent's hello"))?;
        Ok(())
    }

    /// Revokes agent `name` (its credential and any unused token), audited. NotFound when
    /// there is no such agent; revoking a revoked agent changes nothing.
    async fn revoke_agent(&self, name: &str, actor: &str) -> Result<()> {
        let set = "revoked_at = $1, credential_hash = NULL, enrolment_hash = NULL";
        self.revoke_named(("agents", "agent", "agent"), set, name, actor)
            .await
    }

    /// Every agent (`name` alone when given), with the jobs each runs now.
    async fn agents(&self, name: Option<&str>, online_within: i64) -> Result<Vec<AgentSummary>> {
        let context = "listing agents";
        let now = now_ms();
        let (one, all) = (
            format!("SELECT {AGENT_COLUMNS} FROM agents WHERE name = $1"),
            format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY name"),
        );
        let rows = match name {
            Some(name) => sqlx::query(&one).bind(name),
            None => sqlx::query(&all),
        }
        .fetch_all(&self.pool)
        .await
        .map_err(db_error(context))?;
        let mut agents = rows
            .iter()
            .map(|row| agent_from_row(row, online_within, now))
            .collect::<Result<Vec<_>>>()?;
        for (id, owner) in self.agent_leases(None).await? {
            let holder = owner
                .strip_prefix("agent:")
                .and_then(|rest| rest.split_once('/'));
            if let Some(agent) =
                holder.and_then(|(holder, _)| agents.iter_mut().find(|agent| agent.name == holder))
            {
                agent.running.push(id);
            }
        }
        Ok(agents)
    }

    /// The leased jobs of agent `name` (of every agent when none): (job id, lease owner).
    pub(crate) async fn agent_leases(&self, name: Option<&str>) -> Result<Vec<(i64, String)>> {
        let pattern = match name {
            Some(name) => format!("{}%", owner_prefix(name).replace('_', "\\_")),
            None => "agent:%".into(),
        };
        let rows = sqlx::query(
            "SELECT id, lease_owner FROM jobs WHERE state = 'leased' \
                 AND lease_owner LIKE $1 ESCAPE '\\' ORDER BY id",
        )
        .bind(pattern)
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading the jobs of agents"))?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error("reading the jobs of agents"))
    }

    /// Every endpoint that has a placement.
    async fn placed_endpoints(&self) -> Result<HashMap<String, EndpointPlacement>> {
        let rows = sqlx::query("SELECT name, placement FROM endpoints WHERE placement IS NOT NULL")
            .fetch_all(&self.pool)
            .await
            .map_err(db_error("reading endpoint placements"))?;
        rows.iter()
            .map(|row| {
                let name: String = row.try_get(0)?;
                let placement: Option<String> = row.try_get(1)?;
                Ok((name, EndpointPlacement::from_stored(placement.as_deref())))
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error("reading endpoint placements"))
    }

    /// Every unrevoked, enrolled agent's identity.
    async fn enrolled_agents(&self) -> Result<Vec<AgentIdentity>> {
        let rows = sqlx::query(
            "SELECT name, labels FROM agents WHERE revoked_at IS NULL AND enrolled_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db_error("reading agents"))?;
        rows.iter()
            .map(|row| {
                let labels: String = row.try_get(1)?;
                Ok(AgentIdentity {
                    name: row.try_get(0)?,
                    labels: serde_json::from_str(&labels).unwrap_or_default(),
                })
            })
            .collect::<std::result::Result<_, sqlx::Error>>()
            .map_err(db_error("reading agents"))
    }
}

impl Orbit {
    /// Creates agent `name` with `labels` and returns its one-time enrolment token, valid
    /// for `ttl`. Audited as `agent.created`.
    pub async fn create_agent(
        &self,
        name: &str,
        labels: &[String],
        ttl: Duration,
    ) -> Result<Enrolment> {
        let context = "agent";
        if !valid_agent_name(name) {
            return Err(Error::invalid_field(
                context,
                "name",
                format!(
                    "{name:?} is not a valid agent name (1-63 of a-z 0-9 . _ -, starting with a letter or digit)"
                ),
            ));
        }
        check_agent_names(labels, "label")
            .map_err(|why| Error::invalid_field(context, "labels", why))?;
        let token = format!("{ENROLMENT_PREFIX}{}", random_token());
        let expires_at = now_ms() + ttl.as_millis() as i64;
        self.store()
            .create_agent(name, labels, &sha256_hex(&token), expires_at, self.actor())
            .await?;
        Ok(Enrolment {
            name: name.to_string(),
            labels: labels.to_vec(),
            enrolment_token: token,
            expires_at,
        })
    }

    /// Every agent, with its status and the jobs it runs.
    pub async fn agents(&self) -> Result<Vec<AgentSummary>> {
        self.store().agents(None, self.online_within()).await
    }

    pub async fn agent(&self, name: &str) -> Result<AgentSummary> {
        self.store()
            .agents(Some(name), self.online_within())
            .await?
            .pop()
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::NotFound,
                    "agent",
                    format!("no agent named {name:?}"),
                )
            })
    }

    /// An agent is online when heard from within three leases.
    fn online_within(&self) -> i64 {
        3 * self.options().lease.as_millis() as i64
    }

    /// Revokes agent `name`: its next call is refused and its running jobs go back to the
    /// queue at once (their attempts do not count). Audited as `agent.revoked`.
    pub async fn revoke_agent(&self, name: &str) -> Result<()> {
        self.store().revoke_agent(name, self.actor()).await?;
        self.release_agent_leases(name).await
    }

    /// Puts every job agent `name` holds back in the queue, as a release.
    pub(crate) async fn release_agent_leases(&self, name: &str) -> Result<()> {
        for (id, owner) in self.store().agent_leases(Some(name)).await? {
            self.store().release(id, &owner).await?;
        }
        self.wake_workers();
        Ok(())
    }

    /// Exchanges an enrolment token for the agent's credential (shown once, kept only as
    /// its SHA-256): (agent name, credential). Authentication error for an unknown, used
    /// or expired token.
    pub async fn enrol_agent(&self, token: &str, hello: &AgentHello) -> Result<(String, String)> {
        hello.validate()?;
        let credential = format!("{CREDENTIAL_PREFIX}{}", random_token());
        let name = self
            .store()
            .enrol_agent(&sha256_hex(token), &sha256_hex(&credential), hello)
            .await?
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Authentication,
                    "agent enrolment",
                    "the enrolment token is unknown, used or expired; create the agent again",
                )
            })?;
        Ok((name, credential))
    }

    /// The unrevoked agent a credential belongs to.
    pub async fn agent_by_credential(&self, credential: &str) -> Result<Option<AgentIdentity>> {
        if !credential.starts_with(CREDENTIAL_PREFIX) {
            return Ok(None);
        }
        self.store()
            .agent_by_credential(&sha256_hex(credential))
            .await
    }

    /// Records an agent's hello; at its start, its previous run's jobs go back to the queue.
    pub async fn agent_hello(&self, agent: &AgentIdentity, hello: &AgentHello) -> Result<()> {
        hello.validate()?;
        self.store().agent_hello(&agent.name, hello).await?;
        if hello.started {
            self.release_agent_leases(&agent.name).await?;
        }
        Ok(())
    }

    /// What decides whether submitted jobs can run somewhere: the placed endpoints and,
    /// when there are any, the enrolled agents (read once for a batch).
    pub(crate) async fn placement_check(&self) -> Result<PlacementCheck> {
        let placed = self.store().placed_endpoints().await?;
        let agents = match placed.is_empty() {
            true => Vec::new(),
            false => self.store().enrolled_agents().await?,
        };
        Ok(PlacementCheck { placed, agents })
    }
}

/// The placed endpoints and enrolled agents a submission is checked against.
pub(crate) struct PlacementCheck {
    placed: HashMap<String, EndpointPlacement>,
    agents: Vec<AgentIdentity>,
}

impl PlacementCheck {
    /// Refuses a request whose transfer, or one of whose next hops, has endpoints placed
    /// so that no enrolled agent may run it: the error names `destination` or `source`
    /// (`next_hops[i].destination`, ...).
    pub(crate) fn check_request(&self, request: &JobRequest) -> Result<()> {
        self.check(&request.spec)?;
        for (index, hop) in request.next_hops.iter().enumerate() {
            self.check(hop)
                .map_err(|err| err.within(&format!("next_hops[{index}]")))?;
        }
        Ok(())
    }

    /// As `check_request`, for one transfer.
    fn check(&self, spec: &TransferSpec) -> Result<()> {
        let of = |name: &str| self.placed.get(name).cloned().unwrap_or_default();
        let (source, destination) = (of(&spec.source), of(&spec.destination));
        if source.is_anywhere() && destination.is_anywhere() {
            return Ok(());
        }
        if self.agents.iter().any(|agent| {
            source.admits(&agent.name, &agent.labels)
                && destination.admits(&agent.name, &agent.labels)
        }) {
            return Ok(());
        }
        let field = match destination.is_anywhere() {
            true => "source",
            false => "destination",
        };
        Err(Error::invalid_field(
            "job request",
            field,
            format!(
                "no enrolled agent may run this job: source {:?} runs on {}, destination {:?} on {}",
                spec.source,
                source.describe(),
                spec.destination,
                destination.describe()
            ),
        ))
    }
}
