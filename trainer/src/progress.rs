//! The progress bar of a run: step, loss, learning rate, tokens/s and ETA.

use indicatif::{ProgressBar, ProgressStyle};

pub fn bar(show: bool, total: u64, done: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(ProgressStyle::with_template("{bar:30} step {pos}/{len} {msg} eta {eta}").expect("a valid template"));
    bar.set_position(done);
    bar
}

pub fn update(bar: &ProgressBar, step: u64, loss: f64, lr: f32, tokens_per_s: f64) {
    bar.set_position(step);
    bar.set_message(format!("loss {loss:.4} lr {lr:.2e} {tokens_per_s:.0} tok/s"));
}
