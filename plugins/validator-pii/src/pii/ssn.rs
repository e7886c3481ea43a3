//! US Social Security numbers: `AAA-GG-SSSS`, outside the ranges never issued (area 000, 666
//! or 900-999; group 00; serial 0000).

use super::scan::{digit_groups, number_ends, number_starts};

/// Byte spans of the SSNs in `text`.
pub fn find(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    (0..bytes.len())
        .filter(|&i| bytes[i].is_ascii_digit() && number_starts(bytes, i))
        .filter_map(|i| {
            let groups = digit_groups(bytes, i, b"-", 4);
            let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
            if lens != [3, 2, 4] {
                return None;
            }
            let end = groups[2].end;
            let part = |k: usize| &text[groups[k].start..groups[k].end];
            let issued = !matches!(part(0), "000" | "666")
                && !part(0).starts_with('9')
                && part(1) != "00"
                && part(2) != "0000";
            (issued && number_ends(bytes, end)).then_some((i, end))
        })
        .collect()
}
