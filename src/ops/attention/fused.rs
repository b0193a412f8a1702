//! Fused attention: the forward kernel keeps a running softmax per query
//! row and stores only the row's log-sum-exp beside its values; the
//! backward kernels recompute the scores from it (FlashAttention-2's
//! structure). No T×S matrix is stored, forward or backward.
//!
//! Each kernel comes row-blocked (1, 2 or 4 rows per invocation, the
//! other side's rows read from storage: what CPU rasterizers want) and,
//! for the `Tiled` kernel family of real GPUs, with the other side's rows
//! staged in workgroup memory tile by tile (`attention_tiled.wgsl`).
//!
//! Two families, three kernels, on flattened `[heads, T, d]` operands:
//! [`Forward`] (values and LSE side by side, `[heads, T, e + 1]`), and
//! [`Backward`] for ∂q, or for ∂k and ∂v side by side. First derivatives run these kernels;
//! higher ones (the backward's own vjp, every jvp) differentiate the
//! composition each kernel computes ([`twin`]), written with matmul and
//! exp, so they are exact but store scores like the composed path does.

use std::borrow::Cow;
use std::sync::Arc;

use crate::graph::family::{Family, per_direction};
use crate::graph::{Node, Op};
use crate::kernel::{Buf, KernelCall, Lowering, Target, grid_1d_of, render, word};
use crate::shape::Shape;
use crate::tensor::Tensor;

/// Invocations per workgroup of the three kernels (one row each).
const ROWS_PER_GROUP: u32 = 64;

/// The widths and mask every kernel of one attention is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Geometry {
    /// Queries, keys, key width, value width.
    pub t: usize,
    pub s: usize,
    pub d: usize,
    pub e: usize,
    pub causal: bool,
}

impl Geometry {
    fn scale(&self) -> f32 {
        1.0 / (self.d as f32).sqrt()
    }

    /// The kernels' parameter words for `invocations` invocations.
    fn params(&self, invocations: usize) -> Vec<u32> {
        vec![
            word(invocations),
            word(self.t),
            word(self.s),
            self.scale().to_bits(),
            f32::NEG_INFINITY.to_bits(),
        ]
    }

    /// Whether query i sees key j.
    fn sees(&self, i: usize, j: usize) -> bool {
        !self.causal || j + self.t <= i + self.s
    }
}

#[derive(askama::Template)]
#[template(path = "attention_fwd.wgsl", escape = "none")]
struct ForwardKernel {
    d: usize,
    e: usize,
    lanes: usize,
    dc: usize,
    ec: usize,
    ty: &'static str,
    rows: usize,
    causal: bool,
}

impl ForwardKernel {
    fn new(g: Geometry, rows: usize) -> ForwardKernel {
        let lanes = lanes(g);
        ForwardKernel {
            d: g.d,
            e: g.e,
            lanes,
            dc: g.d / lanes,
            ec: g.e / lanes,
            ty: if lanes == 4 { "vec4<f32>" } else { "f32" },
            rows,
            causal: g.causal,
        }
    }
}

/// Values per load: 4 (q, k, v and g read as vec4) where both widths are
/// multiples of 4.
fn lanes(g: Geometry) -> usize {
    if g.d.is_multiple_of(4) && g.e.is_multiple_of(4) {
        4
    } else {
        1
    }
}

#[derive(askama::Template)]
#[template(path = "attention_bwd.wgsl", escape = "none")]
struct BackwardKernel {
    d: usize,
    e: usize,
    lanes: usize,
    dc: usize,
    ec: usize,
    ty: &'static str,
    rows: usize,
    causal: bool,
    dkv: bool,
}

impl BackwardKernel {
    fn new(g: Geometry, rows: usize, dkv: bool) -> BackwardKernel {
        let f = ForwardKernel::new(g, rows);
        BackwardKernel {
            d: f.d,
            e: f.e,
            lanes: f.lanes,
            dc: f.dc,
            ec: f.ec,
            ty: f.ty,
            rows,
            causal: g.causal,
            dkv,
        }
    }
}

#[derive(askama::Template)]
#[template(path = "attention_tiled.wgsl", escape = "none")]
struct TiledKernel {
    d: usize,
    e: usize,
    tile: usize,
    causal: bool,
    /// 0: forward, 1: ∂q, 2: ∂k and ∂v.
    kind: usize,
}

