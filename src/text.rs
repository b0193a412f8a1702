//! Character-level text corpora: a vocabulary of the distinct characters,
//! encoding and decoding, a train/validation split and seeded batches of
//! (context, next characters) windows.

use crate::device::Device;
use crate::ops::index::IndexTensor;
use crate::random::SplitMix64;

/// A text encoded as indices into its sorted character set.
pub struct CharCorpus {
    /// The distinct characters, sorted; a character's index is its token.
    pub vocabulary: Vec<char>,
    /// The whole text as tokens.
    pub tokens: Vec<u32>,
}

/// One batch: inputs `[batch, context]` and the next token of each position
/// (the inputs shifted by one), row-major.
pub struct TextBatch {
    /// Character ids `[batch, context]`.
    pub inputs: IndexTensor,
    /// The next character after each input position, row-major.
    pub targets: Vec<usize>,
}

impl CharCorpus {
    /// The corpus of `text` (its vocabulary is the characters it uses).
    pub fn new(text: &str) -> CharCorpus {
        let mut vocabulary: Vec<char> = text.chars().collect();
        vocabulary.sort_unstable();
        vocabulary.dedup();
        let tokens = text
            .chars()
            .map(|c| vocabulary.binary_search(&c).unwrap() as u32)
            .collect();
        CharCorpus { vocabulary, tokens }
    }

    /// The books Genesis to Job of the King James Bible (public domain,
    /// 1.99 MB, 72 characters), shipped in `data/kjv.txt` (see data/README.md).
    pub fn kjv() -> CharCorpus {
        CharCorpus::new(include_str!("../data/kjv.txt"))
    }

    /// Tokens of `text`; characters outside the vocabulary are an error.
    pub fn encode(&self, text: &str) -> crate::Result<Vec<u32>> {
        text.chars()
            .map(|c| {
                self.vocabulary
                    .binary_search(&c)
                    .map(|i| i as u32)
                    .map_err(|_| {
                        crate::Error::Data(format!("character {c:?} is not in the vocabulary"))
                    })
            })
            .collect()
    }

    /// The text of `tokens` (indices past the vocabulary are an error).
    pub fn decode(&self, tokens: &[u32]) -> crate::Result<String> {
        tokens
            .iter()
            .map(|&t| {
                self.vocabulary.get(t as usize).copied().ok_or_else(|| {
                    crate::Error::Data(format!("token {t} is not in the vocabulary"))
                })
            })
            .collect()
    }

    /// The first `1 − fraction` of the tokens for training and the rest for
    /// validation (contiguous, so no window straddles both).
    pub fn split(&self, fraction: f64) -> (&[u32], &[u32]) {
        assert!(
            (0.0..1.0).contains(&fraction),
            "CharCorpus::split: fraction {fraction} is not in [0, 1)"
        );
        let at = ((self.tokens.len() as f64) * (1.0 - fraction)) as usize;
        self.tokens.split_at(at)
    }
}

/// `batch` windows of `context + 1` tokens from `tokens` at offsets drawn
/// with `seed`: inputs are each window's first `context` tokens, targets
/// its last `context`.
#[track_caller]
pub fn batch(
    device: &Device,
    tokens: &[u32],
    batch: usize,
    context: usize,
    seed: u64,
) -> TextBatch {
    batch_rows(device, tokens, batch, context, seed, 0..batch)
}

/// The windows `rows` of [`batch`]`(device, tokens, batch, context, seed)`:
/// a data-parallel rank's share of a global batch
/// (`webgrad::distributed`), the same windows one rank with the whole
/// batch would take there.
#[track_caller]
pub fn batch_rows(
    device: &Device,
    tokens: &[u32],
    batch: usize,
    context: usize,
    seed: u64,
    rows: std::ops::Range<usize>,
) -> TextBatch {
    assert!(
        tokens.len() > context,
        "text batch: {} tokens cannot hold a window of {context} + 1",
        tokens.len()
    );
    assert!(
        rows.start <= rows.end && rows.end <= batch,
        "text batch: rows {rows:?} of a batch of {batch}"
    );
    let mut rng = SplitMix64::new(seed);
    let n = rows.len();
    let mut inputs = Vec::with_capacity(n * context);
    let mut targets = Vec::with_capacity(n * context);
    for row in 0..rows.end {
        let start = (rng.next_u64() % (tokens.len() - context) as u64) as usize;
        if row < rows.start {
            continue;
        }
        inputs.extend_from_slice(&tokens[start..start + context]);
        targets.extend(
            tokens[start + 1..start + context + 1]
                .iter()
                .map(|&t| t as usize),
        );
    }
    TextBatch {
        inputs: IndexTensor::from_vec(device, inputs, [n, context]),
        targets,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_its_rows_in_order() {
        let corpus = CharCorpus::new("the quick brown fox jumps over the lazy dog");
        let dev = Device::reference_only();
        let whole = batch(&dev, &corpus.tokens, 5, 6, 3);
        let parts: Vec<usize> = [0..2, 2..5]
            .into_iter()
            .flat_map(|r| batch_rows(&dev, &corpus.tokens, 5, 6, 3, r).targets)
            .collect();
        assert_eq!(parts, whole.targets);
    }

    #[test]
    fn encoding_round_trips_and_batches_shift_by_one() {
        let corpus = CharCorpus::new("abracadabra");
        assert_eq!(corpus.vocabulary, vec!['a', 'b', 'c', 'd', 'r']);
        let tokens = corpus.encode("cab").unwrap();
        assert_eq!(tokens, vec![2, 0, 1]);
        assert_eq!(corpus.decode(&tokens).unwrap(), "cab");
        assert!(corpus.encode("z").is_err() && corpus.decode(&[9]).is_err());
        let dev = Device::reference_only();
        let b = batch(&dev, &corpus.tokens, 3, 4, 7);
        assert_eq!(b.inputs.dims(), &[3, 4]);
        let inputs = b.inputs.reference_eval().unwrap();
        for row in 0..3 {
            // Each target is the token after its input in the corpus.
            let start = (0..corpus.tokens.len() - 4)
                .find(|&s| {
                    corpus.tokens[s..s + 4] == inputs[row * 4..row * 4 + 4]
                        && corpus.tokens[s + 1..s + 5]
                            .iter()
                            .map(|&t| t as usize)
                            .eq(b.targets[row * 4..row * 4 + 4].iter().copied())
                })
                .is_some();
            assert!(start, "row {row} is not a window of the corpus");
        }
        let kjv = CharCorpus::kjv();
        assert_eq!(kjv.vocabulary.len(), 72);
        assert_eq!(kjv.tokens.len(), 1_988_115);
    }
}
