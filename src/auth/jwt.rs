//! Verifying bearer JWTs: HS256 with a shared secret, RS256/ES256 with public keys from a JWKS
//! file or URL (cached, refreshed periodically and when a token names an unknown key, so a
//! rotation needs no restart). `exp`, `nbf`, `iss`, `aud` and `sub` are checked, with a small
//! clock-skew allowance; `alg: none` and algorithm confusion are refused.

use std::{
    collections::HashMap,
    path::PathBuf,
    time::{Duration, Instant},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header, jwk::JwkSet};
use serde::Deserialize;
use tokio::sync::RwLock;

use super::{Principal, Scope};

/// Why a request is not authenticated. Clients get `UNAUTHENTICATED`; the reason is logged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no bearer token")]
    Missing,
    /// Not `Bearer <token>`.
    #[error("the Authorization header is not a bearer token")]
    Malformed,
    /// The token failed verification.
    #[error("invalid token: {0}")]
    Invalid(String),
}

/// Where public keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS document on disk.
    File(PathBuf),
    /// A JWKS document over HTTP(S).
    Url(String),
}

#[derive(Debug, Deserialize)]
struct Claims {
    sub: Option<String>,
    /// Checked by `jsonwebtoken`; kept to bound how long a verified token is remembered.
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    scp: Option<ScopeList>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ScopeList {
    Many(Vec<String>),
    One(String),
}

struct KeyCache {
    keys: HashMap<String, (DecodingKey, Algorithm)>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last fetch, successful or not.
    attempted_at: Option<Instant>,
}

/// How often the JWKS is fetched.
#[derive(Debug, Clone, Copy)]
pub struct JwksTiming {
    /// Keys older than this are fetched again before use.
    pub refresh_every: Duration,
    /// Fetches (including those for a token naming an unknown key) are at least this far
    /// apart.
    pub min_refetch: Duration,
}

impl JwksTiming {
    /// Refresh every `refresh_every`, and on an unknown key at most every 10 s (or every
    /// `refresh_every`, when shorter).
    pub fn every(refresh_every: Duration) -> Self {
        JwksTiming {
            refresh_every,
            min_refetch: refresh_every.min(Duration::from_secs(10)),
        }
    }
}

impl Default for JwksTiming {
    fn default() -> Self {
        JwksTiming::every(Duration::from_secs(300))
    }
}

/// The usable keys of a set, by id: RSA keys for RS256, P-256 keys for ES256.
fn decoding_keys(set: &JwkSet) -> HashMap<String, (DecodingKey, Algorithm)> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let algorithm = match &jwk.algorithm {
            jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Algorithm::RS256,
            jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
            _ => continue,
        };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid, (key, algorithm));
        }
    }
    keys
}

/// The longest token accepted (real ones are well under 2 KiB).
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The longest `sub` accepted: the subject is recorded in the audit trail (`VARCHAR(255)`).
pub const MAX_SUBJECT_CHARS: usize = 255;

/// A subject is 1..=255 characters without control characters (NUL included, which
/// PostgreSQL text cannot hold): it goes into the audit trail of every write.
fn check_subject(sub: Option<String>) -> Result<Option<String>, AuthError> {
    match sub {
        Some(sub)
            if sub.is_empty()
                || sub.chars().count() > MAX_SUBJECT_CHARS
                || sub.chars().any(char::is_control) =>
        {
            Err(AuthError::Invalid(format!(
                "the sub claim must be 1 to {MAX_SUBJECT_CHARS} characters without control characters"
            )))
        }
        other => Ok(other),
    }
}

/// How many verified tokens are remembered at most (a few hundred bytes each); when full, the
/// memory is emptied and refilled by the tokens in use.
const VERIFIED_CAPACITY: usize = 4096;

/// A token that passed verification: who it names and the window in which it is valid.
struct VerifiedToken {
    principal: Principal,
    not_before: u64,
    expires: u64,
    /// For a token signed with a JWKS key: when the key set it was checked against goes
    /// stale. After that the token is verified again (which refreshes the set first).
    keys_stale_at: Option<Instant>,
}

