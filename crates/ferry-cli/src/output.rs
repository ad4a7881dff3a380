//! Printing reports and errors.

use std::borrow::Cow;
use std::process::ExitCode;

/// `println!` for text output: control characters in what registries, AWS answers or the
/// config put into the line are escaped ([`terminal_safe`]), so no answer can move the
/// cursor, recolour the terminal or rewrite a line.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::output::terminal_safe(&format!($($arg)*)))
    };
}

/// `eprintln!` for text output, escaped as [`say!`].
macro_rules! tell {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::output::terminal_safe(&format!($($arg)*)))
    };
}

/// `text` with every control character but newline and tab escaped (`\u{1b}` for ESC).
pub(crate) fn terminal_safe(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\n' && c != '\t';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| {
                if unsafe_char(c) {
                    c.escape_unicode().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect(),
    )
}

use ferry::CopyReport;
use ferry::report::CopyStatus;

/// Print any serialisable report as one JSON document, written as it is encoded (a plan
/// of 100,000 items is never held a second time as text).
pub(crate) fn json<T: serde::Serialize>(value: &T) {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| e.to_string())
        .and_then(|()| {
            writeln!(out)
                .and_then(|()| out.flush())
                .map_err(|e| e.to_string())
        });
    if let Err(e) = written {
        eprintln!("error[io]: cannot write the report: {e}");
    }
}

/// Human-readable copy report.
pub(crate) fn copy_text(r: &CopyReport) {
    let verb = match r.status {
        CopyStatus::Copied => "copied",
        CopyStatus::Skipped => "already there",
    };
    say!("{verb}: {} -> {}", r.source, r.destination);
    say!("  digest     {}", r.digest);
    if let Some(written) = &r.filtered_digest {
        say!("  written    {written} (only {})", r.platforms.join(", "));
    }
    if !r.tags.is_empty() {
        say!("  tags       {}", r.tags.join(", "));
    }
    say!(
        "  manifests  {} copied, {} skipped",
        r.manifests.copied,
        r.manifests.skipped
    );
    say!(
        "  blobs      {} copied, {} skipped, {} mounted, {} foreign",
        r.blobs.copied,
        r.blobs.skipped,
        r.blobs.mounted,
        r.blobs.foreign
    );
    say!("  bytes      {}", human_bytes(r.bytes));
    say!("  referrers  {}", r.referrers);
    let methods: Vec<String> = r
        .requests
        .by_method
        .iter()
        .map(|(m, n)| format!("{m} {n}"))
        .collect();
    say!(
        "  requests   {} ({}), {} retries, {} throttled",
        r.requests.total,
        methods.join(", "),
        r.requests.retries,
        r.requests.throttled
    );
    say!("  time       {:.2} s", r.duration_ms as f64 / 1000.0);
}

/// Warn on stderr of every listed name that was refused and skipped.
pub(crate) fn invalid_names(names: &[ferry::sync::InvalidName]) {
    for n in names {
        tell!("warning[{}]: {n}", n.code);
    }
}

/// `12.3 MiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Print an error as `error[code]: message` and answer the exit code: 2 for bad input,
/// 1 for everything else.
pub(crate) fn fail(e: &ferry::Error) -> ExitCode {
    tell!("error[{}]: {e}", e.code());
    let hint = match e {
        ferry::Error::TagConflict { .. } => Some(
            "the destination tag is immutable; push under a new tag, or change the repository's tag mutability",
        ),
        ferry::Error::DigestMismatch { .. } => Some(
            "the source registry served bytes that do not match their digest; check its storage, nothing was written",
        ),
        ferry::Error::NotFound { .. } => Some(
            "check the repository name and tag at the source (skopeo inspect or aws ecr describe-images)",
        ),
        _ if e.is_retryable() => Some("this looks transient: run the same command again"),
        _ => None,
    };
    if let Some(h) = hint {
        tell!("  hint: {h}");
    }
    match e {
        ferry::Error::InvalidReference { .. }
        | ferry::Error::InvalidDigest { .. }
        | ferry::Error::Config(_) => ExitCode::from(2),
        _ => ExitCode::from(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(terminal_safe("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            terminal_safe("denied \u{1b}[2J\u{1b}]0;owned\u{7}\r"),
            "denied \\u{1b}[2J\\u{1b}]0;owned\\u{7}\\u{d}"
        );
        assert!(
            !terminal_safe("\u{9b}31m").contains('\u{9b}'),
            "C1 controls too"
        );
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(1 << 30), "1.0 GiB");
    }
}
