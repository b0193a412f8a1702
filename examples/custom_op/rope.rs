//! A user's op: the rotary position embedding (RoPE) of a `[..., T, d]`
//! tensor, written as one WGSL kernel (`rope.wgsl`) with its derivative
//! rules written with tensor ops. Shared by the example and its test.

use std::borrow::Cow;

use webgrad::op::{Buf, Family, KernelCall, Lowering, Target, grid_1d_of, word};
use webgrad::{Shape, Tensor};

const SOURCE: &str = include_str!("rope.wgsl");

/// The rotation by t·θ_i of each pair (x[2i], x[2i+1]) at position t (the
/// second-to-last axis), θ_i = base^(−2i/d); `inverse` rotates back.
#[derive(Clone, Copy, Debug)]
pub struct Rope {
    pub base: f32,
    pub inverse: bool,
}

impl Rope {
    /// Invocations per workgroup of each variant; the autotuner times both
    /// once per shape and keeps the faster.
    const WORKGROUPS: [u32; 2] = [256, 64];

    fn kernel(&self, out: &Shape, per_group: u32) -> KernelCall {
        let dims = out.dims();
        let pairs = out.numel() / 2;
        let source = SOURCE.replace(
            "const WG: u32 = 256u;",
            &format!("const WG: u32 = {per_group}u;"),
        );
        let direction: f32 = if self.inverse { -1.0 } else { 1.0 };
        KernelCall {
            source: Cow::Owned(source),
            entry: "rope",
            params: vec![
                word(pairs),
                word(dims[dims.len() - 2]),
                word(dims[dims.len() - 1] / 2),
                self.base.log2().to_bits(),
                direction.to_bits(),
            ],
            bindings: vec![Buf::Input(0), Buf::Output],
            groups: grid_1d_of(pairs as u64, per_group),
            loop_trips: 0,
        }
    }
}

impl Family for Rope {
    fn name(&self) -> String {
        let which = if self.inverse { "rope_inverse" } else { "rope" };
        format!("{which}(base {})", self.base)
    }

    fn output_shape(&self, inputs: &[&Shape]) -> Result<Shape, String> {
        let [x] = inputs else {
            return Err(format!("takes one input, got {}", inputs.len()));
        };
        let d = x.dims();
        if d.len() < 2 || d[d.len() - 1] % 2 != 0 {
            return Err(format!("needs a tensor [..., T, d] with d even, got {d:?}"));
        }
        Ok((*x).clone())
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        self.lower_variants(out, inputs, target).swap_remove(0)
    }

    fn lower_variants(&self, out: &Shape, _: &[&Shape], _: Target) -> Vec<Lowering> {
        Self::WORKGROUPS
            .iter()
            .map(|&wg| Lowering {
                temps: Vec::new(),
                kernels: vec![self.kernel(out, wg)],
            })
            .collect()
    }

    /// A rotation is orthogonal, so its vjp is the inverse rotation:
    /// ∂L/∂x = R(−tθ)·g. Written with the op itself, so every derivative
    /// of every order is again one kernel.
    fn vjp(&self, _: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let back = Rope {
            inverse: !self.inverse,
            ..*self
        };
        vec![Some(Tensor::apply_op(back, &[g]))]
    }

    /// Linear in x: Δy = rope(Δx), which the default jvp builds.
    fn linear_in(&self) -> &[usize] {
        &[0]
    }

    /// The definition in f64, sharing nothing with the kernel.
    fn reference(&self, out: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let dims = out.dims();
        let (t_len, d) = (dims[dims.len() - 2], dims[dims.len() - 1]);
        let sign = if self.inverse { -1.0 } else { 1.0 };
        let base = f64::from(self.base);
        let mut y = vec![0.0; x[0].len()];
        for (k, pair) in x[0].chunks(2).enumerate() {
            let i = k % (d / 2);
            let t = (k / (d / 2)) % t_len;
            let angle = t as f64 * base.powf(-2.0 * i as f64 / d as f64);
            let (s, c) = (sign * angle.sin(), angle.cos());
            y[2 * k] = pair[0] * c - pair[1] * s;
            y[2 * k + 1] = pair[0] * s + pair[1] * c;
        }
        y
    }

    fn flops(&self, out: &Shape, _: &[&Shape]) -> u64 {
        3 * out.numel() as u64
    }
}

/// RoPE with the usual base of 10,000.
pub fn rope(x: &Tensor) -> Tensor {
    Tensor::apply_op(
        Rope {
            base: 10_000.0,
            inverse: false,
        },
        &[x],
    )
}

/// The same rotation composed of built-in ops (what a user without custom
/// ops writes): the pairs split, multiplied by cos and sin tables, and put
/// back together.
pub fn rope_composed(x: &Tensor) -> Tensor {
    let dims = x.dims().to_vec();
    let (rank, t_len, d) = (dims.len(), dims[dims.len() - 2], dims[dims.len() - 1]);
    let mut cos = Vec::with_capacity(t_len * d / 2);
    let mut sin = Vec::with_capacity(t_len * d / 2);
    for t in 0..t_len {
        for i in 0..d / 2 {
            let angle = t as f64 * 10_000f64.powf(-2.0 * i as f64 / d as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let cos = Tensor::from_vec(x.device(), cos, [t_len, d / 2, 1]);
    let sin = Tensor::from_vec(x.device(), sin, [t_len, d / 2, 1]);
    let pairs = x.reshape([&dims[..rank - 1], &[d / 2, 2]].concat());
    let a = pairs.narrow(rank, 0..1);
    let b = pairs.narrow(rank, 1..2);
    let ya = &(&a * &cos) - &(&b * &sin);
    let yb = &(&a * &sin) + &(&b * &cos);
    Tensor::concat(&[&ya, &yb], rank).reshape(dims)
}
