//! The contract's scalars: `Decimal` (exact money as text), `UUID`, `Date` and `DateTime`.
//!
//! Each one refuses malformed input in `is_valid` too, so a bad literal or variable is caught
//! while the document is validated (a request error, HTTP 400 with
//! `application/graphql-response+json`), not halfway through execution.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::{DateTime as ChronoDateTime, NaiveDate, SecondsFormat, Utc};
use rust_decimal::Decimal;
use uuid::Uuid;

use super::model::Leaf;
use crate::domain;

/// Exact money: `"250000000.00"`. Input is a string (`"0.3"`, `"1200"`, `"1200.50"`) or an
/// Int literal, never a float; more than 2 decimals or 18 integer digits are refused.
/// Output always has exactly two decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Money(pub Decimal);

/// Money as text with exactly two decimals, e.g. `"250000000.00"`. Send it as a string (an
/// Int literal is also accepted); at most 2 decimals and 18 integer digits; floats are refused.
#[Scalar(name = "Decimal", use_type_description)]
impl ScalarType for Money {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(text) => domain::parse_money(text)
                .map(Money)
                .map_err(InputValueError::custom),
            Value::Number(n) if n.is_i64() || n.is_u64() => {
                let integer = n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .unwrap_or_default();
                domain::money_from_integer(integer)
                    .map(Money)
                    .map_err(InputValueError::custom)
            }
            Value::Number(_) => Err(InputValueError::custom(
                "floats are not accepted for money; send a string such as \"1200.50\"",
            )),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        match value {
            Value::String(text) => domain::parse_money(text).is_ok(),
            Value::Number(n) => n
                .as_i64()
                .is_some_and(|i| domain::money_from_integer(i128::from(i)).is_ok()),
            _ => false,
        }
    }

    fn to_value(&self) -> Value {
        Value::String(domain::format_money(self.0))
    }
}

impl async_graphql::Description for Money {
    fn description() -> &'static str {
        "Exact money as text with exactly two decimals, e.g. \"250000000.00\" or \"0.30\". \
         Input: a string such as \"0.3\", \"1200\" or \"1200.50\" (an Int literal is also \
         accepted); at most 2 decimals and 18 integer digits; never parsed through a float."
    }
}

/// An RFC 4122 UUID in its hyphenated text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Id(pub Uuid);

/// Strict hyphenated form: 8-4-4-4-12 hex digits.
fn parse_uuid(text: &str) -> Option<Uuid> {
    let b = text.as_bytes();
    let shaped = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    shaped.then(|| Uuid::parse_str(text).ok()).flatten()
}

#[Scalar(name = "UUID", use_type_description)]
impl ScalarType for Id {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => parse_uuid(s).map(Id).ok_or_else(|| {
                InputValueError::custom(format!(
                    "{s:?} is not a UUID (expected the hyphenated form, e.g. \
                     \"0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d\")"
                ))
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if parse_uuid(s).is_some())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.hyphenated().to_string())
    }
}

impl async_graphql::Description for Id {
    fn description() -> &'static str {
        "An RFC 4122 UUID in hyphenated text form, e.g. \"0199c3b4-2f4e-7a1c-9b1d-5f3e2a1b0c9d\". \
         Ids are UUIDv7, so their order is creation order. The nil UUID is well-formed; \
         lookups of it return null."
    }
}

/// A calendar date without time zone, `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        });
    shaped
        .then(|| NaiveDate::parse_from_str(text, "%Y-%m-%d").ok())
        .flatten()
}

#[Scalar(name = "Date", use_type_description)]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => parse_date(s).map(Date).ok_or_else(|| {
                InputValueError::custom(format!("{s:?} is not a calendar date like \"2024-09-22\""))
            }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if parse_date(s).is_some())
    }

    fn to_value(&self) -> Value {
        Value::String(domain::format_date(self.0))
    }
}

impl async_graphql::Description for Date {
    fn description() -> &'static str {
        "A calendar date without time zone, e.g. \"2024-09-22\"."
    }
}

/// An instant in UTC, RFC 3339 with exactly six fractional digits and `Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DateTime(pub ChronoDateTime<Utc>);

