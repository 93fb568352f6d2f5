//! Number formats of the protocol's headers.
//!
//! `BITS-Error-Code` and `BITS-Error-Context` are "hexadecimal numbers"; the
//! Windows client writes and reads them as `0x%x`. Other peers have been seen
//! to drop the `0x`, or to print an HRESULT as a signed decimal (it is an
//! `i32` on Windows). Offsets and timeouts are plain decimals.

/// Parses an HRESULT or context: `0x80200020`, `0X5`, `80200020` (hex
/// without prefix, since the field is defined as hex) or a negative decimal
/// such as `-2145386464` (a signed HRESULT). `None` if it is none of these or
/// does not fit in 32 bits.
pub(crate) fn parse_hresult(value: &str) -> Option<u32> {
    let value = value.trim();
    if let Some(digits) = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
    {
        return parse_hex(digits);
    }
    if let Some(digits) = value.strip_prefix('-') {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let negative: i64 = -(digits.parse::<i64>().ok()?);
        return i32::try_from(negative).ok().map(|v| v as u32);
    }
    parse_hex(value)
}

/// Up to eight hex digits, nothing else.
fn parse_hex(digits: &str) -> Option<u32> {
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Parses a non-negative decimal (`u64`): digits only, surrounding blanks
/// ignored. `u64::from_str` alone would also take a leading `+`.
pub(crate) fn parse_decimal(value: &str) -> Option<u64> {
    let value = value.trim();
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// Formats a code or context so the Windows client can parse it (`0x%x`,
/// which takes either case), with the digits upper-case as `bitsmsg.h` and
/// `[MC-BUP]` print them: `0x8020001F`, `0x5`.
pub(crate) fn format_hex(value: u32) -> String {
    format!("0x{value:X}")
}
