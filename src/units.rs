//! Byte counts → sizes for people (`265.9 MiB`), one spelling for everything the crate prints.

/// `999 B`, `224.6 KiB`, `265.9 MiB`, `1.2 GiB`: one decimal above bytes.
// Binary units, as `--cache-max-mib` and `vlm quantize` already use, so every size reads alike.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64;
    let mut unit = "B";
    for u in UNITS {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = u;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human_bytes(278_828_032), "265.9 MiB");
        assert_eq!(human_bytes(229_952), "224.6 KiB");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(999), "999 B");
    }
}
