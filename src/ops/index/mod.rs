//! Integer index tensors and the ops that use them: index_select (and
//! embedding lookup on top of it), its adjoint index_add, and argmax/argmin.
//!
//! An [`IndexTensor`] holds u32 indices on the GPU: uploaded once from the
//! host, or computed there (argmax). It is a type of its own so that an
//! index can never flow into float arithmetic by mistake.
//!
//! index_add sums repeated indices in increasing position order, never with
//! atomics: the same indices give the same bits on every run and adapter.
//! Indices that came from the host are segmented there (a counting sort:
//! offsets and order), so its kernel does O(K) work; indices computed on the
//! GPU fall back to a scan over all K per output row.

mod kernels;
mod reference;

use std::sync::Arc;

use crate::device::Device;
use crate::error::Result;
use crate::graph::family::Family;
use crate::graph::{Node, Op};
use crate::kernel::{Lowering, Target};
use crate::shape::Shape;
use crate::tensor::Tensor;

#[cfg(test)]
mod shader_tests;

/// A tensor of u32 indices on the GPU. Cheap to clone (a graph handle).
#[derive(Clone)]
pub struct IndexTensor {
    pub(crate) t: Tensor,
}

impl std::fmt::Debug for IndexTensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "IndexTensor(#{} {:?})", self.t.id(), self.t.shape())
    }
}

impl IndexTensor {
    /// Indices `data` (row-major) of the given shape, uploaded with the next realize.
    #[track_caller]
    pub fn from_vec(
        device: &Device,
        data: impl Into<Vec<u32>>,
        shape: impl Into<Shape>,
    ) -> IndexTensor {
        let data: Vec<u32> = data.into();
        let shape = shape.into();
        assert_eq!(
            Some(data.len()),
            shape.checked_numel(),
            "IndexTensor::from_vec: {} indices do not fill shape {shape:?}",
            data.len()
        );
        let node = Node::new(Op::Indices(data.into()), Vec::new(), shape, device.clone());
        IndexTensor {
            t: Tensor::from_node(node),
        }
    }

    /// Indices from `usize` values (labels, token ids); each must fit in u32.
    #[track_caller]
    pub fn from_usize(device: &Device, data: &[usize], shape: impl Into<Shape>) -> IndexTensor {
        let mut narrow = Vec::with_capacity(data.len());
        for &i in data {
            let Ok(i) = u32::try_from(i) else {
                panic!("IndexTensor::from_usize: index {i} exceeds u32")
            };
            narrow.push(i);
        }
        let data = narrow;
        IndexTensor::from_vec(device, data, shape)
    }

    /// The shape.
    pub fn shape(&self) -> &Shape {
        self.t.shape()
    }
    /// The sizes of the axes.
    pub fn dims(&self) -> &[usize] {
        self.t.dims()
    }
    /// How many indices there are.
    pub fn numel(&self) -> usize {
        self.t.numel()
    }
    /// The device the indices live on.
    pub fn device(&self) -> &Device {
        self.t.device()
    }

    /// The same indices in a new shape.
    #[track_caller]
    pub fn reshape(&self, shape: impl Into<Shape>) -> IndexTensor {
        IndexTensor {
            t: self.t.reshape(shape),
        }
    }

    /// Reads the indices back.
    pub async fn to_vec(&self) -> Result<Vec<u32>> {
        let bits = crate::exec::read(&[&self.t], &[]).await?;
        Ok(bits[0].iter().map(|v| v.to_bits()).collect())
    }

