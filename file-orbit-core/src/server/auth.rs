//! Who is calling and what they may do: `Authorization: Bearer <key>` with an API key
//! (`fo_...`, compared by SHA-256: declared in the configuration, or managed in the store
//! and refused once expired or revoked) or an HS256 JWT (claim `role`); the role each
//! route needs; token buckets per caller and, for failed authentication, per client address.

use super::config::{ApiKeyEntry, RateLimit, Role, ServerConfig, hash_api_key};
use super::error::ApiError;
use super::keys::stored_role;
use crate::engine::Store;
use crate::secret::Secret;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    pub name: String,
    pub role: Role,
}

/// An API key or JWT checked: who it is, and what a session opened with it must recheck.
#[derive(Debug, Clone)]
pub struct Credential {
    pub principal: Principal,
    /// The API key's SHA-256 (hex); None for a JWT.
    pub key_sha256: Option<String>,
    /// A JWT's `exp` (seconds since the epoch).
    pub expires_at: Option<i64>,
}

/// The credentials the server accepts.
pub struct Authenticator {
    /// SHA-256 (hex) → entry, from the configuration.
    keys: HashMap<String, ApiKeyEntry>,
    jwt_secret: Option<Secret>,
    /// Where managed keys are (read on each use: a revocation holds at once on every node).
    store: Store,
}

#[derive(Deserialize)]
struct JwtHeader {
    alg: String,
}

#[derive(Deserialize)]
struct JwtClaims {
    role: Role,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
}

impl Authenticator {
    pub fn new(config: &ServerConfig, store: Store) -> Authenticator {
        Authenticator {
            keys: config
                .api_keys
                .iter()
                .map(|entry| (entry.sha256.to_ascii_lowercase(), entry.clone()))
                .collect(),
            jwt_secret: config.jwt_secret.clone().filter(|s| !s.is_empty()),
            store,
        }
    }

    /// The caller behind an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal, ApiError> {
        let header = header.ok_or_else(|| {
            ApiError::unauthorized("send Authorization: Bearer <API key or token>")
        })?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| ApiError::unauthorized("the Authorization header must be Bearer"))?;
        Ok(self.credential(token).await?.principal)
    }

    /// The caller behind an API key or JWT, with what a session opened with it must keep
    /// checking: the key's SHA-256, or the token's expiry.
    pub async fn credential(&self, token: &str) -> Result<Credential, ApiError> {
        if !token.starts_with("fo_") {
            let (principal, expires_at) = self.verify_jwt(token)?;
            return Ok(Credential {
                principal,
                key_sha256: None,
                expires_at,
            });
        }
        let hash = hash_api_key(token);
        let principal = self.key_by_hash(&hash).await?;
        Ok(Credential {
            principal,
            key_sha256: Some(hash),
            expires_at: None,
        })
    }

    /// The caller whose API key has SHA-256 `hash`, unless it is unknown, revoked or
    /// expired (checked on each use: a revocation holds at once on every node).
    pub async fn key_by_hash(&self, hash: &str) -> Result<Principal, ApiError> {
        if let Some(entry) = self.keys.get(hash) {
            return Ok(Principal {
                name: format!("key:{}", entry.name),
                role: entry.role,
            });
        }
        let Some(key) = self.store.api_key_by_hash(hash).await? else {
            return Err(ApiError::unauthorized("unknown API key"));
        };
        if key.revoked_at.is_some() {
            return Err(ApiError::unauthorized("this API key was revoked"));
        }
        if !key.usable_at(chrono::Utc::now().timestamp_millis()) {
            return Err(ApiError::unauthorized("this API key has expired"));
        }
        Ok(Principal {
            name: format!("key:{}", key.name),
            role: stored_role(&key)?,
        })
    }

    /// The caller behind an HS256 JWT, and its expiry (seconds since the epoch).
    fn verify_jwt(&self, token: &str) -> Result<(Principal, Option<i64>), ApiError> {
        let bad = || ApiError::unauthorized("invalid bearer token");
        let secret = self.jwt_secret.as_ref().ok_or_else(bad)?;
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let signing_input = &token[..header.len() + 1 + payload.len()];
        let header: JwtHeader = URL_SAFE_NO_PAD
            .decode(header)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(bad)?;
        if header.alg != "HS256" {
            return Err(bad());
        }
        let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| bad())?;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC takes any key length");
        mac.update(signing_input.as_bytes());
        mac.verify_slice(&signature).map_err(|_| bad())?;
        let claims: JwtClaims = URL_SAFE_NO_PAD
            .decode(payload)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(bad)?;
        let now = chrono::Utc::now().timestamp();
        if claims.exp.is_some_and(|exp| exp <= now) {
            return Err(ApiError::unauthorized("the bearer token has expired"));
        }
        if claims.nbf.is_some_and(|nbf| nbf > now) {
            return Err(ApiError::unauthorized("the bearer token is not valid yet"));
        }
        let principal = Principal {
            name: format!("jwt:{}", claims.sub.unwrap_or_default()),
            role: claims.role,
        };
        Ok((principal, claims.exp))
    }
}

