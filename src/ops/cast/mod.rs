//! Conversions between dtypes (`to_dtype`): f32 to a 16-bit storage format
//! and back, one kernel each (`shaders/cast.wgsl`, rendered per format and
//! direction). A conversion between the two 16-bit formats goes through
//! f32 (exact: both are subsets of f32).

use std::borrow::Cow;
use std::sync::OnceLock;

use askama::Template;

use crate::dtype::{DType, round_f64};
use crate::graph::family::Family;
use crate::kernel::{Buf, KernelCall, Lowering, Target, grid_1d, render, word};
use crate::shape::Shape;
use crate::tensor::Tensor;

impl Tensor {
    /// The element type: [`DType::F32`] unless converted with
    /// [`Tensor::to_dtype`] or computed from 16-bit tensors.
    pub fn dtype(&self) -> DType {
        self.node.dtype
    }

    /// This tensor's values in `dtype`: rounded to nearest (ties to even)
    /// into a 16-bit format, ±∞ past its largest finite value; exact into
    /// f32. Differentiable: the gradient is converted back to this
    /// tensor's dtype (∂L/∂x = g, rounded as x is stored).
    ///
    /// ```
    /// # use webgrad::{DType, Device, Tensor};
    /// let device = Device::reference_only();
    /// let x = Tensor::from_vec(&device, vec![1.0, 1e-4, 70000.0], [3]);
    /// let h = x.to_dtype(DType::F16);
    /// assert_eq!(h.dtype(), DType::F16);
    /// let back = webgrad::reference::eval(&h)?;
    /// // 1e-4 rounds to the nearest f16; 70000 is past f16's largest, 65504.
    /// assert_eq!(back, [1.0, 0.00010001659393310547, f64::INFINITY]);
    /// # Ok::<(), webgrad::Error>(())
    /// ```
    pub fn to_dtype(&self, dtype: DType) -> Tensor {
        let from = self.dtype();
        if from == dtype {
            return self.clone();
        }
        if from != DType::F32 && dtype != DType::F32 {
            return self.to_dtype(DType::F32).to_dtype(dtype);
        }
        Tensor::record_family(Cast { from, to: dtype }, &[self], self.shape().clone())
    }
}

/// `from` → `to`, one of them f32.
#[derive(Debug)]
struct Cast {
    from: DType,
    to: DType,
}

/// The conversion kernel for one 16-bit format and direction.
#[derive(Template)]
#[template(path = "cast.wgsl", escape = "none")]
struct CastKernel {
    /// "f16" or "bf16".
    format: &'static str,
    /// 16-bit to f32 (else f32 to 16-bit).
    to_f32: bool,
}

/// The kernel's source, rendered once per format and direction.
fn source(format: DType, to_f32: bool) -> &'static str {
    static SOURCES: [OnceLock<String>; 4] = [const { OnceLock::new() }; 4];
    let slot = usize::from(format == DType::BF16) * 2 + usize::from(to_f32);
    SOURCES[slot].get_or_init(|| {
        render(&CastKernel {
            format: format.name(),
            to_f32,
        })
    })
}

impl Family for Cast {
    fn name(&self) -> String {
        format!("{}_to_{}", self.from, self.to)
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        let n = out.numel();
        let to_f32 = self.to == DType::F32;
        let format = if to_f32 { self.from } else { self.to };
        // One invocation per element into f32, per packed word out of it.
        let threads = if to_f32 { n } else { n.div_ceil(2) };
        Lowering {
            temps: Vec::new(),
            kernels: vec![KernelCall {
                source: Cow::Borrowed(source(format, to_f32)),
                entry: "convert",
                params: vec![word(n)],
                bindings: vec![Buf::Input(0), Buf::Output],
                groups: grid_1d(threads as u64),
                loop_trips: 0,
            }],
        }
    }
    // y = round(x): the derivative of a conversion is taken as 1 (as in
    // every framework's casts), so ∂L/∂x = g in x's dtype.
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        vec![Some(g.to_dtype(self.from))]
    }
    // Δy = Δx in y's dtype (elementwise: the tangent's batch axes pass).
    fn jvp(&self, _: &[Tensor], _: &Tensor, dx: &[Option<Tensor>], _: &[usize]) -> Option<Tensor> {
        Some(dx[0].as_ref()?.to_dtype(self.to))
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        x[0].iter().map(|&v| round_f64(self.to, v)).collect()
    }
    fn output_dtype(&self) -> Option<DType> {
        Some(self.to)
    }
}

#[cfg(test)]
#[test]
fn cast_shaders_validate() {
    for format in [DType::F16, DType::BF16] {
        for to_f32 in [false, true] {
            let name = format!("cast {format} to_f32={to_f32}");
            crate::shader_check::validate(&name, source(format, to_f32));
        }
    }
}