    /// Reads the indices back (native code).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_vec_blocking(&self) -> Result<Vec<u32>> {
        pollster::block_on(self.to_vec())
    }

    /// The indices computed by the f64 reference interpreter (the oracle).
    pub fn reference_eval(&self) -> Result<Vec<u32>> {
        let values = crate::reference::eval(&self.t)?;
        Ok(values.into_iter().map(|v| v as u32).collect())
    }

    /// These indices, each clamped to at most `size - 1`: JAX's rule for
    /// an index out of range, as an explicit choice. Indices computed on
    /// the GPU (an argmax) that may not fit an axis are otherwise checked
    /// when the op using them runs, and the realize fails naming the op
    /// and the largest offending index ([`crate::Error::IndexOutOfRange`]);
    /// clamped ones need no check. The gradient of `index_select` goes to
    /// the clamped rows, the rows the forward pass read.
    #[track_caller]
    pub fn clamp(&self, size: usize) -> IndexTensor {
        assert!(
            size > 0,
            "IndexTensor::clamp: size must be at least 1 (no index fits an empty axis)"
        );
        let Ok(size) = u32::try_from(size) else {
            panic!("IndexTensor::clamp: size {size} exceeds u32")
        };
        IndexTensor {
            t: Tensor::record_family(IndexClamp { size }, &[&self.t], self.shape().clone()),
        }
    }

    /// A bound all these indices are known to stay below, without running
    /// anything: the largest uploaded index + 1, an argmax's axis size, a
    /// clamp's size (through any reshapes). None if not known.
    fn bound(&self) -> Option<usize> {
        let mut node = self.t.node.clone();
        loop {
            let next = match &node.op {
                Op::Indices(data) => return Some(data.iter().max().map_or(0, |&m| m as usize + 1)),
                Op::Reshape => node.inputs()[0].clone(),
                Op::Family(f) => {
                    let inputs = node.inputs();
                    let shapes: Vec<&Shape> = inputs.iter().map(|i| &i.shape).collect();
                    return f.index_bound(&shapes);
                }
                _ => return None,
            };
            node = next;
        }
    }

    /// Whether an op indexing an axis of `size` must check these indices
    /// on the GPU: they were computed there and may not fit.
    fn needs_check(&self, size: usize) -> bool {
        self.bound().is_none_or(|b| b > size)
    }

    /// The host data behind these indices, if they were uploaded (through
    /// any reshapes), so that bounds and segments can be computed on the host.
    fn host_data(&self) -> Option<Arc<[u32]>> {
        let mut node = self.t.node.clone();
        loop {
            let next = match &node.op {
                Op::Indices(data) => return Some(data.clone()),
                Op::Reshape => node.inputs()[0].clone(),
                _ => return None,
            };
            node = next;
        }
    }
}

impl Tensor {
    /// The entries `indices` (a 1-D [`IndexTensor`]) along `axis`, in that
    /// order; repeats allowed. The gradient adds back into the selected
    /// entries (repeats summed in a fixed order).
    #[track_caller]
    pub fn index_select(&self, axis: usize, indices: &IndexTensor) -> Tensor {
        self.select_checked("index_select", axis, indices)
    }

    /// `index_select` whose messages name `op`, the call the user made.
    #[track_caller]
    fn select_checked(&self, op: &'static str, axis: usize, indices: &IndexTensor) -> Tensor {
        self.shape().check_axis(op, axis);
        assert!(
            indices.t.rank() == 1,
            "{op}: indices must be 1-D, got shape {:?}",
            indices.shape()
        );
        let size = self.dims()[axis];
        if let Some(data) = indices.host_data()
            && let Some(bad) = data.iter().find(|&&i| i as usize >= size)
        {
            panic!(
                "{op}: index {bad} is out of range for axis {axis} of shape {:?}",
                self.shape()
            );
        }
        let mut dims = self.dims().to_vec();
        dims[axis] = indices.numel();
        let check = indices.needs_check(size);
        Tensor::record_family(
            IndexSelect { axis, op, check },
            &[self, &indices.t],
            Shape::new(&dims),
        )
    }

    /// Embedding lookup: rows of this `[vocabulary, width]` table at `ids`
    /// (any shape), giving `ids.shape ++ [width]`.
    #[track_caller]
    pub fn embedding(&self, ids: &IndexTensor) -> Tensor {
        assert!(
            self.rank() == 2,
            "embedding: the table must be [vocabulary, width], got {:?}",
            self.shape()
        );
        let flat = ids.reshape([ids.numel()]);
        let rows = self.select_checked("embedding", 0, &flat);
        let mut dims = ids.dims().to_vec();
        dims.push(self.dims()[1]);
        rows.reshape(dims)
    }

    /// Index of the largest entry along `axis` (the axis removed); the
    /// first one on ties, the first NaN if any (numpy's rule). No gradient.
    #[track_caller]
    pub fn argmax(&self, axis: usize) -> IndexTensor {
        self.arg_reduce(axis, false, "argmax")
    }

    /// [`Tensor::argmax`] with `axis` kept in the shape with size 1.
    #[track_caller]
    pub fn argmax_keepdim(&self, axis: usize) -> IndexTensor {
        self.argmax(axis).reshape(keep_axis(self.dims(), axis))
    }

