//! The commands' progress: a bar on a terminal, plain lines otherwise.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// A progress bar on a terminal; plain lines (every tenth of the way) otherwise.
pub(super) fn progress(len: u64, what: &str) -> ProgressBar {
    if std::io::stderr().is_terminal() {
        let bar = if len == 0 {
            ProgressBar::new_spinner()
        } else {
            ProgressBar::new(len)
        };
        bar.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_message(what.to_owned());
        bar
    } else {
        ProgressBar::hidden()
    }
}

/// A bar over the rows of an export, import or move.
pub(super) fn rows_bar(what: &str) -> (ProgressBar, impl Fn(tenancy_core::Progress) + Send + Sync) {
    let bar = progress(0, what);
    let b = bar.clone();
    let tell = move |p: tenancy_core::Progress| {
        b.set_length(p.rows_total);
        b.set_position(p.rows_done);
    };
    (bar, tell)
}
