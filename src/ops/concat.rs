//! concat: tensors joined along one axis. A family in one file: shape rule,
//! kernels (one strided copy per part), rules and f64 reference.

use crate::graph::family::Family;
use crate::kernel::{Buf, Lowering, Target, Window, strided_copy};
use crate::shape::{Shape, unravel};
use crate::tensor::Tensor;

impl Tensor {
    /// Joins tensors along `axis`; all other axes must match.
    #[track_caller]
    pub fn concat(tensors: &[&Tensor], axis: usize) -> Tensor {
        assert!(!tensors.is_empty(), "concat: no tensors given");
        let first = tensors[0].shape();
        first.check_axis("concat", axis);
        let mut dims = first.dims().to_vec();
        dims[axis] = 0;
        for t in tensors {
            let ok = t.rank() == first.rank()
                && (0..first.rank()).all(|i| i == axis || t.dims()[i] == first.dims()[i]);
            assert!(
                ok,
                "concat: shape {:?} does not match {first:?} outside axis {axis}",
                t.shape()
            );
            dims[axis] += t.dims()[axis];
        }
        if tensors.len() == 1 {
            return tensors[0].clone();
        }
        Tensor::record_family(Concat { axis }, tensors, Shape::new(&dims))
    }
}

#[derive(Debug)]
pub(crate) struct Concat {
    pub axis: usize,
}

impl Family for Concat {
    fn name(&self) -> String {
        format!("concat[{}]", self.axis)
    }

    fn lower(&self, out: &Shape, inputs: &[&Shape], _: Target) -> Lowering {
        let out_strides = out.strides();
        let mut offset = 0;
        let mut low = Lowering::default();
        for (i, input) in inputs.iter().enumerate() {
            low.kernels.push(strided_copy(
                Buf::Input(i),
                Buf::Output,
                &Window {
                    dims: input.dims(),
                    src_offset: 0,
                    src_strides: &input.strides(),
                    dst_offset: offset * out_strides[self.axis],
                    dst_strides: &out_strides,
                },
            ));
            offset += input.dims()[self.axis];
        }
        low
    }

    // Each part's adjoint is its window of the output's adjoint.
    fn vjp(&self, x: &[Tensor], _y: &Tensor, g: &Tensor) -> Vec<Option<Tensor>> {
        let mut offset = 0;
        x.iter()
            .map(|x| {
                let len = x.dims()[self.axis];
                offset += len;
                Some(g.narrow(self.axis, offset - len..(offset - len) + len))
            })
            .collect()
    }

    // Δ concat(x…) = concat(Δx…), missing tangents as zeros.
    fn jvp(
        &self,
        x: &[Tensor],
        _y: &Tensor,
        dx: &[Option<Tensor>],
        lead: &[usize],
    ) -> Option<Tensor> {
        use crate::graph::family::with_lead;
        let parts: Vec<Tensor> = x
            .iter()
            .zip(dx)
            .map(|(x, d)| {
                d.clone()
                    .unwrap_or_else(|| Tensor::zeros(x.device(), with_lead(lead, x.dims())))
            })
            .collect();
        Some(Tensor::concat(
            &parts.iter().collect::<Vec<_>>(),
            self.axis + lead.len(),
        ))
    }

    fn reference(&self, out: &Shape, x: &[&[f64]], shapes: &[&Shape]) -> Vec<f64> {
        let mut result = vec![0.0; out.numel()];
        let out_strides = out.strides();
        let mut offset = 0;
        for (part, s) in x.iter().zip(shapes) {
            for (i, &v) in part.iter().enumerate() {
                let mut idx = unravel(i, s.dims());
                idx[self.axis] += offset;
                let at: usize = idx.iter().zip(&out_strides).map(|(i, s)| i * s).sum();
                result[at] = v;
            }
            offset += s.dims()[self.axis];
        }
        result
    }
}
