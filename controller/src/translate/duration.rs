//! Gateway API duration strings (GEP-2257: `1h`, `1m30s`, `500ms`; at most four
//! number+unit parts of up to five digits), used for route timeouts.

/// Milliseconds in `s`, or why it is not a Gateway API duration.
pub fn parse_ms(s: &str) -> Result<u64, String> {
    let mut total: u64 = 0;
    let mut parts = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 || digits > 5 {
            return Err(format!("{s:?} is not a duration like 10s, 1m30s or 500ms"));
        }
        let n: u64 = rest[..digits].parse().expect("checked ASCII digits");
        rest = &rest[digits..];
        let (unit_ms, len) = if rest.starts_with("ms") {
            (1, 2)
        } else if rest.starts_with('h') {
            (3_600_000, 1)
        } else if rest.starts_with('m') {
            (60_000, 1)
        } else if rest.starts_with('s') {
            (1_000, 1)
        } else {
            return Err(format!("{s:?}: units are h, m, s and ms"));
        };
        rest = &rest[len..];
        total += n * unit_ms;
        parts += 1;
    }
    if parts == 0 || parts > 4 {
        return Err(format!("{s:?} is not a duration like 10s, 1m30s or 500ms"));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::parse_ms;

    #[test]
    fn gateway_api_durations_parse_to_milliseconds() {
        assert_eq!(parse_ms("10s"), Ok(10_000));
        assert_eq!(parse_ms("1m30s"), Ok(90_000));
        assert_eq!(parse_ms("500ms"), Ok(500));
        assert_eq!(parse_ms("1h"), Ok(3_600_000));
        assert_eq!(parse_ms("0s"), Ok(0));
        for bad in ["", "10", "s", "1d", "1.5s", "123456s", "1h1m1s1ms1h", "-1s"] {
            assert!(parse_ms(bad).is_err(), "{bad:?}");
        }
    }
}
