//! Decoding PostgreSQL `DATE` and `TIMESTAMPTZ` values from their binary form.
//!
//! sqlx decodes both by adding a `Duration` to 2000-01-01, which goes through chrono's
//! general date arithmetic (about 200 to 250 instructions a value, on every row of every page).
//! Here the day count is turned into a date by chrono's direct constructors. `None` for what
//! does not fit chrono (PostgreSQL's `infinity`, dates beyond year 262,143) or malformed input:
//! the caller then falls back to the generic decoder, which reports the error.

use chrono::{DateTime, NaiveDate, Utc};

/// PostgreSQL's type id of `DATE`.
pub const DATE_OID: u32 = 1082;

/// PostgreSQL's type id of `TIMESTAMPTZ`.
pub const TIMESTAMPTZ_OID: u32 = 1184;

/// Days from 0001-01-01 (chrono's "common era" day 1) to 2000-01-01, PostgreSQL's epoch.
const PG_EPOCH_DAYS_FROM_CE: i32 = 730_120;

/// Microseconds from 1970-01-01 (Unix time) to 2000-01-01.
const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;

/// A binary `DATE`: days since 2000-01-01, as a big-endian `i32`.
pub fn decode_date(bytes: &[u8]) -> Option<NaiveDate> {
    let days = i32::from_be_bytes(bytes.try_into().ok()?);
    NaiveDate::from_num_days_from_ce_opt(days.checked_add(PG_EPOCH_DAYS_FROM_CE)?)
}

/// A binary `TIMESTAMPTZ`: microseconds since 2000-01-01 00:00:00 UTC, as a big-endian `i64`.
pub fn decode_timestamptz(bytes: &[u8]) -> Option<DateTime<Utc>> {
    let micros = i64::from_be_bytes(bytes.try_into().ok()?);
    DateTime::from_timestamp_micros(micros.checked_add(PG_EPOCH_UNIX_MICROS)?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::{Duration, NaiveDateTime};
    use proptest::prelude::*;

    use super::*;

    /// What sqlx computes: the epoch plus the value as a duration.
    fn epoch() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2000, 1, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    }

    #[test]
    fn known_values() {
        assert_eq!(
            decode_date(&0_i32.to_be_bytes()),
            NaiveDate::from_ymd_opt(2000, 1, 1)
        );
        assert_eq!(
            decode_date(&(-1_i32).to_be_bytes()),
            NaiveDate::from_ymd_opt(1999, 12, 31)
        );
        assert_eq!(
            decode_date(&8_826_i32.to_be_bytes()),
            NaiveDate::from_ymd_opt(2024, 3, 1)
        );
        assert_eq!(
            decode_timestamptz(&0_i64.to_be_bytes()).map(|t| t.to_rfc3339()),
            Some("2000-01-01T00:00:00+00:00".to_owned())
        );
        assert_eq!(
            decode_timestamptz(&(-1_i64).to_be_bytes()).map(|t| t.naive_utc()),
            Some(epoch() - Duration::microseconds(1))
        );
    }

    #[test]
    fn what_chrono_cannot_hold_is_left_to_the_generic_decoder() {
        // PostgreSQL's infinities, and input of the wrong length.
        assert_eq!(decode_date(&i32::MAX.to_be_bytes()), None);
        assert_eq!(decode_date(&i32::MIN.to_be_bytes()), None);
        assert_eq!(decode_timestamptz(&i64::MAX.to_be_bytes()), None);
        assert_eq!(decode_timestamptz(&i64::MIN.to_be_bytes()), None);
        assert_eq!(decode_date(&[0, 0, 1]), None);
        assert_eq!(decode_timestamptz(&[0; 4]), None);
    }

    proptest! {
        #[test]
        fn dates_match_sqlx(days in -2_000_000_i32..2_000_000) {
            let expected = epoch().date() + Duration::days(i64::from(days));
            prop_assert_eq!(decode_date(&days.to_be_bytes()), Some(expected));
        }

        #[test]
        fn timestamps_match_sqlx(micros in -100_000_000_000_000_000_i64..100_000_000_000_000_000) {
            let expected = (epoch() + Duration::microseconds(micros)).and_utc();
            prop_assert_eq!(decode_timestamptz(&micros.to_be_bytes()), Some(expected));
        }
    }
}
