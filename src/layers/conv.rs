//! Convolutional layers: [`Conv2d`] and [`MaxPool2d`].

use super::{Init, Module};
use crate::device::Device;
use crate::error::Result;
use crate::ops::conv::Conv2dOptions;
use crate::tensor::Tensor;

/// y = conv2d(x, W) + b, with W `[out, in / groups, kh, kw]` and b `[out]`.
pub struct Conv2d {
    pub weight: Tensor,
    pub bias: Tensor,
    pub options: Conv2dOptions,
}

impl Conv2d {
    /// A layer with `init` weights (fan-in in/groups·kh·kw, fan-out
    /// out/groups·kh·kw) and zero bias.
    #[track_caller]
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        options: Conv2dOptions,
        init: Init,
        seed: u64,
    ) -> Result<Conv2d> {
        let groups = options.groups.max(1);
        assert!(
            inputs % groups == 0 && outputs % groups == 0,
            "Conv2d::new: {inputs} inputs and {outputs} outputs must divide into {groups} groups"
        );
        // Fan-in 0 would make the initializer's range infinite.
        assert!(
            inputs >= 1 && outputs >= 1 && kernel[0] >= 1 && kernel[1] >= 1,
            "Conv2d::new: inputs, outputs and both kernel sizes must be at least 1, got {inputs} inputs, {outputs} outputs, kernel {kernel:?}"
        );
        let taps = kernel[0] * kernel[1];
        let shape = [outputs, inputs / groups, kernel[0], kernel[1]];
        let (fan_in, fan_out) = (inputs / groups * taps, outputs / groups * taps);
        Ok(Conv2d {
            weight: init.tensor(device, shape, fan_in, fan_out, seed)?,
            bias: Tensor::zeros(device, [outputs]).to_variable()?,
            options,
        })
    }

    /// `x: [batch, in, h, w]` → `[batch, out, oh, ow]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv2d(&self.weight, Some(&self.bias), self.options)
    }
}

impl Module for Conv2d {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// Max pooling over `kernel` windows (no parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
}

impl MaxPool2d {
    /// Non-overlapping square windows: kernel = stride = `k`, no padding.
    pub fn new(k: usize) -> MaxPool2d {
        MaxPool2d {
            kernel: [k, k],
            stride: [k, k],
            padding: [0, 0],
        }
    }

    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.max_pool2d(crate::ops::pool::Pool2dOptions {
            kernel: self.kernel,
            stride: self.stride,
            padding: self.padding,
        })
    }
}
