//! Data sets and mini-batching. Ships the UCI optical handwritten digits
//! (8×8 images, 1,797 samples, 10 classes; CC BY 4.0, see data/README.md),
//! compiled into the crate so it works offline and in a browser.

use crate::device::Device;
use crate::error::{Error, Result};
use crate::random::SplitMix64;
use crate::shape::Shape;
use crate::tensor::Tensor;

/// The digits file as shipped (data/digits.bin).
pub const DIGITS_BYTES: &[u8] = include_bytes!("../data/digits.bin");

/// Samples with `features` inputs each and an integer class label.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Row-major `[len, features]`.
    pub inputs: Vec<f32>,
    /// The class of each sample.
    pub labels: Vec<usize>,
    /// Numbers per sample.
    pub features: usize,
    /// How many classes there are.
    pub classes: usize,
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Data(msg.into())
}

/// FNV-1a, 64-bit.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

impl Dataset {
    /// The handwritten digits: 1,797 images of 8×8 pixels scaled to [0, 1].
    pub fn digits() -> Result<Dataset> {
        Dataset::from_digits_bytes(DIGITS_BYTES)
    }

    /// Parses the digits format (see data/README.md); malformed or
    /// truncated input is an [`Error::Data`] saying what is wrong.
    pub fn from_digits_bytes(bytes: &[u8]) -> Result<Dataset> {
        const HEADER: usize = 16;
        if bytes.len() < HEADER + 8 {
            return Err(bad(format!(
                "digits file is truncated: {} bytes, not even a header",
                bytes.len()
            )));
        }
        if &bytes[..8] != b"WGDIGIT1" {
            return Err(bad("not a digits file (bad magic bytes)"));
        }
        let count = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
        let (w, h, classes, max) = (
            bytes[12] as usize,
            bytes[13] as usize,
            bytes[14] as usize,
            bytes[15],
        );
        let features = w * h;
        let expected = HEADER + count * (features + 1) + 8;
        if bytes.len() != expected {
            return Err(bad(format!(
                "digits file is {} bytes, expected {expected} for {count} samples of {features} pixels (truncated or padded)",
                bytes.len()
            )));
        }
        let body = &bytes[..expected - 8];
        let stored = u64::from_le_bytes(bytes[expected - 8..].try_into().unwrap());
        if fnv1a(body) != stored {
            return Err(bad("digits file is corrupt (checksum mismatch)"));
        }
        if classes == 0 || max == 0 {
            return Err(bad("digits file declares no classes or a zero pixel range"));
        }
        let mut inputs = Vec::with_capacity(count * features);
        let mut labels = Vec::with_capacity(count);
        for (i, sample) in body[HEADER..].chunks_exact(features + 1).enumerate() {
            if let Some(p) = sample[..features].iter().find(|&&p| p > max) {
                return Err(bad(format!(
                    "sample {i} has a pixel value {p} above the maximum {max}"
                )));
            }
            let label = sample[features] as usize;
            if label >= classes {
                return Err(bad(format!(
                    "sample {i} has label {label}, not below {classes}"
                )));
            }
            inputs.extend(sample[..features].iter().map(|&p| p as f32 / max as f32));
            labels.push(label);
        }
        Ok(Dataset {
            inputs,
            labels,
            features,
            classes,
        })
    }

