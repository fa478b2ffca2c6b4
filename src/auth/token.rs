//! Minting HS256 tokens for development and tests (`titanbay token`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header, encode};
use serde::Serialize;

use super::Scope;

/// What a minted token says.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// The `iss` claim.
    pub issuer: &'a str,
    /// The `aud` claim.
    pub audience: &'a str,
    /// The `sub` claim (shown in the audit trail).
    pub subject: &'a str,
    /// The scopes granted (the `scope` claim, space-separated).
    pub scopes: &'a [Scope],
    /// How long the token is valid.
    pub ttl: Duration,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    scope: String,
    iat: u64,
    nbf: u64,
    exp: u64,
}

/// Scope names, separated by spaces or commas; an unknown name is an error.
pub fn parse_scopes(list: &str) -> Result<Vec<Scope>, String> {
    list.split([' ', ','])
        .filter(|n| !n.is_empty())
        .map(|n| {
            Scope::parse(n).ok_or_else(|| {
                let known: Vec<_> = Scope::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown scope `{n}` (known: {})", known.join(", "))
            })
        })
        .collect()
}

/// An HS256 token signed with `secret`.
pub fn mint_hs256(secret: &str, request: &TokenRequest<'_>) -> Result<String, String> {
    if secret.len() < 32 {
        return Err("the HS256 secret must be at least 32 characters".into());
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs();
    let claims = Claims {
        iss: request.issuer,
        aud: request.audience,
        sub: request.subject,
        scope: request
            .scopes
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        iat: now,
        nbf: now,
        exp: now + request.ttl.as_secs(),
    };
    encode(
        &Header::default(),
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scope_lists_parse_with_spaces_or_commas_and_reject_unknown_names() {
        assert_eq!(
            parse_scopes("funds:read, pii:read").unwrap(),
            [Scope::FundsRead, Scope::PiiRead]
        );
        assert!(parse_scopes("funds:read admin").is_err());
        assert!(mint_hs256("short", &request(&[])).is_err());
    }

    #[tokio::test]
    async fn minted_tokens_verify() {
        let secret = "0123456789abcdef0123456789abcdef";
        let token = mint_hs256(secret, &request(&[Scope::FundsRead])).unwrap();
        let verifier = super::super::JwtVerifier::new(
            Some(secret),
            None,
            "iss",
            "aud",
            Duration::from_secs(0),
            Default::default(),
        )
        .await
        .unwrap();
        let principal = verifier.verify(&token).await.unwrap();
        assert_eq!(principal.subject.as_deref(), Some("dev"));
        assert!(principal.has(Scope::FundsRead) && !principal.has(Scope::PiiRead));
    }

    fn request(scopes: &[Scope]) -> TokenRequest<'_> {
        TokenRequest {
            issuer: "iss",
            audience: "aud",
            subject: "dev",
            scopes,
            ttl: Duration::from_secs(60),
        }
    }
}
