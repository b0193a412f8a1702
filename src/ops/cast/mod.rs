//! Conversions between dtypes (`to_dtype`): the elementwise primitive
//! [`Op::Convert`], fused into the kernels around it. Its kernel code (the
//! bit-exact rounding of f32 to f16 and bf16 and back) is in
//! `shaders/numerics/wg_to_f16.wgsl` and its neighbours, its derivative
//! rules with the other primitives' in `autodiff/`. A conversion between
//! the two 16-bit formats goes through f32 (exact: both are subsets of f32).

use crate::dtype::DType;
use crate::graph::Op;
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
        Tensor::record(Op::Convert(dtype), &[self], self.shape().clone())
    }
}