    /// [`Tensor::argmin`] with `axis` kept in the shape with size 1.
    #[track_caller]
    pub fn argmin_keepdim(&self, axis: usize) -> IndexTensor {
        self.argmin(axis).reshape(keep_axis(self.dims(), axis))
    }

    /// Index of the smallest entry along `axis`; see [`Tensor::argmax`].
    #[track_caller]
    pub fn argmin(&self, axis: usize) -> IndexTensor {
        self.arg_reduce(axis, true, "argmin")
    }

    #[track_caller]
    fn arg_reduce(&self, axis: usize, smallest: bool, op: &str) -> IndexTensor {
        self.shape().check_axis(op, axis);
        assert!(
            self.dims()[axis] > 0,
            "{op}: axis {axis} of shape {:?} is empty",
            self.shape()
        );
        let mut dims = self.dims().to_vec();
        dims.remove(axis);
        IndexTensor {
            t: Tensor::record_family(ArgReduce { axis, smallest }, &[self], Shape::new(&dims)),
        }
    }
}

/// out = x with `axis` replaced by x[…, idx[k], …]; inputs (x, idx).
/// With `check`, the kernel reports an index past the axis (indices
/// computed on the GPU); `op` is the user's call, for that message.
#[derive(Debug)]
pub(crate) struct IndexSelect {
    axis: usize,
    op: &'static str,
    check: bool,
}

/// What an index past the axis reported by `op`'s kernel means.
fn out_of_range(op: &str, axis: usize, size: usize) -> String {
    format!(
        "{op}: an index computed on the GPU is out of range for axis {axis} of size {size}: \
         the largest is {{value}} (IndexTensor::clamp makes indices fit where that is meant)"
    )
}

impl Family for IndexSelect {
    fn name(&self) -> String {
        format!("index_select[{}]", self.axis)
    }
    fn lower(&self, out: &Shape, inputs: &[&Shape], _: Target) -> Lowering {
        let (outer, size, inner) = inputs[0].around(self.axis);
        kernels::index_select(outer, size, inner, out.dims()[self.axis], self.check)
    }
    fn status_meaning(&self, _: &Shape, inputs: &[&Shape]) -> String {
        out_of_range(self.op, self.axis, inputs[0].dims()[self.axis])
    }
    // Linear in x: ∂L/∂x[d] = Σ_{k : idx[k] = d} g[k]; indices get none.
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let idx = IndexTensor { t: x[1].clone() };
        vec![
            Some(index_add(
                g,
                self.axis,
                &idx,
                x[0].dims()[self.axis],
                self.op,
            )),
            None,
        ]
    }
    fn linear_in(&self) -> &[usize] {
        &[0]
    }
    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        reference::index_select(shapes[0], self.axis, x[0], x[1], out)
    }
}

/// The adjoint of index_select: g's entries along `axis` added into `size`
/// slots at `idx`. Inputs (g, idx) or, segmented, (g, idx, offsets, order).
/// `op` is the user's call whose gradient this is, for messages.
pub(crate) fn index_add(
    g: &Tensor,
    axis: usize,
    idx: &IndexTensor,
    size: usize,
    op: &'static str,
) -> Tensor {
    let mut dims = g.dims().to_vec();
    dims[axis] = size;
    let shape = Shape::new(&dims);
    match idx.host_data() {
        Some(data) => {
            // Counting sort: positions k of each index d, ascending.
            let mut offsets = vec![0u32; size + 1];
            for &i in data.iter() {
                offsets[i as usize + 1] += 1;
            }
            for d in 0..size {
                offsets[d + 1] += offsets[d];
            }
            let mut next = offsets.clone();
            let mut order = vec![0u32; data.len()];
            for (k, &i) in data.iter().enumerate() {
                order[next[i as usize] as usize] = k as u32;
                next[i as usize] += 1;
            }
            let dev = g.device();
            let offsets = IndexTensor::from_vec(dev, offsets, [size + 1]);
            let order = IndexTensor::from_vec(dev, order, [data.len()]);
            Tensor::record_family(
                IndexAdd {
                    axis,
                    segmented: true,
                    op,
                    check: false,
                },
                &[g, &idx.t, &offsets.t, &order.t],
                shape,
            )
        }
        None => Tensor::record_family(
            IndexAdd {
                axis,
                segmented: false,
                op,
                check: idx.needs_check(size),
            },
            &[g, &idx.t],
            shape,
        ),
    }
}

