//! Domain rules that do not need the database: the text form of money, names, emails, years,
//! dates and the fund lifecycle. Each check returns a message for humans; the caller attaches
//! the input field it came from.

use chrono::{Datelike, NaiveDate};
use rust_decimal::Decimal;

use crate::entity::fund::FundStatus;

/// Most integer digits a money amount may have (`NUMERIC(20,2)`).
pub const MONEY_MAX_INTEGER_DIGITS: usize = 18;
/// Most characters of a fund or investor name, counted after trimming.
pub const NAME_MAX_CHARS: usize = 255;
/// Most characters of an email address (RFC 5321).
pub const EMAIL_MAX_CHARS: usize = 320;
/// The earliest vintage year and investment date year.
pub const EARLIEST_YEAR: i32 = 1900;

/// Parses the contract's decimal text: an optional `-`, digits, optionally `.` and one or two
/// digits; at most 18 integer digits; no exponent, no `+`, no spaces. Never goes through a float.
pub fn parse_money(text: &str) -> Result<Decimal, String> {
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int_part, frac_part) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(int_part) || frac_part.is_some_and(|f| !all_digits(f)) {
        return Err(format!(
            "{text:?} is not a decimal number (expected digits with an optional '-' and up to two decimals, e.g. \"1200.50\")"
        ));
    }
    if frac_part.is_some_and(|f| f.len() > 2) {
        return Err(format!("{text:?} has more than 2 decimals"));
    }
    let significant = int_part.trim_start_matches('0');
    if significant.len() > MONEY_MAX_INTEGER_DIGITS {
        return Err(format!(
            "{text:?} has more than {MONEY_MAX_INTEGER_DIGITS} integer digits"
        ));
    }
    // The grammar above is a strict subset of what `from_str_exact` accepts, and 20 digits fit
    // its 96-bit mantissa, so this cannot fail; map the error anyway rather than panic.
    let mut value = Decimal::from_str_exact(text).map_err(|e| format!("{text:?}: {e}"))?;
    value.rescale(2);
    Ok(value)
}

/// Accepts an integer amount (a GraphQL Int literal or JSON integer) as money.
pub fn money_from_integer(value: i128) -> Result<Decimal, String> {
    if value.unsigned_abs() >= 10u128.pow(MONEY_MAX_INTEGER_DIGITS as u32) {
        return Err(format!(
            "{value} has more than {MONEY_MAX_INTEGER_DIGITS} integer digits"
        ));
    }
    let mut d = Decimal::from_i128_with_scale(value, 0);
    d.rescale(2);
    Ok(d)
}