/// The workgroup-memory variant of one kernel (`attention_tiled.wgsl`),
/// where the family is `Tiled` and its loops fit: a workgroup per 64 rows
/// of `len` in each of `heads`, the other side's `other` rows staged in
/// tiles as large as WebGPU's 16 KiB of workgroup memory allows.
fn tiled(g: Geometry, kind: usize, heads: usize, len: usize, target: Target) -> Option<Lowering> {
    if target.family != crate::kernel::KernelFamily::Tiled {
        return None;
    }
    let tile = [64, 32, 16, 8]
        .into_iter()
        .find(|&t| t * (g.d + g.e + 2) * 4 <= 16_384)?;
    let other = if kind == 2 { g.t } else { g.s };
    let tiles = other.div_ceil(tile);
    let loads = (tile * g.d).div_ceil(64) + (tile * g.e).div_ceil(64);
    let trips = (tiles * (1 + loads) + other) as u64;
    if trips > crate::kernel::MAX_LOOP_TRIPS {
        return None;
    }
    let source = render(&TiledKernel {
        d: g.d,
        e: g.e,
        tile,
        causal: g.causal,
        kind,
    });
    let entry = [
        "attention_fwd_tiled",
        "attention_dq_tiled",
        "attention_dkv_tiled",
    ][kind];
    let groups = heads * len.div_ceil(64);
    let inputs = if kind == 0 { 3 } else { 6 };
    let mut bindings: Vec<Buf> = (0..inputs).map(Buf::Input).collect();
    bindings.push(Buf::Output);
    Some(Lowering {
        temps: Vec::new(),
        kernels: vec![KernelCall {
            source: Cow::Owned(source),
            entry,
            params: g.params(groups),
            bindings,
            groups: grid_1d_of((groups * 64) as u64, 64),
            loop_trips: trips,
        }],
    })
}

/// Rows per invocation the kernels are offered with for these widths, the
/// first the one deterministic mode runs: each row held costs registers
/// for its operands and accumulators (about 2(d + e) floats), so wide heads
/// take fewer. The autotuner times them once per shape on the adapter.
fn row_blocks(g: Geometry) -> Vec<usize> {
    let width = g.d + g.e;
    [4, 2, 1]
        .into_iter()
        .filter(|&rows| rows * width <= 256 || rows == 1)
        .collect()
}

/// One invocation per block of `rows` rows of `len` in each of `heads`.
fn invocations(heads: usize, len: usize, rows: usize) -> usize {
    heads * len.div_ceil(rows)
}

/// softmax(q·kᵀ·scale)·v and the LSE of each row: `[heads, T, e + 1]`
/// from q `[heads, T, d]`, k `[heads, S, d]`, v `[heads, S, e]`.
#[derive(Debug)]
pub(super) struct Forward(pub Geometry);

/// ∂q (`dkv` false, `[heads, T, d]`) or ∂k and ∂v side by side (`[heads,
/// S, d + e]`) from q, k, v, the forward's output, its cotangent's value
/// part g `[heads, T, e]` and δ `[heads, T]` (see `attention_bwd.wgsl`).
#[derive(Debug)]
pub(super) struct Backward {
    pub geom: Geometry,
    pub dkv: bool,
}

impl Family for Forward {
    fn name(&self) -> String {
        let g = self.0;
        let causal = if g.causal { ", causal" } else { "" };
        format!(
            "attention(T {}, S {}, d {}, e {}{causal})",
            g.t, g.s, g.d, g.e
        )
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        self.lower_variants(out, inputs, target).swap_remove(0)
    }