/// With `check`, the kernel reports an index past the axis (as in
/// [`IndexSelect`]); host indices are checked when recorded.
#[derive(Debug)]
pub(crate) struct IndexAdd {
    axis: usize,
    segmented: bool,
    op: &'static str,
    check: bool,
}

impl Family for IndexAdd {
    fn name(&self) -> String {
        format!("index_add[{}]", self.axis)
    }
    fn lower(&self, out: &Shape, inputs: &[&Shape], _: Target) -> Lowering {
        let (outer, k, inner) = inputs[0].around(self.axis);
        let size = out.dims()[self.axis];
        kernels::index_add(outer, k, inner, size, self.segmented, self.check)
    }
    fn status_meaning(&self, out: &Shape, _: &[&Shape]) -> String {
        let op = format!("the gradient of {}", self.op);
        out_of_range(&op, self.axis, out.dims()[self.axis])
    }
    // The adjoint of a scatter-add is the gather: ∂L/∂g[k] = G[idx[k]].
    fn vjp(&self, x: &[Tensor], _: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let mut out = vec![None; x.len()];
        out[0] = Some(g.select_checked(self.op, self.axis, &IndexTensor { t: x[1].clone() }));
        out
    }
    fn linear_in(&self) -> &[usize] {
        &[0]
    }
    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        reference::index_add(shapes[0], self.axis, x[0], x[1], out)
    }
}

/// argmax / argmin along `axis` (removed); u32 results.
#[derive(Debug)]
pub(crate) struct ArgReduce {
    axis: usize,
    smallest: bool,
}

impl Family for ArgReduce {
    fn name(&self) -> String {
        let op = if self.smallest { "argmin" } else { "argmax" };
        format!("{op}[{}]", self.axis)
    }
    fn lower(&self, _: &Shape, inputs: &[&Shape], _: Target) -> Lowering {
        let (outer, size, inner) = inputs[0].around(self.axis);
        kernels::arg_reduce(outer, size, inner, self.smallest)
    }
    // Piecewise constant: no gradient and no tangent.
    fn vjp(&self, _: &[Tensor], _: &Tensor, _: &Tensor) -> Vec<Option<Tensor>> {
        vec![None]
    }
    fn jvp(&self, _: &[Tensor], _: &Tensor, _: &[Option<Tensor>], _: &[usize]) -> Option<Tensor> {
        None
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        reference::arg_reduce(shapes[0], self.axis, x[0], self.smallest)
    }
    fn integer_output(&self) -> bool {
        true
    }
    fn index_bound(&self, inputs: &[&Shape]) -> Option<usize> {
        Some(inputs[0].dims()[self.axis])
    }
}

/// Indices clamped to at most `size - 1` (see [`IndexTensor::clamp`]).
#[derive(Debug)]
pub(crate) struct IndexClamp {
    size: u32,
}

impl Family for IndexClamp {
    fn name(&self) -> String {
        format!("clamp[{}]", self.size)
    }
    fn lower(&self, out: &Shape, _: &[&Shape], _: Target) -> Lowering {
        kernels::index_clamp(out.numel(), self.size)
    }
    // Integer-valued: no gradient and no tangent.
    fn vjp(&self, _: &[Tensor], _: &Tensor, _: &Tensor) -> Vec<Option<Tensor>> {
        vec![None]
    }
    fn jvp(&self, _: &[Tensor], _: &Tensor, _: &[Option<Tensor>], _: &[usize]) -> Option<Tensor> {
        None
    }
    fn reference(&self, _: &Shape, x: &[&[f64]], _: &[&Shape]) -> Vec<f64> {
        let top = f64::from(self.size - 1);
        x[0].iter().map(|&i| i.min(top)).collect()
    }
    fn integer_output(&self) -> bool {
        true
    }
    fn index_bound(&self, _: &[&Shape]) -> Option<usize> {
        Some(self.size as usize)
    }
}

/// `dims` with `axis` of size 1 (checked by the reduction before).
fn keep_axis(dims: &[usize], axis: usize) -> Vec<usize> {
    let mut kept = dims.to_vec();
    kept[axis] = 1;
    kept
}
