//! Lowering: the kernels that compute one node.

use std::sync::Arc;

use super::Scheduler;
use super::encoder::elementwise_value;
use crate::dtype::DType;
use crate::error::Result;
use crate::exec::codegen::FusedEdge;
use crate::exec::pool::Storage;
use crate::graph::family::Family;
use crate::graph::{Node, Op};
use crate::kernel::{Buf, Target, Window};
use crate::shape::{Shape, broadcast_strides};

impl Scheduler<'_> {
    /// Encodes the kernel(s) computing `node` and returns its value.
    pub(super) fn emit(&mut self, node: &Arc<Node>, fused: FusedEdge) -> Result<Storage> {
        let inputs: Vec<Arc<Node>> = node.inputs().clone();
        let shape = &node.shape;
        match &node.op {
            Op::Input(data) => {
                let out = self.alloc(shape)?;
                if !self.dry {
                    self.plan.uploads.push((out.buffer().clone(), data.clone()));
                }
                Ok(out)
            }
            Op::Indices(data) => {
                // The same bytes: uploads are byte copies.
                let out = self.alloc(shape)?;
                if !self.dry {
                    let bits: Arc<[f32]> = data.iter().map(|&i| f32::from_bits(i)).collect();
                    self.plan.uploads.push((out.buffer().clone(), bits));
                }
                Ok(out)
            }
            // A broadcast or reshaped constant whose consumers compute it
            // (`constant_chain`), needed as a buffer too: a fill kernel.
            Op::Expand | Op::Reshape if fused(node, &inputs[0]) => {
                self.elementwise(shape, elementwise_value(node, fused, None))
            }
            Op::Reshape | Op::Detach | Op::Checkpoint(_) | Op::Custom(_) => {
                Ok(self.value(&inputs[0]))
            }
            Op::Variable(_) => unreachable!("variables are always realized"),
            Op::Assign => {
                let (target, value) = (&inputs[0], &inputs[1]);
                // An update superseded within this realize (or recorded
                // before one already written) keeps its value in a buffer
                // of its own: program order (see `Tensor::assign`).
                let dst = if self.in_place.contains(&node.id) {
                    self.value(target)
                } else {
                    self.alloc(shape)?
                };
                if fused(node, value) {
                    // The update expression computed in place: dst[i] = value(i).
                    let v = elementwise_value(value, fused, Some(target.id));
                    self.elementwise_into(&dst, shape, v);
                } else {
                    let src = self.value(value);
                    let strides = shape.strides();
                    let window = Window {
                        dims: shape.dims(),
                        src_offset: 0,
                        src_strides: &strides,
                        dst_offset: 0,
                        dst_strides: &strides,
                    };
                    self.copy_window(&src, &dst, window);
                }
                Ok(dst)
            }
            // An op family's result rounded to 16 bits: the family stores
            // it so (`fusion::family_stores`).
            Op::Convert(dtype)
                if fused(node, &inputs[0]) && matches!(inputs[0].op, Op::Family(_)) =>
            {
                let Op::Family(f) = &inputs[0].op else {
                    unreachable!("matched above")
                };
                self.emit_family(&inputs[0], f.as_ref(), fused, Some((node, *dtype)))
            }
            Op::Fill(_) | Op::Unary(_) | Op::Binary(_) | Op::Where | Op::Convert(_) => {
                self.elementwise(shape, elementwise_value(node, fused, None))
            }
            Op::Permute(perm) => {
                let in_strides = inputs[0].shape.strides();
                let src: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
                self.copy(&inputs[0], shape, shape.dims(), 0, &src, 0)
            }
            // A broadcast of 16-bit values: the elementwise kernel, which
            // loads and stores them packed (the copy kernel moves words).
            Op::Expand if node.dtype != DType::F32 => {
                self.elementwise(shape, elementwise_value(node, &|_, _| false, None))
            }
            Op::Expand => {
                let src = broadcast_strides(&inputs[0].shape, shape);
                self.copy(&inputs[0], shape, shape.dims(), 0, &src, 0)
            }
            Op::Slice { starts } => {
                let in_strides = inputs[0].shape.strides();
                let offset = starts.iter().zip(&in_strides).map(|(s, t)| s * t).sum();
                self.copy(&inputs[0], shape, shape.dims(), offset, &in_strides, 0)
            }
            Op::Pad { starts } => {
                let out = self.zeros(shape)?;
                let out_strides = shape.strides();
                let offset = starts.iter().zip(&out_strides).map(|(s, t)| s * t).sum();
                let src = self.value(&inputs[0]);
                let in_strides = inputs[0].shape.strides();
                let window = Window {
                    dims: inputs[0].shape.dims(),
                    src_offset: 0,
                    src_strides: &in_strides,
                    dst_offset: offset,
                    dst_strides: &out_strides,
                };
                self.copy_window(&src, &out, window);
                Ok(out)
            }
            Op::Reduce { op, axes } => {
                let prologue = fused(node, &inputs[0]).then_some(fused);
                self.reduce(*op, &inputs[0], axes, shape, prologue)
            }
            Op::Family(f) => self.emit_family(node, f.as_ref(), fused, None),
        }
    }

    /// The kernels of an op family's node: its variants lowered, one
    /// chosen (`choose_variant`), its scratch and status buffers bound.
    /// With `narrowed`, the conversion to 16 bits that reads the node
    /// (and only it) and its dtype: the value returned is that
    /// conversion's, stored by the family's kernels where they can
    /// (`stored_16_bit`), else rounded by a kernel after them.
    fn emit_family(
        &mut self,
        node: &Arc<Node>,
        f: &dyn Family,
        fused: FusedEdge,
        narrowed: Option<(&Arc<Node>, DType)>,
    ) -> Result<Storage> {
        // A fused input is a widening of a 16-bit buffer, read as that
        // buffer (`fusion::family_loads`).
        let inputs: Vec<Arc<Node>> = node
            .inputs()
            .iter()
            .map(|i| {
                if fused(node, i) {
                    i.inputs()[0].clone()
                } else {
                    i.clone()
                }
            })
            .collect();
        let shape = &node.shape;
        let shapes: Vec<&Shape> = inputs.iter().map(|i| &i.shape).collect();
        let target = Target {
            family: self.gpu.kernel_family,
            subgroup: self.gpu.subgroup,
        };
        let mut variants = f.lower_variants(shape, &shapes, target);
        read_16_bit_inputs(&inputs, f, &mut variants, self.gpu.native_f16);
        let dtypes: Vec<DType> = inputs.iter().map(|i| i.dtype).collect();
        let choice = self.choose_variant(f, &variants, shape, &shapes, &dtypes, target)?;
        let mut lowering = variants.swap_remove(choice);
        let out_dtype = match narrowed {
            Some((_, dtype)) if stored_16_bit(&mut lowering, dtype) => dtype,
            _ => node.dtype,
        };
        // A 16-bit output holds two values per word.
        let out = self.alloc(&Shape::new(&[out_dtype.words(node.shape.numel())]))?;
        let temps = lowering
            .temps
            .iter()
            .map(|&n| self.alloc(&Shape::new(&[n])))
            .collect::<Result<Vec<Storage>>>()?;
        let srcs: Vec<Storage> = inputs.iter().map(|i| self.value(i)).collect();
        let status = self.status_words(&lowering, || f.status_meaning(shape, &shapes))?;
        for call in lowering.kernels {
            // Sizes in 32-bit words: a 16-bit buffer holds two values per word.
            self.run(call, &|b| match b {
                Buf::Input(i) => (&srcs[i], inputs[i].dtype.words(inputs[i].shape.numel())),
                Buf::Output => (&out, out_dtype.words(node.shape.numel())),
                Buf::Temp(t) => (&temps[t], lowering.temps[t]),
                Buf::Status => (status.as_ref().expect("allocated when bound"), 2),
            });
        }
        // The scratch buffers go back to the pool: kernels after this one
        // in the submit run after it (in-order execution).
        drop(temps);
        match narrowed {
            Some((conversion, dtype)) if out_dtype != dtype => {
                // The family's kernels could not store 16 bits: the
                // conversion's own kernel, reading the f32 result.
                self.values.insert(node.id, out);
                let value = elementwise_value(conversion, &|_, _| false, None);
                let rounded = self.elementwise(&conversion.shape, value);
                self.values.remove(&node.id);
                rounded
            }
            _ => Ok(out),
        }
    }
}

