//! Small reference models built from [`crate::layers`], shared by the
//! examples, the benchmark and the browser page.

use crate::device::Device;
use crate::error::Result;
use crate::layers::{Conv2d, Init, Linear, MaxPool2d, Module, prefixed};
use crate::ops::conv::Conv2dOptions;
use crate::tensor::Tensor;

/// A small CNN for the 8×8 digits: two blocks of 3×3 convolution (padding
/// 1), ReLU and 2×2 max pooling, 1 → 16 → 32 channels (8×8 → 4×4 → 2×2),
/// then a linear layer from the 32·2·2 features to 10 logits.
pub struct DigitsCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub pool: MaxPool2d,
    pub head: Linear,
}

impl DigitsCnn {
    /// Kaiming-initialised weights from `seed`.
    pub fn new(device: &Device, seed: u64) -> Result<DigitsCnn> {
        let same = Conv2dOptions::default().padding(1);
        let init = Init::KaimingUniform;
        Ok(DigitsCnn {
            conv1: Conv2d::new(device, 1, 16, [3, 3], same, init, seed)?,
            conv2: Conv2d::new(device, 16, 32, [3, 3], same, init, seed + 1)?,
            pool: MaxPool2d::new(2),
            head: Linear::new(device, 32 * 2 * 2, 10, Init::XavierUniform, seed + 2)?,
        })
    }

    /// Logits `[batch, 10]` for pixels `[batch, 64]` (or `[batch, 1, 8, 8]`).
    #[track_caller]
    pub fn forward(&self, pixels: &Tensor) -> Tensor {
        let batch = pixels.dims()[0];
        let x = pixels.reshape([batch, 1, 8, 8]);
        let h = self.pool.forward(&self.conv1.forward(&x).relu());
        let h = self.pool.forward(&self.conv2.forward(&h).relu());
        self.head.forward(&h.reshape([batch, 32 * 2 * 2]))
    }
}

impl Module for DigitsCnn {
    /// "conv1.weight", "conv1.bias", "conv2.…", "head.…"
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        [
            prefixed("conv1", &self.conv1),
            prefixed("conv2", &self.conv2),
            prefixed("head", &self.head),
        ]
        .concat()
    }
}