    /// The tiled kernel first where the adapter wants it, then the
    /// row-blocked ones.
    fn lower_variants(&self, out: &Shape, _: &[&Shape], target: Target) -> Vec<Lowering> {
        let g = self.0;
        let heads = out.dims()[0];
        let tiled = tiled(g, 0, heads, g.t, target);
        tiled
            .into_iter()
            .chain(row_blocks(g).into_iter().map(|rows| {
                let source = render(&ForwardKernel::new(g, rows));
                let n = invocations(heads, g.t, rows);
                Lowering {
                    temps: Vec::new(),
                    kernels: vec![KernelCall {
                        source: Cow::Owned(source),
                        entry: "attention_fwd",
                        params: g.params(n),
                        bindings: vec![Buf::Input(0), Buf::Input(1), Buf::Input(2), Buf::Output],
                        groups: grid_1d_of(n as u64, ROWS_PER_GROUP),
                        loop_trips: g.s as u64,
                    }],
                }
            }))
            .collect()
    }

    /// With G = (g, g_lse) the cotangent of (values, LSE): ∂lse_i/∂s_ij =
    /// P_ij adds g_lse_i·P_ij to dS_ij, which is δ_i lowered by g_lse_i.
    fn vjp(&self, x: &[Tensor], y: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let e = self.0.e;
        let rank = y.rank();
        let g_values = g.narrow(rank - 1, 0..e);
        let g_lse = g.narrow(rank - 1, e..e + 1);
        let values = y.narrow(rank - 1, 0..e);
        let delta = &(&g_values * &values).sum_axes_keepdim(&[rank - 1]) - &g_lse;
        let delta = delta.reshape(&values.dims()[..rank - 1]);
        let inputs = [&x[0], &x[1], &x[2], y, &g_values, &delta];
        let backward = |dkv| {
            let geom = self.0;
            let rows = x[if dkv { 1 } else { 0 }].dims()[0];
            let width = if dkv { geom.d + geom.e } else { geom.d };
            let len = if dkv { geom.s } else { geom.t };
            Tensor::record_family(
                Backward { geom, dkv },
                &inputs,
                Shape::new(&[rows, len, width]),
            )
        };
        let dq = backward(false);
        let dkv = backward(true);
        let d = self.0.d;
        vec![
            Some(dq),
            Some(dkv.narrow(2, 0..d)),
            Some(dkv.narrow(2, d..d + e)),
        ]
    }

    fn jvp(
        &self,
        x: &[Tensor],
        y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        let geom = self.0;
        twin_jvp(x, y, dx, lead, &move |a| twin::forward(geom, a))
    }

    fn reference(&self, out: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let g = self.0;
        let heads = out.dims()[0];
        let mut y = vec![0.0; out.numel()];
        for h in 0..heads {
            for i in 0..g.t {
                let p = reference_probabilities(g, x, h, i);
                let row = (h * g.t + i) * (g.e + 1);
                for (j, &pj) in p.weights.iter().enumerate() {
                    for c in 0..g.e {
                        y[row + c] += pj * x[2][(h * g.s + j) * g.e + c];
                    }
                }
                y[row + g.e] = p.lse;
            }
        }
        y
    }

    fn flops(&self, out: &Shape, _: &[&Shape]) -> u64 {
        let g = self.0;
        let heads = (out.numel() / (g.t * (g.e + 1)).max(1)) as u64;
        2 * heads * visible_pairs(g) * (g.d + g.e) as u64
    }
}

