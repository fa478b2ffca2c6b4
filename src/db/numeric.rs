//! Decoding PostgreSQL `NUMERIC` values from their binary form straight into [`Decimal`].
//!
//! The generic decoder (rust_decimal's, through sqlx) goes through an intermediate
//! arbitrary-precision representation and costs about as much as the rest of a page row; money
//! columns are read on every row of every page, so this does the common case (finite values
//! whose digits fit a `Decimal`) directly and leaves everything else to the generic decoder.

use rust_decimal::Decimal;

/// PostgreSQL's type id of `NUMERIC`.
pub const NUMERIC_OID: u32 = 1700;

const POSITIVE: u16 = 0x0000;
const NEGATIVE: u16 = 0x4000;

/// The value of a binary `NUMERIC` (`ndigits`, `weight`, `sign`, `dscale`, then `ndigits`
/// base-10000 digits, all big-endian), with `dscale` as its scale; `None` for what this does not
/// handle (NaN, infinities, more than 28 decimals, more digits than an `i128` holds, malformed
/// input): the caller then falls back to the generic decoder.
pub fn decode_binary(bytes: &[u8]) -> Option<Decimal> {
    let word = |i: usize| -> Option<u16> {
        let b = bytes.get(i..i + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    let ndigits = usize::from(word(0)?);
    let weight = i32::from(word(2)? as i16);
    let sign = word(4)?;
    let dscale = u32::from(word(6)?);
    if (sign != POSITIVE && sign != NEGATIVE)
        || dscale > 28
        || ndigits > 9
        || bytes.len() != 8 + 2 * ndigits
    {
        return None;
    }
    if ndigits == 0 {
        // Zero, with scale 0 whatever `dscale` says, as the generic decoder gives it.
        return Some(Decimal::ZERO);
    }
    let mut mantissa: i128 = 0;
    for i in 0..ndigits {
        let digit = word(8 + 2 * i)?;
        if digit >= 10_000 {
            return None;
        }
        mantissa = mantissa * 10_000 + i128::from(digit);
    }
    // `mantissa` is the value times 10^fraction, where the last digit's position sets fraction.
    let ndigits = i32::try_from(ndigits).ok()?;
    let fraction = 4 * (ndigits - 1 - weight);
    let scale = i32::try_from(dscale).ok()?;
    if fraction > scale {
        let drop = u32::try_from(fraction - scale).ok()?;
        let divisor = 10_i128.checked_pow(drop)?;
        if mantissa % divisor != 0 {
            return None;
        }
        mantissa /= divisor;
    } else if fraction < scale {
        let add = u32::try_from(scale - fraction).ok()?;
        mantissa = mantissa.checked_mul(10_i128.checked_pow(add)?)?;
    }
    if sign == NEGATIVE {
        mantissa = -mantissa;
    }
    Decimal::try_from_i128_with_scale(mantissa, dscale).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(ndigits: &[u16], weight: i16, sign: u16, dscale: u16) -> Vec<u8> {
        let mut out = Vec::new();
        let n = u16::try_from(ndigits.len()).unwrap_or(u16::MAX);
        for w in [n, weight as u16, sign, dscale] {
            out.extend_from_slice(&w.to_be_bytes());
        }
        for d in ndigits {
            out.extend_from_slice(&d.to_be_bytes());
        }
        out
    }

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn decodes_money_shapes() {
        // 1000.00: one digit 1000 at weight 0, dscale 2.
        assert_eq!(
            decode_binary(&encode(&[1000], 0, POSITIVE, 2)),
            Some(dec("1000.00"))
        );
        // 50,000,000.50: 5000 0000 . 5000
        assert_eq!(
            decode_binary(&encode(&[5000, 0, 5000], 1, POSITIVE, 2)),
            Some(dec("50000000.50"))
        );
        // 0.01: digit 100 at weight -1.
        assert_eq!(
            decode_binary(&encode(&[100], -1, POSITIVE, 2)),
            Some(dec("0.01"))
        );
        // -12.34
        assert_eq!(
            decode_binary(&encode(&[12, 3400], 0, NEGATIVE, 2)),
            Some(dec("-12.34"))
        );
        // zero, as the generic decoder gives it (scale 0)
        let zero = decode_binary(&encode(&[], 0, POSITIVE, 2));
        assert_eq!(zero.map(|d| d.to_string()), Some("0".to_owned()));
        // 10000 (weight 1, trailing zero digit stripped by PostgreSQL)
        assert_eq!(
            decode_binary(&encode(&[1], 1, POSITIVE, 0)),
            Some(dec("10000"))
        );
        // scale is kept: 5.10 prints as 5.10
        let v = decode_binary(&encode(&[5, 1000], 0, POSITIVE, 2));
        assert_eq!(v.map(|d| d.to_string()), Some("5.10".to_owned()));
    }

    #[test]
    fn leaves_the_rest_to_the_generic_decoder() {
        assert_eq!(decode_binary(&encode(&[], 0, 0xC000, 0)), None); // NaN
        assert_eq!(decode_binary(&encode(&[1], 0, POSITIVE, 29)), None);
        assert_eq!(decode_binary(&encode(&[10_000], 0, POSITIVE, 0)), None);
        assert_eq!(decode_binary(&[0, 1]), None);
        assert_eq!(decode_binary(&encode(&[1; 10], 9, POSITIVE, 0)), None);
    }
}
