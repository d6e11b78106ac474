//! Logging for both binaries: `tracing` to stderr, filtered by `WRAPIX_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::field::MakeExt;
use tracing_subscriber::fmt::format::{debug_fn, Writer};
use tracing_subscriber::EnvFilter;

/// The filter without `WRAPIX_LOG` (or with an invalid one): warnings and errors, and the
/// notification daemon's own info lines (its `listening on …` start line, and each decision
/// under `WRAPIX_NOTIFY_VERBOSE=1`).
pub const DEFAULT_FILTER: &str = "warn,wrapix_notify=info";

/// Installs the subscriber: one line per event (control characters in messages and fields
/// are escaped, so a notifier's multi-line stderr cannot split or forge lines), no time, ANSI
/// colour only on a terminal.
pub fn init() {
    let filter =
        EnvFilter::try_from_env("WRAPIX_LOG").unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let fields = debug_fn(|w: &mut Writer<'_>, field, value| {
        let value = wrapix_spec::error::escape_controls(&format!("{value:?}"));
        if field.name() == "message" {
            write!(w, "{value}")
        } else {
            write!(w, "{field}={value}")
        }
    })
    .delimited(" ");
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter)
        .fmt_fields(fields)
        .without_time()
        .init();
}
