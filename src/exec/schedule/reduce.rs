//! Reductions: rows of kept axes folded in passes of a fixed tree.

use std::sync::Arc;

use super::Scheduler;
use super::encoder::constant_words;
use crate::error::Result;
use crate::exec::codegen::{
    FusedEdge, VEC4_MIN_ELEMENTS, load_fn, load_fn_vec4, value_fn, value_fn_vec4,
};
use crate::exec::kernels::{REDUCE_HEAD, reduce_parts, reduce_source};
use crate::exec::pool::Storage;
use crate::graph::{Node, Op};
use crate::kernel::grid_1d;
use crate::shape::Shape;

impl Scheduler<'_> {
    /// Reduction over `axes`: view the input as rows (kept axes) × reduced
    /// elements with one stride each (copying to that layout first if the
    /// axes do not collapse), then fold in passes of a fixed tree. The first
    /// pass may compute its input on the fly (`prologue`: the input's
    /// fused chain). A pass whose rows are contiguous runs of a multiple of
    /// 4 reads four elements at a time where its value function allows
    /// (`value_fn_vec4`).
    pub(super) fn reduce(
        &mut self,
        op: crate::graph::ReduceOp,
        input: &Arc<Node>,
        axes: &[usize],
        shape: &Shape,
        prologue: Option<FusedEdge>,
    ) -> Result<Storage> {
        // `Tensor::record` widens a reduction's 16-bit input (so its fused
        // chain's root is never rounded by a store: see `codegen`).
        assert_eq!(
            input.dtype,
            crate::dtype::DType::F32,
            "webgrad: a reduction of 16-bit values was recorded without widening them (a bug)"
        );
        let layout = reduce_layout(&input.shape, axes);
        let rows = layout.rows;
        // What a pass folds: the input's fused chain or a buffer's elements.
        let (mut source, mut k_left, mut so, mut sr) = match (layout.so, layout.sr, prologue) {
            (Some(so), Some(sr), Some(fused)) => ((input.clone(), Some(fused)), layout.k, so, sr),
            (Some(so), Some(sr), None) => ((input.clone(), None), layout.k, so, sr),
            _ => {
                // Gather to [kept..., reduced...] contiguous.
                let order: Vec<(usize, usize)> =
                    layout.kept.iter().chain(&layout.reduced).copied().collect();
                let gdims: Vec<usize> = order.iter().map(|o| o.0).collect();
                let gshape = Shape::new(&gdims);
                let gstrides: Vec<usize> = order.iter().map(|o| o.1).collect();
                let gathered = self.copy(input, &gshape, &gdims, 0, &gstrides, 0)?;
                let scratch = Node::new(
                    Op::Fill(0.0),
                    Vec::new(),
                    gshape,
                    crate::Device::reference_only(),
                );
                self.values.insert(scratch.id, gathered);
                ((scratch, None), layout.k, layout.k, 1)
            }
        };
        loop {
            let contiguous = sr == 1
                && rows.saturating_mul(k_left) >= VEC4_MIN_ELEMENTS
                && k_left % 4 == 0
                && (rows == 1 || so % 4 == 0);
            let value = match (&source, contiguous) {
                ((root, Some(fused)), true) => value_fn_vec4(root, *fused, REDUCE_HEAD, None)
                    .unwrap_or_else(|| value_fn(root, *fused, REDUCE_HEAD)),
                ((root, Some(fused)), false) => value_fn(root, *fused, REDUCE_HEAD),
                ((node, None), true) => load_fn_vec4(node),
                ((node, None), false) => load_fn(node),
            };
            // In units of what one `value` call returns.
            let (k, stride) = if value.vec4 {
                (k_left / 4, so / 4)
            } else {
                (k_left, so)
            };
            let parts = reduce_parts(rows, k);
            let out = self.alloc(&Shape::new(&[rows * parts]))?;
            let srcs: Vec<Storage> = value.inputs.iter().map(|i| self.value(i)).collect();
            let mut buffers = vec![(&out, rows * parts)];
            buffers.extend(srcs.iter().map(|s| (s, s.size() as usize / 4)));
            let mut params = vec![
                rows as u32,
                k as u32,
                stride as u32,
                sr as u32,
                parts as u32,
            ];
            params.extend(&value.params);
            self.constants = constant_words(&value, REDUCE_HEAD);
            let kernel = reduce_source(op, &value);
            self.dispatch(
                &kernel,
                "reduce",
                params,
                buffers,
                grid_1d((rows * parts) as u64),
                1,
            );
            // Scratch values (a gathered copy, partial sums) are done with.
            if value.inputs.len() == 1 && value.inputs[0].device.gpu.is_none() {
                self.values.remove(&value.inputs[0].id);
            }
            if parts == 1 {
                debug_assert_eq!(rows, shape.numel());
                return Ok(out);
            }
            // The partial results become the next pass's input.
            let partials = Node::new(
                Op::Fill(0.0),
                Vec::new(),
                Shape::new(&[rows * parts]),
                crate::Device::reference_only(),
            );
            self.values.insert(partials.id, out);
            source = (partials, None);
            k_left = parts;
            so = parts;
            sr = 1;
        }
    }
}

/// How a reduction reads its input: rows of kept axes × reduced elements.
pub(crate) struct ReduceLayout {
    pub rows: usize,
    pub k: usize,
    /// (size, stride) of the kept and reduced axes of size > 1.
    pub kept: Vec<(usize, usize)>,
    pub reduced: Vec<(usize, usize)>,
    /// Row stride and element stride, if each group collapses to one axis.
    pub so: Option<usize>,
    pub sr: Option<usize>,
}

pub(crate) fn reduce_layout(shape: &Shape, axes: &[usize]) -> ReduceLayout {
    let dims = shape.dims();
    let strides = shape.strides();
    let group = |reduced: bool| -> Vec<(usize, usize)> {
        (0..dims.len())
            .filter(|d| axes.contains(d) == reduced && dims[*d] != 1)
            .map(|d| (dims[d], strides[d]))
            .collect()
    };
    let (kept, reduced) = (group(false), group(true));
    ReduceLayout {
        rows: kept.iter().map(|k| k.0).product(),
        k: reduced.iter().map(|k| k.0).product(),
        so: collapse(&kept),
        sr: collapse(&reduced),
        kept,
        reduced,
    }
}

/// Merges (size, stride) axes into one if they are laid out as one
/// contiguous run; `None` if they cannot be.
fn collapse(axes: &[(usize, usize)]) -> Option<usize> {
    match axes.last() {
        None => Some(1),
        Some(&(_, last)) => {
            let ok = axes.windows(2).all(|w| w[0].1 == w[1].1 * w[1].0);
            ok.then_some(last)
        }
    }
}
