//! Sizes as people write them: `65536`, `64K`, `16M`, `1GiB`, `512mb`.
//! Units are powers of 1024 whatever their spelling (`K`, `KB` and `KiB`
//! read the same), as in the `nexnet` command's flags and nexnet.toml.

/// The number of bytes `text` names, or why it names none.
///
/// ```
/// assert_eq!(nexnet::size::parse_size("64K"), Ok(65536));
/// assert_eq!(nexnet::size::parse_size("16MiB"), Ok(16 << 20));
/// assert!(nexnet::size::parse_size("1X").is_err());
/// ```
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 1048576, 64K or 16M"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(format!("{text:?}: unknown unit (use K, M, G or T)")),
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}