/// Formats money with exactly two decimals, as the contract's wire form.
pub fn format_money(value: Decimal) -> String {
    let mut out = Vec::with_capacity(24);
    write_money(&mut out, value);
    // Digits, a sign and a point: always ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`format_money`]'s text to `out` (ASCII, nothing to escape in JSON), without an
/// intermediate string: this runs for every amount of every page.
pub fn write_money(out: &mut Vec<u8>, value: Decimal) {
    let mut v = value;
    v.rescale(2);
    if v.scale() != 2 {
        // Too large to carry two decimals: as the value prints.
        if v.is_zero() {
            v.set_sign_positive(true);
        }
        out.extend_from_slice(v.to_string().as_bytes());
        return;
    }
    // Digits written directly: the mantissa at scale 2, with a point before its last two
    // digits.
    let mantissa = v.mantissa();
    let mut digits = [0u8; 40];
    let mut at = digits.len();
    let mut push = |d: u8| {
        at -= 1;
        digits[at] = b'0' + d;
    };
    let n = mantissa.unsigned_abs();
    match u64::try_from(n) {
        // 64-bit division is several times cheaper than 128-bit; amounts fit it.
        Ok(mut n) => {
            for _ in 0..3 {
                push((n % 10) as u8);
                n /= 10;
            }
            while n > 0 {
                push((n % 10) as u8);
                n /= 10;
            }
        }
        Err(_) => {
            let mut n = n;
            while n > 0 {
                push((n % 10) as u8);
                n /= 10;
            }
        }
    }
    if mantissa < 0 {
        out.push(b'-');
    }
    let (int, frac) = digits[at..].split_at(digits.len() - at - 2);
    out.extend_from_slice(int);
    out.push(b'.');
    out.extend_from_slice(frac);
}

/// `YYYY-MM-DD`, without going through a format-string parser.
pub fn format_date(date: NaiveDate) -> String {
    let mut out = Vec::with_capacity(10);
    write_date(&mut out, date);
    // Digits and dashes (or chrono's own text): always ASCII.
    String::from_utf8(out).unwrap_or_default()
}

/// Appends [`format_date`]'s text to `out` (ASCII): this runs for every date of every page.
pub fn write_date(out: &mut Vec<u8>, date: NaiveDate) {
    let (year, month, day) = (date.year(), date.month(), date.day());
    if !(0..=9999).contains(&year) {
        out.extend_from_slice(format!("{year:04}-{month:02}-{day:02}").as_bytes());
        return;
    }
    let digit = |n: u32| b'0' + (n % 10) as u8;
    let year = year.unsigned_abs();
    out.extend_from_slice(&[
        digit(year / 1000),
        digit(year / 100),
        digit(year / 10),
        digit(year),
        b'-',
        digit(month / 10),
        digit(month),
        b'-',
        digit(day / 10),
        digit(day),
    ]);
}

/// Checks that an amount is greater than zero.
pub fn check_positive(value: Decimal) -> Result<Decimal, String> {
    if value > Decimal::ZERO {
        Ok(value)
    } else {
        Err(format!(
            "must be greater than 0, got {}",
            format_money(value)
        ))
    }
}

/// Whether a character may not appear in a name: control characters (NUL among them, which
/// PostgreSQL text cannot hold at all) and the bidirectional formatting characters that make
/// text display as something else than it is (U+061C, U+200E, U+200F, U+202A–U+202E,
/// U+2066–U+2069).
fn forbidden_in_name(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Trims a name and checks it is 1..=255 characters (Unicode scalar values) without control
/// or bidirectional formatting characters.
pub fn parse_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("must not be empty or blank".to_owned());
    }
    let chars = name.chars().count();
    if chars > NAME_MAX_CHARS {
        return Err(format!(
            "must be at most {NAME_MAX_CHARS} characters, got {chars}"
        ));
    }
    if let Some((at, c)) = name
        .chars()
        .enumerate()
        .find(|(_, c)| forbidden_in_name(*c))
    {
        return Err(format!(
            "must not contain control or bidirectional formatting characters (U+{:04X} at character {at})",
            u32::from(c)
        ));
    }
    Ok(name.to_owned())
}

/// The form an email is stored and compared in: trimmed, Unicode-normalised (NFKC, so that
/// look-alike compatibility characters such as full-width letters compare equal) and
/// lower-cased.
pub fn normalize_email(raw: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    raw.trim().nfkc().collect::<String>().to_lowercase()
}

/// Checks the text of a filter argument: at most `max_chars` characters and no NUL (which
/// PostgreSQL text cannot hold).
pub fn check_filter_text(text: &str, max_chars: usize) -> Result<(), String> {
    if text.len() > max_chars.saturating_mul(4) || text.chars().count() > max_chars {
        return Err(format!("must be at most {max_chars} characters"));
    }
    if text.contains('\0') {
        return Err("must not contain the NUL character (U+0000)".to_owned());
    }
    Ok(())
}

/// Normalises an email ([`normalize_email`]) and checks its syntax: `local@domain`, a dot
/// inside the domain, no spaces or control characters, at most 320 characters.
pub fn parse_email(raw: &str) -> Result<String, String> {
    // Bounded before any work proportional to it.
    if raw.len() > EMAIL_MAX_CHARS.saturating_mul(4) + 64 {
        return Err(format!("must be at most {EMAIL_MAX_CHARS} characters"));
    }
    let email = normalize_email(raw);
    let chars = email.chars().count();
    if chars > EMAIL_MAX_CHARS {
        return Err(format!(
            "must be at most {EMAIL_MAX_CHARS} characters, got {chars}"
        ));
    }
    let invalid = || Err(format!("{:?} is not a valid email address", raw.trim()));
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid();
    }
    let Some((local, domain)) = email.split_once('@') else {
        return invalid();
    };
    if local.is_empty() || domain.contains('@') || !domain.contains('.') {
        return invalid();
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if !domain.split('.').all(label_ok) {
        return invalid();
    }
    Ok(email)
}

