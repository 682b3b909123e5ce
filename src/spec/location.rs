//! Turning byte offsets into `file:line:column` so every error in an experiment file points
//! at the exact place to fix.

use std::ops::Range;
use std::path::Path;

/// 1-based line and column of a byte offset in `src`.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = &src[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
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
}
