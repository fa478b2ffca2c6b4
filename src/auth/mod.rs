//! Access control: who is calling (a bearer JWT, checked on every GraphQL request) and what
//! they may do (scopes).
//!
//! Development without an auth configuration runs open (every scope, and a loud warning at
//! start); production refuses to start without one (see `startup`).

mod jwt;
mod token;

use std::fmt;

pub use jwt::{AuthError, JwksTiming, JwtVerifier, KeySource};
pub use token::{TokenRequest, mint_hs256, parse_scopes};

/// A permission a token can carry (the `scope` claim, space-separated, or `scp`, a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read funds.
    FundsRead,
    /// Create and update funds.
    FundsWrite,
    /// Read investors (without personal data).
    InvestorsRead,
    /// Create investors.
    InvestorsWrite,
    /// Read investments, and the aggregates over them.
    InvestmentsRead,
    /// Create investments.
    InvestmentsWrite,
    /// Read investors' personal data (email).
    PiiRead,
    /// Read the audit trail.
    AuditRead,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 8] = [
        Scope::FundsRead,
        Scope::FundsWrite,
        Scope::InvestorsRead,
        Scope::InvestorsWrite,
        Scope::InvestmentsRead,
        Scope::InvestmentsWrite,
        Scope::PiiRead,
        Scope::AuditRead,
    ];

    /// The scope's name in tokens.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FundsRead => "funds:read",
            Scope::FundsWrite => "funds:write",
            Scope::InvestorsRead => "investors:read",
            Scope::InvestorsWrite => "investors:write",
            Scope::InvestmentsRead => "investments:read",
            Scope::InvestmentsWrite => "investments:write",
            Scope::PiiRead => "pii:read",
            Scope::AuditRead => "audit:read",
        }
    }

    /// A scope by name (unknown names are ignored by callers).
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The caller of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's subject (`sub`); `None` in open development mode.
    pub subject: Option<String>,
    scopes: u16,
}

impl Principal {
    /// A caller holding `scopes`.
    pub fn new(subject: Option<String>, scopes: impl IntoIterator<Item = Scope>) -> Self {
        Principal {
            subject,
            scopes: scopes.into_iter().fold(0, |acc, s| acc | s.bit()),
        }
    }

    /// The open development caller: every scope, no subject.
    pub fn development() -> Self {
        Principal::new(None, Scope::ALL)
    }

    /// Whether the caller holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes & scope.bit() != 0
    }

    /// The scopes held, as names.
    pub fn scope_names(&self) -> Vec<&'static str> {
        Scope::ALL
            .into_iter()
            .filter(|s| self.has(*s))
            .map(Scope::as_str)
            .collect()
    }
}

/// How requests are authenticated.
#[derive(Debug)]
pub enum Authenticator {
    /// No auth configured (development only): every request is [`Principal::development`].
    Open,
    /// Bearer JWTs.
    Jwt(Box<JwtVerifier>),
}

impl Authenticator {
    /// Whether requests run without credentials.
    pub fn is_open(&self) -> bool {
        matches!(self, Authenticator::Open)
    }

    /// The caller of a request, from its `Authorization` header.
    pub async fn authenticate(&self, authorization: Option<&str>) -> Result<Principal, AuthError> {
        match self {
            Authenticator::Open => Ok(Principal::development()),
            Authenticator::Jwt(verifier) => {
                let header = authorization.ok_or(AuthError::Missing)?;
                let token = header
                    .strip_prefix("Bearer ")
                    .or_else(|| header.strip_prefix("bearer "))
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .ok_or(AuthError::Malformed)?;
                verifier.verify(token).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_round_trip_and_principals_hold_what_they_were_given() {
        for s in Scope::ALL {
            assert_eq!(Scope::parse(s.as_str()), Some(s));
        }
        let p = Principal::new(Some("alice".into()), [Scope::FundsRead, Scope::PiiRead]);
        assert!(p.has(Scope::FundsRead) && p.has(Scope::PiiRead) && !p.has(Scope::FundsWrite));
        assert_eq!(p.scope_names(), ["funds:read", "pii:read"]);
        assert!(Scope::ALL.iter().all(|s| Principal::development().has(*s)));
    }
}
