//! The progress bar a person sees on a terminal: the CLI's [`SyncObserver`].

use indicatif::{ProgressBar, ProgressStyle};
use registry_host::SyncObserver;
use std::io::IsTerminal;
use std::sync::Arc;

/// Draws `loading tasks N/M` on stderr while a run loads tasks.
struct LoadingBar(ProgressBar);

impl SyncObserver for LoadingBar {
    fn loading(&self, count: usize) {
        if self.0.is_finished() {
            // The next run of a `watch`: the same bar, from zero.
            self.0.reset();
            self.0.set_length(count as u64);
        } else {
            self.0.inc_length(count as u64);
        }
    }
    fn loaded(&self) {
        self.0.inc(1);
    }
    fn finished(&self) {
        self.0.finish_and_clear();
    }
}

/// A bar when a person is watching (stderr is a terminal and the output is not JSON).
pub fn observer(json: bool) -> Option<Arc<dyn SyncObserver>> {
    if json || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("{spinner} loading tasks {pos}/{len} [{elapsed}] {wide_bar}")
            .expect("static template"),
    );
    Some(Arc::new(LoadingBar(bar)))
}