    /// How many samples there are.
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    /// Whether there are no samples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The samples at `indices`, in that order.
    #[track_caller]
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let mut inputs = Vec::with_capacity(indices.len() * self.features);
        for &i in indices {
            assert!(
                i < self.len(),
                "select: index {i} is out of range for a data set of {} samples",
                self.len()
            );
            inputs.extend_from_slice(&self.inputs[i * self.features..(i + 1) * self.features]);
        }
        Dataset {
            inputs,
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            features: self.features,
            classes: self.classes,
        }
    }

    /// Shuffles with `seed` and splits off the last `test_fraction` as a test set.
    #[track_caller]
    pub fn split(&self, test_fraction: f64, seed: u64) -> (Dataset, Dataset) {
        assert!(
            (0.0..=1.0).contains(&test_fraction),
            "split: the test fraction {test_fraction} is not in [0, 1]"
        );
        let order = shuffled(self.len(), seed);
        let test = ((self.len() as f64) * test_fraction).round() as usize;
        let (train, test) = order.split_at(self.len() - test);
        (self.select(train), self.select(test))
    }

    /// All samples as one batch: inputs `[len, features]` and labels.
    pub fn tensors(&self, device: &Device) -> (Tensor, Vec<usize>) {
        (
            Tensor::from_vec(
                device,
                self.inputs.clone(),
                Shape::new(&[self.len(), self.features]),
            ),
            self.labels.clone(),
        )
    }

    /// The fraction of samples whose largest logit (rows of `classes`) is
    /// their label; a row holding a NaN counts as wrong.
    #[track_caller]
    pub fn accuracy(&self, logits: &[f32]) -> f64 {
        assert_eq!(
            logits.len(),
            self.len() * self.classes,
            "accuracy: logits do not match the data set"
        );
        // A row holding a NaN predicts nothing: it is never correct.
        let predicted = argmax_rows(logits, self.classes);
        predicted
            .iter()
            .zip(&self.labels)
            .zip(logits.chunks(self.classes))
            .filter(|((p, l), row)| p == l && !row.iter().any(|v| v.is_nan()))
            .count() as f64
            / self.len().max(1) as f64
    }

    /// Data augmentation for square images of `side`×`side` pixels: each
    /// image moved by a random offset of at most `max_shift` pixels along
    /// each axis (seeded), the uncovered border filled with zeros.
    #[track_caller]
    pub fn shifted_images(&self, side: usize, max_shift: usize, seed: u64) -> Dataset {
        assert_eq!(
            side.checked_mul(side),
            Some(self.features),
            "shifted_images: {} features are not {side}×{side} images",
            self.features
        );
        let mut rng = SplitMix64::new(seed);
        let span = 2 * max_shift as u64 + 1;
        let mut inputs = vec![0.0; self.inputs.len()];
        for (img, out) in self
            .inputs
            .chunks_exact(self.features)
            .zip(inputs.chunks_exact_mut(self.features))
        {
            let dy = (rng.next_u64() % span) as isize - max_shift as isize;
            let dx = (rng.next_u64() % span) as isize - max_shift as isize;
            for y in 0..side as isize {
                for x in 0..side as isize {
                    let (sy, sx) = (y - dy, x - dx);
                    if (0..side as isize).contains(&sy) && (0..side as isize).contains(&sx) {
                        out[(y * side as isize + x) as usize] =
                            img[(sy * side as isize + sx) as usize];
                    }
                }
            }
        }
        Dataset {
            inputs,
            labels: self.labels.clone(),
            features: self.features,
            classes: self.classes,
        }
    }

    /// Mini-batches of `batch_size` in an order shuffled by `seed` (use a
    /// different seed per epoch); the last batch may be smaller.
    #[track_caller]
    pub fn batches(&self, batch_size: usize, seed: u64) -> impl Iterator<Item = Dataset> + '_ {
        assert!(batch_size > 0, "batches: the batch size must be at least 1");
        let order = shuffled(self.len(), seed);
        (0..self.len().div_ceil(batch_size)).map(move |b| {
            let end = ((b + 1) * batch_size).min(self.len());
            self.select(&order[b * batch_size..end])
        })
    }
}

/// A 2-D toy problem: `classes` interleaved spiral arms of `per_class`
/// points each, radius 0 to 1, with noise in the angle (`seed`).
pub fn spiral(classes: usize, per_class: usize, seed: u64) -> Dataset {
    let noise = crate::random::normal(classes * per_class, 0.0, 0.2, seed);
    let mut inputs = Vec::with_capacity(classes * per_class * 2);
    let mut labels = Vec::with_capacity(classes * per_class);
    for c in 0..classes {
        for i in 0..per_class {
            let t = i as f32 / per_class as f32;
            let angle = c as f32 * std::f32::consts::TAU / classes as f32
                + 4.0 * t
                + noise[c * per_class + i] * t;
            inputs.extend([t * angle.cos(), t * angle.sin()]);
            labels.push(c);
        }
    }
    Dataset {
        inputs,
        labels,
        features: 2,
        classes,
    }
}

