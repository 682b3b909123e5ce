//! Turning byte offsets into `file:line:column`, so every error in a TOML file (experiment
//! files, the dataset registry) points at the exact place to fix.

use std::ops::Range;
use std::path::Path;

/// 1-based line and column (in characters) of a byte offset in `src`. An offset past the
/// end, or inside a multi-byte character (a bad span), is moved back to a valid position
/// rather than panicking.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// `path:line:col: message` for a span of the file.
pub fn at(path: &Path, src: &str, span: Range<usize>, message: impl std::fmt::Display) -> String {
    let (line, col) = line_col(src, span.start);
    format!("{}:{line}:{col}: {message}", path.display())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 8), (2, 3));
    }

    #[test]
    fn offsets_inside_a_character_or_past_the_end_do_not_panic() {
        let src = "α = 1\n";
        // Byte 1 is inside `α` (two bytes): the position of `α` itself.
        assert_eq!(line_col(src, 1), (1, 1));
        assert_eq!(line_col(src, 2), (1, 2));
        assert_eq!(line_col(src, 100), (2, 1));
        assert_eq!(at(Path::new("f.toml"), src, 4..5, "bad"), "f.toml:1:4: bad");
    }
}
