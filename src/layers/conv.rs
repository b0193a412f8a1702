//! Convolutional layers: [`Conv2d`], [`ConvTranspose2d`], pooling and
//! upsampling.

use super::{Init, Module};
use crate::device::Device;
use crate::error::Result;
use crate::ops::conv::Conv2dOptions;
use crate::ops::pool::Pool2dOptions;
use crate::tensor::Tensor;

/// y = conv2d(x, W) + b, with W `[out, in / groups, kh, kw]` and b `[out]`.
pub struct Conv2d {
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
    /// The op's settings.
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
        let (weight, bias) = conv_parameters(
            "Conv2d::new",
            device,
            [inputs, outputs],
            kernel,
            &options,
            false,
            init,
            seed,
        )?;
        Ok(Conv2d {
            weight,
            bias,
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

/// A convolution layer's weight, drawn by `init`, and zero bias `[out]`:
/// `[out, in / groups, kh, kw]` (fan-in in/groups·kh·kw, fan-out
/// out/groups·kh·kw), or for a `transposed` one `[in, out / groups, kh, kw]`
/// with the fans swapped (each output sums out/groups·kh·kw products).
#[allow(clippy::too_many_arguments)]
#[track_caller]
fn conv_parameters(
    op: &str,
    device: &Device,
    [inputs, outputs]: [usize; 2],
    kernel: [usize; 2],
    options: &Conv2dOptions,
    transposed: bool,
    init: Init,
    seed: u64,
) -> Result<(Tensor, Tensor)> {
    let groups = options.groups.max(1);
    assert!(
        inputs.is_multiple_of(groups) && outputs.is_multiple_of(groups),
        "{op}: {inputs} inputs and {outputs} outputs must divide into {groups} groups"
    );
    // Fan-in 0 would make the initializer's range infinite.
    assert!(
        inputs >= 1 && outputs >= 1 && kernel[0] >= 1 && kernel[1] >= 1,
        "{op}: inputs, outputs and both kernel sizes must be at least 1, got {inputs} inputs, {outputs} outputs, kernel {kernel:?}"
    );
    let taps = kernel[0] * kernel[1];
    let (first, second) = if transposed {
        (inputs, outputs)
    } else {
        (outputs, inputs)
    };
    let shape = [first, second / groups, kernel[0], kernel[1]];
    let (fan_in, fan_out) = (second / groups * taps, first / groups * taps);
    Ok((
        init.tensor(device, shape, fan_in, fan_out, seed)?,
        Tensor::zeros(device, [outputs]).to_variable()?,
    ))
}

/// y = conv_transpose2d(x, W) + b, with W `[in, out / groups, kh, kw]`
/// (PyTorch's layout) and b `[out]`: the decoder's upsampling layer.
pub struct ConvTranspose2d {
    /// The learned weight (a GPU variable).
    pub weight: Tensor,
    /// The learned bias (a GPU variable).
    pub bias: Tensor,
    /// The op's settings.
    pub options: Conv2dOptions,
}

impl ConvTranspose2d {
    /// A layer with `init` weights (fan-in out/groups·kh·kw, the inputs
    /// each output sums, fan-out in/groups·kh·kw) and zero bias.
    #[track_caller]
    pub fn new(
        device: &Device,
        inputs: usize,
        outputs: usize,
        kernel: [usize; 2],
        options: Conv2dOptions,
        init: Init,
        seed: u64,
    ) -> Result<ConvTranspose2d> {
        let (weight, bias) = conv_parameters(
            "ConvTranspose2d::new",
            device,
            [inputs, outputs],
            kernel,
            &options,
            true,
            init,
            seed,
        )?;
        Ok(ConvTranspose2d {
            weight,
            bias,
            options,
        })
    }

    /// `x: [batch, in, h, w]` → `[batch, out, oh, ow]`.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.conv_transpose2d(&self.weight, Some(&self.bias), self.options)
    }
}

impl Module for ConvTranspose2d {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        vec![("weight".into(), &self.weight), ("bias".into(), &self.bias)]
    }
}

/// Max pooling (no parameters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxPool2d {
    /// The op's settings.
    pub options: Pool2dOptions,
}

impl MaxPool2d {
    /// Non-overlapping square windows: kernel = stride = `k`, no padding.
    pub fn new(k: usize) -> MaxPool2d {
        MaxPool2d {
            options: Pool2dOptions::new(k),
        }
    }

    /// `x: [batch, channels, h, w]` → the pooled or upsampled image.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.max_pool2d(self.options)
    }
}

impl Module for MaxPool2d {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }
}

/// Average pooling (no parameters; zero padding counts in the average).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AvgPool2d {
    /// The op's settings.
    pub options: Pool2dOptions,
}

impl AvgPool2d {
    /// Non-overlapping square windows: kernel = stride = `k`, no padding.
    pub fn new(k: usize) -> AvgPool2d {
        AvgPool2d {
            options: Pool2dOptions::new(k),
        }
    }

    /// `x: [batch, channels, h, w]` → the pooled or upsampled image.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        x.avg_pool2d(self.options)
    }
}

impl Module for AvgPool2d {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }
}

/// Upsampling of `[batch, channels, h, w]` by an integer factor (no
/// parameters): nearest neighbour or bilinear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Upsample {
    /// The factor each side grows by.
    pub scale: usize,
    /// Bilinear interpolation (else nearest neighbour).
    pub bilinear: bool,
}

impl Upsample {
    /// Each pixel repeated `scale`×`scale` times.
    pub fn nearest(scale: usize) -> Upsample {
        Upsample {
            scale,
            bilinear: false,
        }
    }
    /// Bilinear interpolation to `scale` times the size (PyTorch's
    /// `align_corners=False`).
    pub fn bilinear(scale: usize) -> Upsample {
        Upsample {
            scale,
            bilinear: true,
        }
    }

    /// `x: [batch, channels, h, w]` → the pooled or upsampled image.
    #[track_caller]
    pub fn forward(&self, x: &Tensor) -> Tensor {
        if self.bilinear {
            let d = x.dims();
            assert!(
                x.rank() == 4,
                "Upsample: input must be [batch, channels, height, width], got {:?}",
                x.shape()
            );
            let size = |n: usize| {
                n.checked_mul(self.scale)
                    .unwrap_or_else(|| panic!("Upsample: {n} × {} overflows", self.scale))
            };
            x.upsample_bilinear2d([size(d[2]), size(d[3])])
        } else {
            x.upsample_nearest2d(self.scale)
        }
    }
}

impl Module for Upsample {
    fn named_parameters(&self) -> Vec<(String, &Tensor)> {
        Vec::new()
    }
}