/// Checks a vintage year against 1900 ..= the current year + 5.
pub fn check_vintage_year(year: i32, today: NaiveDate) -> Result<i32, String> {
    let latest = today.year() + 5;
    if (EARLIEST_YEAR..=latest).contains(&year) {
        Ok(year)
    } else {
        Err(format!(
            "must be between {EARLIEST_YEAR} and {latest}, got {year}"
        ))
    }
}

/// Checks an investment date: not before 1900-01-01, not more than one year after today.
pub fn check_investment_date(date: NaiveDate, today: NaiveDate) -> Result<NaiveDate, String> {
    let earliest = NaiveDate::from_ymd_opt(EARLIEST_YEAR, 1, 1).unwrap_or(NaiveDate::MIN);
    // One year ahead; on 29 February that is 28 February (the last day that exists).
    let latest = today
        .with_year(today.year() + 1)
        .or_else(|| NaiveDate::from_ymd_opt(today.year() + 1, 2, 28))
        .unwrap_or(NaiveDate::MAX);
    if date < earliest {
        Err(format!("must not be before {earliest}, got {date}"))
    } else if date > latest {
        Err(format!(
            "must not be more than one year after today ({latest}), got {date}"
        ))
    } else {
        Ok(date)
    }
}

/// Position of a status in the one-way lifecycle `Fundraising → Investing → Closed`.
fn lifecycle_rank(status: FundStatus) -> u8 {
    match status {
        FundStatus::Fundraising => 0,
        FundStatus::Investing => 1,
        FundStatus::Closed => 2,
    }
}