impl Family for Backward {
    fn name(&self) -> String {
        let which = if self.dkv { "dk dv" } else { "dq" };
        format!(
            "attention {which}(T {}, S {}, d {}, e {})",
            self.geom.t, self.geom.s, self.geom.d, self.geom.e
        )
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], target: Target) -> Lowering {
        self.lower_variants(out, inputs, target).swap_remove(0)
    }

    fn lower_variants(&self, out: &Shape, _: &[&Shape], target: Target) -> Vec<Lowering> {
        let g = self.geom;
        let (heads, len) = (out.dims()[0], out.dims()[1]);
        let tiled = tiled(g, 1 + usize::from(self.dkv), heads, len, target);
        tiled
            .into_iter()
            .chain(row_blocks(g).into_iter().map(|rows| {
                let source = render(&BackwardKernel::new(g, rows, self.dkv));
                let mut bindings: Vec<Buf> = (0..6).map(Buf::Input).collect();
                bindings.push(Buf::Output);
                let n = invocations(heads, len, rows);
                Lowering {
                    temps: Vec::new(),
                    kernels: vec![KernelCall {
                        source: Cow::Owned(source),
                        entry: if self.dkv {
                            "attention_dkv"
                        } else {
                            "attention_dq"
                        },
                        params: g.params(n),
                        bindings,
                        groups: grid_1d_of(n as u64, ROWS_PER_GROUP),
                        loop_trips: if self.dkv { g.t } else { g.s } as u64,
                    }],
                }
            }))
            .collect()
    }

    /// Second derivatives: the composition the kernel computes, in reverse.
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let (geom, dkv) = (self.geom, self.dkv);
        // Fresh aliases, so that an operand passed twice gets each partial.
        let alias: Vec<Tensor> = x
            .iter()
            .map(|t| Tensor::record(Op::Reshape, &[t], t.shape().clone()))
            .collect();
        let y = twin::backward(geom, dkv, &alias);
        let nodes: Vec<Arc<Node>> = alias.iter().map(|a| a.node.clone()).collect();
        let found = crate::autodiff::reverse::adjoints(&y, g, &nodes);
        alias.iter().map(|a| found.get(&a.id()).cloned()).collect()
    }

    fn jvp(
        &self,
        x: &[Tensor],
        y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        let (geom, dkv) = (self.geom, self.dkv);
        twin_jvp(x, y, dx, lead, &move |a| twin::backward(geom, dkv, a))
    }

    fn reference(&self, out: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let geom = self.geom;
        let (d, e) = (geom.d, geom.e);
        let heads = out.dims()[0];
        let scale = 1.0 / (d as f64).sqrt();
        let mut y = vec![0.0; out.numel()];
        for h in 0..heads {
            for i in 0..geom.t {
                let qrow = h * geom.t + i;
                let lse = x[3][qrow * (e + 1) + e];
                for j in (0..geom.s).filter(|&j| geom.sees(i, j)) {
                    let krow = h * geom.s + j;
                    let s = scale * dot(&x[0][qrow * d..][..d], &x[1][krow * d..][..d]);
                    let p = (s - lse).exp();
                    let gi = &x[4][qrow * e..][..e];
                    let dp = dot(gi, &x[2][krow * e..][..e]);
                    let ds = p * (dp - x[5][qrow]);
                    if self.dkv {
                        let row = krow * (d + e);
                        for c in 0..d {
                            y[row + c] += scale * ds * x[0][qrow * d + c];
                        }
                        for c in 0..e {
                            y[row + d + c] += p * gi[c];
                        }
                    } else {
                        for c in 0..d {
                            y[qrow * d + c] += scale * ds * x[1][krow * d + c];
                        }
                    }
                }
            }
        }
        y
    }

    fn flops(&self, out: &Shape, _: &[&Shape]) -> u64 {
        let g = self.geom;
        let width = if self.dkv { g.d + g.e } else { g.d };
        let heads = (out.numel() / (out.dims()[1] * width).max(1)) as u64;
        2 * heads * visible_pairs(g) * (2 * g.d + g.e) as u64
    }
}

