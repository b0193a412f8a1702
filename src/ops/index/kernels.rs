//! The index ops' kernels (`shaders/index*.wgsl`, `shaders/arg_reduce.wgsl`):
//! one invocation per output element, a shared layout header.

use std::borrow::Cow;

use crate::kernel::{Buf, KernelCall, Lowering, grid_1d, word};

const COMMON: &str = include_str!("../../../shaders/index.wgsl");
pub(crate) const INDEX_SELECT: &str = include_str!("../../../shaders/index_select.wgsl");
pub(crate) const INDEX_ADD: &str = include_str!("../../../shaders/index_add.wgsl");
pub(crate) const ARG_REDUCE: &str = include_str!("../../../shaders/arg_reduce.wgsl");

/// The layout header followed by one entry point's bindings and body.
pub(crate) fn source(body: &str) -> String {
    format!("{COMMON}\n{body}")
}

fn one(
    entry: &'static str,
    source: String,
    params: [usize; 5],
    bindings: Vec<Buf>,
    threads: usize,
) -> Lowering {
    Lowering {
        temps: Vec::new(),
        kernels: vec![KernelCall {
            source: Cow::Owned(source),
            entry,
            params: params.map(word).to_vec(),
            bindings,
            groups: grid_1d(threads as u64),
        }],
    }
}

pub(super) fn index_select(outer: usize, size: usize, inner: usize, count: usize) -> Lowering {
    one(
        "index_select",
        source(INDEX_SELECT),
        [outer, size, inner, count, 0],
        vec![Buf::Input(0), Buf::Input(1), Buf::Output],
        outer * count * inner,
    )
}

pub(super) fn index_add(
    outer: usize,
    k: usize,
    inner: usize,
    size: usize,
    segmented: bool,
) -> Lowering {
    // Unsegmented, the segment bindings are unused: bind the indices there.
    let (offsets, order) = if segmented {
        (Buf::Input(2), Buf::Input(3))
    } else {
        (Buf::Input(1), Buf::Input(1))
    };
    one(
        "index_add",
        source(INDEX_ADD),
        [outer, k, inner, size, segmented as usize],
        vec![Buf::Input(0), Buf::Input(1), Buf::Output, offsets, order],
        outer * size * inner,
    )
}

pub(super) fn arg_reduce(outer: usize, size: usize, inner: usize, smallest: bool) -> Lowering {
    let body = ARG_REDUCE.replace("ARGMIN", if smallest { "true" } else { "false" });
    one(
        "arg_reduce",
        source(&body),
        [outer, size, inner, 0, 0],
        vec![Buf::Input(0), Buf::Output],
        outer * inner,
    )
}
