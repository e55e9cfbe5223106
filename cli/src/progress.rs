//! Progress bars on stderr (hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `what`.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    let pb = ProgressBar::new(len);
    let style = ProgressStyle::with_template(
        "{msg:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} ({eta})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    pb.set_style(style);
    pb.set_message(what.to_string());
    pb
}

/// One progress bar per build phase, the previous one finished when the next phase starts.
#[derive(Default)]
pub struct PhaseBars {
    bars: std::sync::Mutex<Vec<(&'static str, indicatif::ProgressBar)>>,
}

impl PhaseBars {
    /// Reports `done` of `total` in phase `label`.
    pub fn report(&self, label: &'static str, done: u64, total: u64) {
        let Ok(mut b) = self.bars.lock() else { return };
        if b.last().is_none_or(|(l, _)| *l != label) {
            if let Some((_, old)) = b.last() {
                old.finish();
            }
            b.push((label, bar(total, label)));
        }
        if let Some((_, pb)) = b.last() {
            pb.set_position(done);
        }
    }

    /// Finishes every bar.
    pub fn finish(&self) {
        if let Ok(b) = self.bars.lock() {
            b.iter().for_each(|(_, pb)| pb.finish());
        }
    }
}