/// Rewrites `lowering` so that its kernels store the output as packed
/// 16-bit values of `dtype` (`exec/packed.rs`), if it can be: the output
/// must be written by a single kernel call, since a kernel reads its
/// output only to carry on sums an earlier call of its lowering stored
/// there (a long sum split over dispatches, see `kernel::KernelCall`),
/// and those sums must stay f32. A single call's read of its output never
/// runs; it is rewritten all the same, to compile.
fn stored_16_bit(lowering: &mut crate::kernel::Lowering, dtype: DType) -> bool {
    let writers: Vec<usize> = (0..lowering.kernels.len())
        .filter(|&k| lowering.kernels[k].bindings.contains(&Buf::Output))
        .collect();
    let [writer] = writers[..] else {
        return false;
    };
    let call = &mut lowering.kernels[writer];
    let binding = 1 + call
        .bindings
        .iter()
        .position(|b| *b == Buf::Output)
        .expect("found above");
    match crate::exec::packed::write_16_bit(&call.source, binding, dtype) {
        Some(source) => {
            call.source = std::borrow::Cow::Owned(source);
            true
        }
        None => false,
    }
}

/// The kernels of `variants` rewritten to read the node's 16-bit inputs
/// packed, converting in registers (see `exec/packed.rs`).
fn read_16_bit_inputs(
    inputs: &[Arc<Node>],
    f: &dyn Family,
    variants: &mut [crate::kernel::Lowering],
    native_f16: bool,
) {
    if inputs.iter().all(|i| i.dtype == DType::F32) {
        return;
    }
    for call in variants.iter_mut().flat_map(|v| v.kernels.iter_mut()) {
        let packed: Vec<(usize, DType)> = call
            .bindings
            .iter()
            .enumerate()
            .filter_map(|(k, b)| match *b {
                Buf::Input(i) if inputs[i].dtype != DType::F32 => Some((k + 1, inputs[i].dtype)),
                _ => None,
            })
            .collect();
        if packed.is_empty() {
            continue;
        }
        let source = crate::exec::packed::read_16_bit(&call.source, &packed, native_f16)
            .unwrap_or_else(|| {
                panic!(
                    "webgrad: kernel {} of {} declares a float input as something other than \
                 array<f32> or array<vec4<f32>>, so it cannot read 16-bit values (a bug)",
                    call.entry,
                    f.name()
                )
            });
        call.source = std::borrow::Cow::Owned(source);
    }
}