#[Scalar(name = "DateTime", use_type_description)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => ChronoDateTime::parse_from_rfc3339(s)
                .map(|d| DateTime(d.with_timezone(&Utc)))
                .map_err(|_| {
                    InputValueError::custom(format!(
                        "{s:?} is not an RFC 3339 date-time like \"2024-01-15T10:30:00.123456Z\""
                    ))
                }),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if ChronoDateTime::parse_from_rfc3339(s).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_rfc3339_opts(SecondsFormat::Micros, true))
    }
}

impl async_graphql::Description for DateTime {
    fn description() -> &'static str {
        "An instant in UTC, RFC 3339 with exactly six fractional digits and Z, e.g. \
         \"2024-01-15T10:30:00.123456Z\". Stored at microseconds, so a mutation's reply equals \
         a later read."
    }
}

/// A total of money that may exceed what an amount can hold (see
/// [`crate::service::investment::total_committed_by_parent`]): PostgreSQL's exact decimal text
/// with two decimals. The schema sees the same `Decimal` scalar as [`Money`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoneyTotal(pub String);

impl async_graphql::OutputType for MoneyTotal {
    fn type_name() -> std::borrow::Cow<'static, str> {
        <Money as async_graphql::OutputType>::type_name()
    }

    fn create_type_info(registry: &mut async_graphql::registry::Registry) -> String {
        <Money as async_graphql::OutputType>::create_type_info(registry)
    }

    async fn resolve(
        &self,
        _ctx: &async_graphql::ContextSelectionSet<'_>,
        _field: &async_graphql::Positioned<async_graphql::parser::types::Field>,
    ) -> async_graphql::ServerResult<Value> {
        Ok(Value::String(self.0.clone()))
    }
}

impl Leaf for MoneyTotal {
    fn write_json(&self, out: &mut Vec<u8>) {
        super::model::write_str(out, &self.0);
    }
}

impl Leaf for Money {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        domain::write_money(out, self.0);
        out.push(b'"');
    }
}

impl Leaf for Id {
    fn write_json(&self, out: &mut Vec<u8>) {
        let mut buf = uuid::Uuid::encode_buffer();
        out.push(b'"');
        out.extend_from_slice(self.0.hyphenated().encode_lower(&mut buf).as_bytes());
        out.push(b'"');
    }
}

impl Leaf for Date {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        domain::write_date(out, self.0);
        out.push(b'"');
    }
}

impl Leaf for DateTime {
    fn write_json(&self, out: &mut Vec<u8>) {
        super::model::write_str(out, &self.0.to_rfc3339_opts(SecondsFormat::Micros, true));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        Value::String(text.to_owned())
    }

    #[test]
    fn money_accepts_strings_and_integers_but_never_floats() {
        assert_eq!(
            Money::parse(s("0.3")).ok().map(|m| m.to_value()),
            Some(s("0.30"))
        );
        assert_eq!(
            Money::parse(Value::from(1200)).ok().map(|m| m.to_value()),
            Some(s("1200.00"))
        );
        let float = Value::from_json(serde_json::json!(1.5)).unwrap_or(Value::Null);
        assert!(Money::parse(float.clone()).is_err());
        assert!(!Money::is_valid(&float));
        assert!(!Money::is_valid(&s("100.005")));
        assert!(Money::is_valid(&s("999999999999999999.99")));
    }

    #[test]
    fn uuids_must_be_hyphenated() {
        assert!(Id::is_valid(&s("00000000-0000-0000-0000-000000000000")));
        assert!(!Id::is_valid(&s("00000000000000000000000000000000")));
        assert!(!Id::is_valid(&s("{00000000-0000-0000-0000-000000000000}")));
        assert!(!Id::is_valid(&s("not-a-uuid")));
    }

    #[test]
    fn dates_are_strict_calendar_dates() {
        assert!(Date::is_valid(&s("2024-02-29")));
        assert!(!Date::is_valid(&s("2023-02-29")));
        assert!(!Date::is_valid(&s("2024-9-22")));
        assert!(!Date::is_valid(&s("2024-09-22T00:00:00Z")));
    }

    #[test]
    fn date_times_have_six_fractional_digits_and_z() {
        let t = ChronoDateTime::parse_from_rfc3339("2024-01-15T10:30:00.1Z")
            .map(|d| d.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(DateTime(t).to_value(), s("2024-01-15T10:30:00.100000Z"));
    }
}