/// Whether a fund may move from `from` to `to`: forward, skipping ahead, or staying.
pub fn status_transition_allowed(from: FundStatus, to: FundStatus) -> bool {
    lifecycle_rank(to) >= lifecycle_rank(from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN)
    }

    #[test]
    fn money_text_is_parsed_exactly_and_formatted_with_two_decimals() {
        let ok = |t: &str| parse_money(t).map(format_money);
        assert_eq!(ok("0.3"), Ok("0.30".to_owned()));
        assert_eq!(ok("1200"), Ok("1200.00".to_owned()));
        assert_eq!(ok("1200.50"), Ok("1200.50".to_owned()));
        assert_eq!(ok("-5"), Ok("-5.00".to_owned()));
        assert_eq!(
            ok("999999999999999999.99"),
            Ok("999999999999999999.99".to_owned())
        );
        assert_eq!(ok("000000000000000000001.5"), Ok("1.50".to_owned()));
    }

    #[test]
    fn dates_are_formatted_as_iso_calendar_dates() {
        assert_eq!(format_date(day(2024, 3, 5)), "2024-03-05");
        assert_eq!(format_date(day(1900, 1, 1)), "1900-01-01");
    }

    #[test]
    fn money_text_outside_the_grammar_is_refused() {
        for bad in [
            "",
            "-",
            ".",
            "1.",
            ".5",
            "100.005",
            "1.500",
            "1e5",
            "+1",
            " 1",
            "1 ",
            "1,000",
            "abc",
            "0x10",
            "NaN",
            "1000000000000000000",
            "--1",
            "1.2.3",
        ] {
            assert!(parse_money(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn integer_money_is_limited_to_eighteen_digits() {
        assert!(money_from_integer(999_999_999_999_999_999).is_ok());
        assert!(money_from_integer(1_000_000_000_000_000_000).is_err());
        assert_eq!(
            money_from_integer(7).map(format_money),
            Ok("7.00".to_owned())
        );
    }

    #[test]
    fn names_are_trimmed_and_limited_to_255_characters() {
        assert_eq!(parse_name("  Fund  "), Ok("Fund".to_owned()));
        assert!(parse_name("").is_err());
        assert!(parse_name("   \t").is_err());
        assert!(parse_name(&"é".repeat(255)).is_ok());
        assert!(parse_name(&"é".repeat(256)).is_err());
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            parse_email(" Jane.Doe@Example.COM "),
            Ok("jane.doe@example.com".to_owned())
        );
        for bad in [
            "",
            "jane",
            "jane@",
            "@example.com",
            "jane@example",
            "jane doe@example.com",
            "jane@exa mple.com",
            "jane@@example.com",
            "jane@example..com",
            "jane@.example.com",
            "jane@example.com.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@example.com", "a".repeat(320 - 12));
        assert!(parse_email(&long).is_ok());
        let too_long = format!("{}@example.com", "a".repeat(321 - 12));
        assert!(parse_email(&too_long).is_err());
    }

    #[test]
    fn vintage_years_run_from_1900_to_five_years_ahead() {
        let today = day(2026, 11, 25);
        assert!(check_vintage_year(1899, today).is_err());
        assert!(check_vintage_year(1900, today).is_ok());
        assert!(check_vintage_year(2031, today).is_ok());
        assert!(check_vintage_year(2032, today).is_err());
    }

    #[test]
    fn investment_dates_run_from_1900_to_one_year_ahead() {
        let today = day(2026, 11, 25);
        assert!(check_investment_date(day(1899, 12, 31), today).is_err());
        assert!(check_investment_date(day(1900, 1, 1), today).is_ok());
        assert!(check_investment_date(day(2027, 11, 25), today).is_ok());
        assert!(check_investment_date(day(2027, 11, 26), today).is_err());
        let leap = day(2028, 2, 29);
        assert!(check_investment_date(day(2029, 2, 28), leap).is_ok());
        assert!(check_investment_date(day(2029, 3, 1), leap).is_err());
    }

    #[test]
    fn the_fund_lifecycle_only_moves_forward() {
        use FundStatus::*;
        assert!(status_transition_allowed(Fundraising, Investing));
        assert!(status_transition_allowed(Fundraising, Closed));
        assert!(status_transition_allowed(Investing, Investing));
        assert!(!status_transition_allowed(Closed, Investing));
        assert!(!status_transition_allowed(Investing, Fundraising));
    }

    /// The direct formatting equals the formatting through `Display` it replaced.
    #[test]
    fn money_and_dates_format_as_display_did() {
        use rust_decimal::Decimal;
        let reference_money = |value: Decimal| {
            let mut v = value;
            v.rescale(2);
            if v.is_zero() {
                v.set_sign_positive(true);
            }
            v.to_string()
        };
        let mut values: Vec<Decimal> = [
            "0",
            "-0",
            "0.00",
            "-0.00",
            "0.001",
            "-0.004",
            "0.005",
            "1",
            "-1",
            "0.1",
            "0.01",
            "-0.01",
            "12.3",
            "1200.5",
            "99999999999999999.99",
            "-99999999999999999.99",
            "123456789012345678901234567.8",
            "79228162514264337593543950335",
            "-79228162514264337593543950335",
            "7922816251426433759354395033.5",
        ]
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
        let mut x: i64 = 1;
        for _ in 0..5000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            values.push(Decimal::new(x >> (x & 31), (x as u64 % 7) as u32));
        }
        for value in values {
            assert_eq!(format_money(value), reference_money(value), "{value:?}");
        }
        let mut date = NaiveDate::from_ymd_opt(1, 1, 1).unwrap_or_default();
        for _ in 0..4000 {
            assert_eq!(
                format_date(date),
                format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
            );
            date += chrono::Duration::days(211);
        }
        for (y, m, d) in [(-1, 1, 1), (10000, 12, 31), (0, 2, 29), (9999, 12, 31)] {
            if let Some(date) = NaiveDate::from_ymd_opt(y, m, d) {
                assert_eq!(
                    format_date(date),
                    format!("{:04}-{:02}-{:02}", date.year(), date.month(), date.day())
                );
            }
        }
    }
}
