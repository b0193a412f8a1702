//! What the digits examples share: the epoch loop with its progress bar,
//! the training accuracy every few epochs, and the closing line.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};

use webgrad::Result;
use webgrad::data::Dataset;

/// How a run went.
pub struct Run {
    pub steps: usize,
    pub seconds: f64,
}

/// Runs `epochs` epochs: `batches(epoch)` gives an epoch's batches,
/// `step` trains on one and returns the loss when it read it; every
/// `report_every` epochs (and after the last) the training accuracy from
/// `accuracy` is printed above the bar.
pub fn train(
    epochs: usize,
    batches: impl Fn(usize) -> Vec<Dataset>,
    mut step: impl FnMut(&Dataset) -> Result<Option<f32>>,
    report_every: usize,
    accuracy: impl Fn() -> Result<f64>,
) -> Result<Run> {
    let start = Instant::now();
    let mut bar: Option<ProgressBar> = None;
    let mut steps = 0usize;
    let mut loss_shown = f32::NAN;
    for epoch in 0..epochs {
        let epoch_batches = batches(epoch);
        // Every epoch has as many batches as the first.
        let bar = bar.get_or_insert_with(|| {
            ProgressBar::new((epoch_batches.len() * epochs) as u64).with_style(
                ProgressStyle::with_template("[{bar:30}] {msg} {per_sec:>12}")
                    .unwrap()
                    .progress_chars("#."),
            )
        });
        for batch in &epoch_batches {
            if let Some(loss) = step(batch)? {
                loss_shown = loss;
            }
            steps += 1;
            bar.set_message(format!(
                "epoch {:>2}/{epochs} loss {loss_shown:.4}",
                epoch + 1
            ));
            bar.inc(1);
        }
        if (epoch + 1) % report_every == 0 || epoch + 1 == epochs {
            let acc = accuracy()?;
            bar.suspend(|| println!("epoch {:>2}: train accuracy {:.1}%", epoch + 1, 100.0 * acc));
        }
    }
    if let Some(bar) = bar {
        bar.finish();
    }
    Ok(Run {
        steps,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The closing line: steps, time, rate, test accuracy.
pub fn report(run: &Run, test_accuracy: f64, test_len: usize) {
    println!(
        "\n{} steps in {:.1} s ({:.0} steps/s); test accuracy {:.1}% ({} of {})",
        run.steps,
        run.seconds,
        run.steps as f64 / run.seconds,
        100.0 * test_accuracy,
        (test_accuracy * test_len as f64).round(),
        test_len
    );
}