/// The index of the largest value in each row of `width` values.
#[track_caller]
pub fn argmax_rows(values: &[f32], width: usize) -> Vec<usize> {
    assert!(
        width > 0 && values.len().is_multiple_of(width),
        "argmax_rows: {} values do not split into rows of {width}",
        values.len()
    );
    values
        .chunks(width)
        .map(|row| {
            row.iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map_or(0, |m| m.0)
        })
        .collect()
}

/// Cell centres of a `res`×`res` grid over [−extent, extent]², row by row
/// from the top, x and y interleaved: the inputs for drawing decision regions.
pub fn grid_points(res: usize, extent: f32) -> Vec<f32> {
    let mut grid = Vec::with_capacity(res * res * 2);
    for row in 0..res {
        for col in 0..res {
            let px = (col as f32 + 0.5) / res as f32 * 2.0 * extent - extent;
            let py = extent - (row as f32 + 0.5) / res as f32 * 2.0 * extent;
            grid.extend([px, py]);
        }
    }
    grid
}

/// A permutation of 0..n by Fisher–Yates with a seeded generator.
pub fn shuffled(n: usize, seed: u64) -> Vec<usize> {
    let mut rng = SplitMix64::new(seed);
    let mut v: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = (rng.next_u64() % (i as u64 + 1)) as usize;
        v.swap(i, j);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_images_move_pixels_and_keep_labels() {
        let set = Dataset {
            inputs: (1..=9).map(|v| v as f32).collect(),
            labels: vec![4],
            features: 9,
            classes: 10,
        };
        assert_eq!(set.shifted_images(3, 0, 1).inputs, set.inputs);
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50 {
            let s = set.shifted_images(3, 1, seed);
            assert_eq!(s.labels, vec![4]);
            // A shift keeps the center pixel's 3×3 neighbourhood values, moved.
            let kept: f32 = s.inputs.iter().sum();
            assert!(kept <= 45.0 && s.inputs.contains(&5.0));
            seen.insert(s.inputs.iter().map(|v| *v as u32).collect::<Vec<_>>());
        }
        assert_eq!(seen.len(), 9, "all nine shifts of at most one pixel occur");
    }

    #[test]
    fn the_shipped_digits_load() {
        let d = Dataset::digits().unwrap();
        assert_eq!((d.len(), d.features, d.classes), (1797, 64, 10));
        assert!(d.inputs.iter().all(|&v| (0.0..=1.0).contains(&v)));
        let mut counts = [0; 10];
        d.labels.iter().for_each(|&l| counts[l] += 1);
        assert!(
            counts.iter().all(|&c| (170..=190).contains(&c)),
            "{counts:?}"
        );
    }

    #[test]
    fn malformed_files_are_errors_not_panics() {
        let good = DIGITS_BYTES;
        let check = |bytes: &[u8], needle: &str| match Dataset::from_digits_bytes(bytes) {
            Err(Error::Data(msg)) => assert!(msg.contains(needle), "{msg}"),
            other => panic!("expected a data error containing {needle:?}, got {other:?}"),
        };
        check(&good[..10], "truncated");
        check(&good[..good.len() - 100], "truncated");
        let mut magic = good.to_vec();
        magic[0] = b'X';
        check(&magic, "magic");
        let mut flipped = good.to_vec();
        flipped[100] ^= 1;
        check(&flipped, "checksum");
        let mut label = good.to_vec();
        label[16 + 64] = 12;
        let n = label.len();
        let h = fnv1a(&label[..n - 8]);
        label[n - 8..].copy_from_slice(&h.to_le_bytes());
        check(&label, "label 12");
    }

    #[test]
    fn splits_and_batches_are_seeded_and_cover_everything() {
        let d = Dataset::digits().unwrap();
        let (train, test) = d.split(0.2, 0);
        assert_eq!((train.len(), test.len()), (1438, 359));
        let (train2, _) = d.split(0.2, 0);
        assert_eq!(train.labels, train2.labels);
        let batches: Vec<Dataset> = train.batches(100, 1).collect();
        assert_eq!(batches.len(), 15);
        assert_eq!(batches.iter().map(Dataset::len).sum::<usize>(), train.len());
        let again: Vec<usize> = train.batches(100, 1).next().unwrap().labels;
        assert_eq!(batches[0].labels, again);
        assert_ne!(
            batches[0].labels,
            train.batches(100, 2).next().unwrap().labels
        );
    }
}
