//! Max pooling's kernels (`shaders/pool2d.wgsl`): one invocation per output
//! element, gather and scatter sharing the window-argmax function.

use std::borrow::Cow;

use super::Geometry;
use crate::kernel::{Buf, KernelCall, Lowering, grid_1d, word};

pub(crate) const POOL2D: &str = include_str!("../../../shaders/pool2d.wgsl");

pub(super) fn lower(entry: &'static str, g: &Geometry, threads: usize) -> Lowering {
    let params = [
        g.n,
        g.c,
        g.h,
        g.w,
        g.p,
        g.q,
        g.kernel[0],
        g.kernel[1],
        g.stride[0],
        g.stride[1],
        g.padding[0],
        g.padding[1],
    ]
    .map(word)
    .to_vec();
    Lowering {
        temps: Vec::new(),
        kernels: vec![KernelCall {
            source: Cow::Borrowed(POOL2D),
            entry,
            params,
            bindings: vec![Buf::Input(0), Buf::Input(1), Buf::Output],
            groups: grid_1d(threads as u64),
        }],
    }
}