/// Seconds since the Unix epoch (the unit of `exp` and `nbf`).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Verifies tokens against the configured keys and claims.
///
/// A client sends the same token with every request until it expires, so tokens that passed
/// are remembered by their exact text (the signature covers every byte) and only their time
/// window is checked again; a token is never accepted outside `nbf`..`exp` (with the leeway).
/// The memory is emptied whenever the key set is reloaded, so a key removed from the JWKS
/// stops being honoured as soon as the server sees the new set.
pub struct JwtVerifier {
    verified: std::sync::RwLock<HashMap<Box<str>, VerifiedToken>>,
    secret: Option<DecodingKey>,
    source: Option<KeySource>,
    cache: RwLock<KeyCache>,
    refreshing: tokio::sync::Mutex<()>,
    timing: JwksTiming,
    issuer: String,
    audience: String,
    leeway: u64,
    http: reqwest::Client,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("hs256", &self.secret.is_some())
            .field("source", &self.source)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .finish()
    }
}

impl JwtVerifier {
    /// A verifier for tokens from `issuer` for `audience`, signed with `hs256_secret` and/or a
    /// key of `source`. Loads the keys once now, so a bad configuration fails at start.
    pub async fn new(
        hs256_secret: Option<&str>,
        source: Option<KeySource>,
        issuer: &str,
        audience: &str,
        leeway: Duration,
        timing: JwksTiming,
    ) -> Result<Self, String> {
        if hs256_secret.is_none() && source.is_none() {
            return Err(
                "no key configured (AUTH_HS256_SECRET, AUTH_JWKS_FILE or AUTH_JWKS_URL)".into(),
            );
        }
        if hs256_secret.is_some_and(|s| s.len() < 32) {
            return Err("AUTH_HS256_SECRET must be at least 32 characters".into());
        }
        let verifier = JwtVerifier {
            verified: std::sync::RwLock::new(HashMap::new()),
            secret: hs256_secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            source,
            cache: RwLock::new(KeyCache {
                keys: HashMap::new(),
                fetched_at: None,
                attempted_at: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
            timing,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: leeway.as_secs(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .map_err(|e| e.to_string())?,
        };
        if verifier.source.is_some() {
            let keys = decoding_keys(&verifier.fetch().await?);
            if keys.is_empty() {
                return Err("the JWKS has no usable key (RSA or P-256, with a `kid`)".into());
            }
            tracing::info!(keys = keys.len(), "JWKS loaded");
            let mut cache = verifier.cache.write().await;
            cache.keys = keys;
            cache.fetched_at = Some(Instant::now());
            cache.attempted_at = cache.fetched_at;
        }
        Ok(verifier)
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        match &self.source {
            None => Ok(JwkSet { keys: Vec::new() }),
            Some(KeySource::File(path)) => {
                let text = tokio::fs::read_to_string(path)
                    .await
                    .map_err(|e| format!("reading {}: {e}", path.display()))?;
                serde_json::from_str(&text).map_err(|e| format!("parsing {}: {e}", path.display()))
            }
            Some(KeySource::Url(url)) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                let response = response
                    .error_for_status()
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                response
                    .json()
                    .await
                    .map_err(|e| format!("parsing {url}: {e}"))
            }
        }
    }

    /// Fetches the key set again (one fetch at a time; callers that waited for another
    /// caller's fetch use its result). A failed fetch keeps the keys we have.
    async fn refresh(&self, seen: Option<Instant>) {
        let _one_at_a_time = self.refreshing.lock().await;
        if self.cache.read().await.attempted_at != seen {
            return;
        }
        let result = self.fetch().await;
        let mut cache = self.cache.write().await;
        cache.attempted_at = Some(Instant::now());
        match result {
            Ok(set) => {
                cache.keys = decoding_keys(&set);
                self.forget_verified();
                cache.fetched_at = cache.attempted_at;
                tracing::info!(keys = cache.keys.len(), "JWKS loaded");
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not refresh the JWKS; keeping the keys we have")
            }
        }
    }

    /// The key for `kid`, refreshing the set first when it is stale or does not know `kid`
    /// (fetches are at least [`JwksTiming::min_refetch`] apart, so unknown ids cannot make us
    /// hammer the key server).
    async fn key(&self, kid: Option<&str>) -> Result<(DecodingKey, Algorithm), AuthError> {
        let lookup = |cache: &KeyCache| match kid {
            Some(kid) => cache.keys.get(kid).cloned(),
            // A token without `kid` is accepted only when there is exactly one key.
            None if cache.keys.len() == 1 => cache.keys.values().next().cloned(),
            None => None,
        };
        let (found, refresh, seen) = {
            let cache = self.cache.read().await;
            let stale = cache
                .fetched_at
                .is_none_or(|t| t.elapsed() > self.timing.refresh_every);
            let may_fetch = cache
                .attempted_at
                .is_none_or(|t| t.elapsed() >= self.timing.min_refetch);
            let found = lookup(&cache);
            let refresh = (stale || found.is_none()) && may_fetch;
            (found, refresh, cache.attempted_at)
        };
        if !refresh {
            return found.ok_or_else(|| AuthError::Invalid("unknown signing key".into()));
        }
        self.refresh(seen).await;
        let cache = self.cache.read().await;
        lookup(&cache).ok_or_else(|| AuthError::Invalid("unknown signing key".into()))
    }

    /// Forgets every remembered token (their keys may be gone).
    fn forget_verified(&self) {
        if let Ok(mut verified) = self.verified.write() {
            verified.clear();
        }
    }

    /// The caller of a token verified before, when `now` is inside its window.
    fn remembered(&self, token: &str, now: u64) -> Option<Principal> {
        let verified = self.verified.read().ok()?;
        let hit = verified.get(token)?;
        let keys_fresh = hit.keys_stale_at.is_none_or(|t| Instant::now() < t);
        (keys_fresh
            && now + self.leeway >= hit.not_before
            && now <= hit.expires.saturating_add(self.leeway))
        .then(|| hit.principal.clone())
    }

    /// Verifies a token and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        // Bounded before anything is decoded (and before it could be remembered).
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid(format!(
                "the token is {} bytes; at most {MAX_TOKEN_BYTES} are accepted",
                token.len()
            )));
        }
        if let Some(principal) = self.remembered(token, unix_now()) {
            return Ok(principal);
        }
        let verified_token = self.verify_signed(token).await?;
        let principal = verified_token.principal.clone();
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
            verified.insert(token.into(), verified_token);
        }
        Ok(principal)
    }

    /// Full verification: signature, algorithm, claims.
    async fn verify_signed(&self, token: &str) -> Result<VerifiedToken, AuthError> {
        let header = decode_header(token).map_err(|e| AuthError::Invalid(e.to_string()))?;
        let (key, algorithm, keys_stale_at) = match header.alg {
            Algorithm::HS256 => match &self.secret {
                Some(secret) => (secret.clone(), Algorithm::HS256, None),
                None => return Err(AuthError::Invalid("HS256 tokens are not accepted".into())),
            },
            Algorithm::RS256 | Algorithm::ES256 if self.source.is_some() => {
                let (key, algorithm) = self.key(header.kid.as_deref()).await?;
                if algorithm != header.alg {
                    return Err(AuthError::Invalid(
                        "the token's algorithm does not match its key".into(),
                    ));
                }
                let fetched_at = self.cache.read().await.fetched_at;
                let stale_at =
                    fetched_at.map_or_else(Instant::now, |t| t + self.timing.refresh_every);
                (key, algorithm, Some(stale_at))
            }
            other => {
                return Err(AuthError::Invalid(format!(
                    "algorithm {other:?} is not accepted"
                )));
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.leeway;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = decode::<Claims>(token, &key, &validation)
            .map_err(|e| AuthError::Invalid(e.to_string()))?;
        let names: Vec<String> = match (data.claims.scope, data.claims.scp) {
            (Some(scope), _) => scope.split_whitespace().map(str::to_owned).collect(),
            (None, Some(ScopeList::Many(list))) => list,
            (None, Some(ScopeList::One(one))) => {
                one.split_whitespace().map(str::to_owned).collect()
            }
            (None, None) => Vec::new(),
        };
        let subject = check_subject(data.claims.sub)?;
        let principal = Principal::new(subject, names.iter().filter_map(|n| Scope::parse(n)));
        Ok(VerifiedToken {
            principal,
            not_before: data.claims.nbf.unwrap_or(0),
            expires: data.claims.exp,
            keys_stale_at,
        })
    }
}
