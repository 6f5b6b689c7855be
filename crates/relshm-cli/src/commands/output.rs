//! How commands report: a human table or one JSON document on stdout, and errors as one
//! line on stderr with a documented exit code.

use serde::Serialize;
use std::process::ExitCode;

/// Exit code for damage found or an operation that failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for usage errors: no such segment, not a relshm segment, bad name.
pub const EXIT_USAGE: u8 = 2;

/// A command's failure: one line for the user and the exit code.
#[derive(Debug)]
pub struct CliError {
    /// What went wrong and what to do, on one line.
    pub message: String,
    /// The process exit code.
    pub code: u8,
}

impl CliError {
    /// A usage error (exit code 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_USAGE,
        }
    }

    /// An operation that failed (exit code 1).
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: EXIT_FAILURE,
        }
    }

    /// Prints the error as one line and returns its exit code.
    pub fn report(&self) -> ExitCode {
        eprintln!("relshm: error: {}", one_line(&self.message));
        ExitCode::from(self.code)
    }
}

/// `text` with line breaks folded into spaces, so every message stays one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Prints `value` as pretty JSON, or `human` (already formatted) as text.
pub fn emit<T: Serialize + ?Sized>(json: bool, value: &T, human: impl FnOnce(&T) -> String) {
    if json {
        // Serialising plain structs of strings and numbers cannot fail.
        let text = serde_json::to_string_pretty(value)
            .unwrap_or_else(|e| format!("{{\"error\": {:?}}}", e.to_string()));
        println!("{text}");
    } else {
        print!("{}", human(value));
    }
}

/// Bytes in a short human unit (`4.0 KiB`, `1.5 MiB`).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A left-aligned text table: a header row, then rows, columns padded to their widest cell.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let parts: Vec<String> = cells
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_tables() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(1 << 20), "1.0 MiB");
        let t = table(&["a", "bb"], &[vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "a    bb\nxyz  1\n");
        assert_eq!(one_line("a\n  b\tc"), "a b c");
    }
}