/// Query-key pairs a mask lets through.
fn visible_pairs(g: Geometry) -> u64 {
    (0..g.t)
        .map(|i| (0..g.s).filter(|&j| g.sees(i, j)).count() as u64)
        .sum()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// One query row's softmax weights (one per key, 0 where masked) and
/// LSE, in f64.
struct RowSoftmax {
    weights: Vec<f64>,
    lse: f64,
}

fn reference_probabilities(g: Geometry, x: &[&[f64]], h: usize, i: usize) -> RowSoftmax {
    let scale = 1.0 / (g.d as f64).sqrt();
    let q = &x[0][(h * g.t + i) * g.d..][..g.d];
    let scores: Vec<f64> = (0..g.s)
        .map(|j| {
            if g.sees(i, j) {
                scale * dot(q, &x[1][(h * g.s + j) * g.d..][..g.d])
            } else {
                f64::NEG_INFINITY
            }
        })
        .collect();
    let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let sum: f64 = scores.iter().map(|s| (s - m).exp()).sum();
    RowSoftmax {
        weights: scores.iter().map(|s| (s - m).exp() / sum).collect(),
        lse: m + sum.ln(),
    }
}

/// Forward mode through a kernel by the composition it computes.
fn twin_jvp(
    x: &[Tensor],
    y: &Tensor,
    dx: &[Option<Tensor>],
    lead: &[usize],
    twin: &dyn Fn(&[Tensor]) -> Tensor,
) -> Option<Tensor> {
    let one = |d: &[Option<Tensor>]| {
        let refs: Vec<&Tensor> = x.iter().collect();
        let tangents: Vec<Tensor> = d
            .iter()
            .zip(x)
            .map(|(d, a)| d.clone().unwrap_or_else(|| a.zeros_like()))
            .collect();
        let tangents: Vec<&Tensor> = tangents.iter().collect();
        Some(crate::autodiff::jvp(twin, &refs, &tangents).1)
    };
    per_direction(x, y, dx, lead, &one)
}

/// The compositions the kernels compute, for higher derivatives.
mod twin {
    use super::Geometry;
    use crate::tensor::Tensor;

    /// scale·q·kᵀ with the mask's blocked entries −∞.
    fn scores(g: Geometry, q: &Tensor, k: &Tensor) -> Tensor {
        let s = q.matmul(&k.t()) * g.scale();
        if !g.causal {
            return s;
        }
        let allowed: Vec<f32> = (0..g.t * g.s)
            .map(|n| if g.sees(n / g.s, n % g.s) { 1.0 } else { 0.0 })
            .collect();
        let mask = Tensor::from_vec(q.device(), allowed, [g.t, g.s]);
        let blocked = Tensor::full(q.device(), crate::shape::Shape::scalar(), f32::NEG_INFINITY);
        mask.where_cond(&s, &blocked)
    }

    /// Values and LSE side by side.
    pub fn forward(g: Geometry, x: &[Tensor]) -> Tensor {
        let s = scores(g, &x[0], &x[1]);
        let values = s.softmax(2).matmul(&x[2]);
        // lse = m + ln Σ exp(s − m), for any m: the row max, held constant.
        let m = s.max_axes_keepdim(&[2]).detach();
        let lse = &(&s - &m).exp().sum_axes_keepdim(&[2]).log() + &m;
        Tensor::concat(&[&values, &lse], 2)
    }

    /// ∂q, or ∂k and ∂v side by side, from (q, k, v, fwd, g, δ).
    pub fn backward(geom: Geometry, dkv: bool, x: &[Tensor]) -> Tensor {
        let (q, k, v, fwd, g, delta) = (&x[0], &x[1], &x[2], &x[3], &x[4], &x[5]);
        let lse = fwd.narrow(2, geom.e..geom.e + 1);
        let p = (&scores(geom, q, k) - &lse).exp();
        let dp = g.matmul(&v.t());
        let rows = delta.dims().to_vec();
        let delta = delta.reshape([rows[0], rows[1], 1]);
        let ds = &p * &(&dp - &delta);
        if !dkv {
            return ds.matmul(k) * geom.scale();
        }
        let dk = ds.t().matmul(q) * geom.scale();
        let dv = p.t().matmul(g);
        Tensor::concat(&[&dk, &dv], 2)
    }
}

#[cfg(test)]
#[test]
fn attention_shaders_validate() {
    // Narrow and the widest rows, each mask, each entry point.
    for (d, e) in [(1, 1), (3, 4), (16, 16), (128, 128)] {
        for causal in [false, true] {
            let geom = Geometry {
                t: 2,
                s: 2,
                d,
                e,
                causal,
            };
            for rows in row_blocks(geom) {
                let name = format!("attention d {d} e {e} rows {rows} causal {causal}");
                let fwd = render(&ForwardKernel::new(geom, rows));
                crate::shader_check::validate(&format!("{name} forward"), &fwd);
                for dkv in [false, true] {
                    let bwd = render(&BackwardKernel::new(geom, rows, dkv));
                    crate::shader_check::validate(&format!("{name} backward (dkv {dkv})"), &bwd);
                }
            }
            let target = Target {
                family: crate::kernel::KernelFamily::Tiled,
                subgroup: None,
            };
            for kind in 0..3 {
                let lowering = tiled(geom, kind, 1, 2, target).expect("fits");
                let source = &lowering.kernels[0].source;
                let name = format!("attention tiled kind {kind} d {d} e {e} causal {causal}");
                crate::shader_check::validate(&name, source);
            }
        }
    }
}
