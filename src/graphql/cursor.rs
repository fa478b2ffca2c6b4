//! Opaque cursors. A cursor encodes the sort key of a row (never an offset) and the
//! connection it came from — for nested connections also the parent — so a cursor used on
//! another connection is refused instead of silently seeking somewhere else.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::NaiveDate;
use uuid::Uuid;

use crate::service::investment::{InvestmentKey, Parent};

/// The connection a cursor belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `Query.funds`.
    Funds,
    /// `Query.investors`.
    Investors,
    /// `Query.auditEvents`.
    AuditEvents,
    /// `Fund.investments` / `Investor.investments` of one parent.
    Investments(Parent, Uuid),
}

const VERSION: &str = "v1";

fn tag(scope: Scope) -> String {
    match scope {
        Scope::Funds => "funds".to_owned(),
        Scope::Investors => "investors".to_owned(),
        Scope::AuditEvents => "audit-events".to_owned(),
        Scope::Investments(Parent::Fund, id) => format!("fund-investments:{id}"),
        Scope::Investments(Parent::Investor, id) => format!("investor-investments:{id}"),
    }
}

fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

/// Splits a cursor into its scope tag and key, if it is one of ours.
fn decode(cursor: &str) -> Option<(String, String)> {
    let bytes = URL_SAFE_NO_PAD.decode(cursor.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(VERSION)?.strip_prefix('|')?;
    let (scope, key) = rest.rsplit_once('|')?;
    Some((scope.to_owned(), key.to_owned()))
}

/// Why a cursor was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CursorError {
    /// Not a cursor of this API.
    Malformed,
    /// A cursor of another connection (or another parent).
    WrongConnection,
}

impl CursorError {
    /// A message for the client.
    pub fn message(self) -> &'static str {
        match self {
            CursorError::Malformed => "is not a valid cursor",
            CursorError::WrongConnection => {
                "is a cursor of another connection; cursors only work on the list they came from"
            }
        }
    }
}

/// The cursor of a row of an id-ordered list.
pub fn id_cursor(scope: Scope, id: Uuid) -> String {
    encode(&format!("{VERSION}|{}|{id}", tag(scope)))
}

/// The cursor of an investment within a parent's list.
pub fn investment_cursor(parent: Parent, parent_id: Uuid, key: InvestmentKey) -> String {
    let scope = tag(Scope::Investments(parent, parent_id));
    encode(&format!(
        "{VERSION}|{scope}|{}/{}",
        key.0.format("%Y-%m-%d"),
        key.1
    ))
}

fn checked_key(cursor: &str, scope: Scope) -> Result<String, CursorError> {
    let (found, key) = decode(cursor).ok_or(CursorError::Malformed)?;
    if found == tag(scope) {
        Ok(key)
    } else {
        Err(CursorError::WrongConnection)
    }
}

/// Decodes a cursor of an id-ordered list in `scope`.
pub fn decode_id(cursor: &str, scope: Scope) -> Result<Uuid, CursorError> {
    let key = checked_key(cursor, scope)?;
    Uuid::parse_str(&key).map_err(|_| CursorError::Malformed)
}

/// Decodes an investment cursor of `parent_id`'s list.
pub fn decode_investment(
    cursor: &str,
    parent: Parent,
    parent_id: Uuid,
) -> Result<InvestmentKey, CursorError> {
    let key = checked_key(cursor, Scope::Investments(parent, parent_id))?;
    let (date, id) = key.split_once('/').ok_or(CursorError::Malformed)?;
    let date = NaiveDate::parse_from_str(date, "%Y-%m-%d").map_err(|_| CursorError::Malformed)?;
    let id = Uuid::parse_str(id).map_err(|_| CursorError::Malformed)?;
    Ok((date, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_within_their_connection() {
        let id = Uuid::now_v7();
        assert_eq!(
            decode_id(&id_cursor(Scope::Funds, id), Scope::Funds),
            Ok(id)
        );
        let key = (NaiveDate::from_ymd_opt(2024, 3, 15).unwrap_or_default(), id);
        let parent = Uuid::now_v7();
        let c = investment_cursor(Parent::Fund, parent, key);
        assert_eq!(decode_investment(&c, Parent::Fund, parent), Ok(key));
    }

    #[test]
    fn cursors_are_refused_on_other_connections() {
        let id = Uuid::now_v7();
        let c = id_cursor(Scope::Funds, id);
        assert_eq!(
            decode_id(&c, Scope::Investors),
            Err(CursorError::WrongConnection)
        );
        let key = (NaiveDate::default(), id);
        let c = investment_cursor(Parent::Fund, id, key);
        assert_eq!(
            decode_investment(&c, Parent::Fund, Uuid::now_v7()),
            Err(CursorError::WrongConnection)
        );
        assert_eq!(
            decode_investment(&c, Parent::Investor, id),
            Err(CursorError::WrongConnection)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in [
            "",
            "abc",
            "!!!",
            &encode("v2|funds|x"),
            &encode("v1|funds|not-a-uuid"),
        ] {
            assert_eq!(
                decode_id(bad, Scope::Funds),
                Err(CursorError::Malformed),
                "{bad}"
            );
        }
    }
}