/// Signs an HS256 JWT with `claims` (for tests and tooling).
pub fn sign_jwt(secret: &str, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}

/// A token bucket per caller name (or, for failed authentication, per client address).
pub struct RateLimiter {
    limit: RateLimit,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl RateLimiter {
    pub fn new(limit: RateLimit) -> RateLimiter {
        RateLimiter {
            limit,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `name`, or says in how many seconds one is available.
    pub fn check(&self, name: &str) -> Result<(), u64> {
        let now = Instant::now();
        let burst = self.limit.burst as f64;
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > 10_000 {
            // Bounded memory: forget full buckets (their owners lose nothing).
            let rate = self.limit.per_second;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
        }
        let (tokens, at) = buckets.entry(name.to_string()).or_insert((burst, now));
        *tokens =
            (*tokens + now.duration_since(*at).as_secs_f64() * self.limit.per_second).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.limit.per_second).ceil().max(1.0) as u64)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::config::generate_api_key;
    use serde_json::json;

    #[tokio::test]
    async fn api_keys_and_jwts_authenticate() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("auth.db").display());
        let store = Store::open(&url).await.unwrap();
        let (key, entry) = generate_api_key("ci", Role::Operator);
        let config = ServerConfig {
            api_keys: vec![entry],
            jwt_secret: Some(Secret::new("s3cret")),
            ..Default::default()
        };
        let auth = Authenticator::new(&config, store);
        let bearer = format!("Bearer {}", key.expose());
        assert_eq!(
            auth.authenticate(Some(&bearer)).await.unwrap().role,
            Role::Operator
        );
        assert!(auth.authenticate(Some("Bearer fo_nope")).await.is_err());
        assert!(auth.authenticate(None).await.is_err());
        let token = sign_jwt("s3cret", &json!({"role": "viewer", "sub": "ann"}));
        let who = auth
            .authenticate(Some(&format!("Bearer {token}")))
            .await
            .unwrap();
        assert_eq!((who.role, who.name.as_str()), (Role::Viewer, "jwt:ann"));
        let forged = sign_jwt("other", &json!({"role": "admin"}));
        assert!(
            auth.authenticate(Some(&format!("Bearer {forged}")))
                .await
                .is_err()
        );
        let expired = sign_jwt("s3cret", &json!({"role": "admin", "exp": 1}));
        assert!(
            auth.authenticate(Some(&format!("Bearer {expired}")))
                .await
                .is_err()
        );
    }

    #[test]
    fn buckets_refill() {
        let limiter = RateLimiter::new(RateLimit {
            per_second: 1.0,
            burst: 2,
        });
        assert!(limiter.check("a").is_ok());
        assert!(limiter.check("a").is_ok());
        assert_eq!(limiter.check("a"), Err(1));
        assert!(limiter.check("b").is_ok());
    }
}
