//! The index ops' kernels (`shaders/index*.wgsl`, `shaders/arg_reduce.wgsl`):
//! one invocation per output element, a shared layout header.

use std::borrow::Cow;

use crate::kernel::{Buf, KernelCall, Lowering, MAX_LOOP_TRIPS, grid_1d, word};

const COMMON: &str = include_str!("../../../shaders/index.wgsl");
pub(crate) const INDEX_SELECT: &str = include_str!("../../../shaders/index_select.wgsl");
pub(crate) const INDEX_ADD: &str = include_str!("../../../shaders/index_add.wgsl");
pub(crate) const ARG_REDUCE: &str = include_str!("../../../shaders/arg_reduce.wgsl");
const INDEX_CLAMP: &str = include_str!("../../../shaders/index_clamp.wgsl");

/// A kernel body with its CHECK lines (reporting indices past the axis in
/// status words) kept or dropped.
pub(crate) fn checked(body: &str, check: bool) -> String {
    let marker = "//CHECK ";
    if check {
        body.replace(marker, "")
    } else {
        body.lines()
            .filter(|l| !l.trim_start().starts_with(marker))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// The index_clamp kernel's source.
pub(crate) fn clamp_source() -> String {
    source(INDEX_CLAMP)
}

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
    chunked(entry, source, params, bindings, threads, 0)
}

/// Dispatches of one kernel whose invocations each loop over up to `steps`
/// steps (of an axis, or of the index list): one per MAX_LOOP_TRIPS
/// steps, with the range as parameter words 5 and 6; each carries on from
/// what the last stored (the kernels say how), so the steps run in the
/// same order as in one loop. `steps` 0: one dispatch, no loop.
fn chunked(
    entry: &'static str,
    source: String,
    params: [usize; 5],
    bindings: Vec<Buf>,
    threads: usize,
    steps: usize,
) -> Lowering {
    let chunk = MAX_LOOP_TRIPS as usize;
    let source: Cow<'static, str> = Cow::Owned(source);
    let kernels = (0..steps.max(1))
        .step_by(chunk)
        .map(|first| {
            let end = (first + chunk).min(steps);
            let mut words = params.to_vec();
            words.extend([first, end]);
            KernelCall {
                source: source.clone(),
                entry,
                params: words.into_iter().map(word).collect(),
                bindings: bindings.clone(),
                groups: grid_1d(threads as u64),
                loop_trips: (end - first) as u64,
            }
        })
        .collect();
    Lowering {
        temps: Vec::new(),
        kernels,
    }
}

pub(super) fn index_select(
    outer: usize,
    size: usize,
    inner: usize,
    count: usize,
    check: bool,
) -> Lowering {
    let mut bindings = vec![Buf::Input(0), Buf::Input(1), Buf::Output];
    if check {
        bindings.push(Buf::Status);
    }
    one(
        "index_select",
        source(&checked(INDEX_SELECT, check)),
        [outer, size, inner, count, 0],
        bindings,
        outer * count * inner,
    )
}

pub(super) fn index_clamp(count: usize, size: u32) -> Lowering {
    one(
        "index_clamp",
        clamp_source(),
        [count, size as usize, 0, 0, 0],
        vec![Buf::Input(0), Buf::Output],
        count,
    )
}

pub(super) fn index_add(
    outer: usize,
    k: usize,
    inner: usize,
    size: usize,
    segmented: bool,
    check: bool,
) -> Lowering {
    // Unsegmented, the segment bindings are unused: bind the indices there.
    let (offsets, order) = if segmented {
        (Buf::Input(2), Buf::Input(3))
    } else {
        (Buf::Input(1), Buf::Input(1))
    };
    let mut bindings = vec![Buf::Input(0), Buf::Input(1), Buf::Output, offsets, order];
    if check {
        bindings.push(Buf::Status);
    }
    // A segment holds at most all k indices.
    chunked(
        "index_add",
        source(&checked(INDEX_ADD, check)),
        [outer, k, inner, size, segmented as usize],
        bindings,
        outer * size * inner,
        k,
    )
}

pub(super) fn arg_reduce(outer: usize, size: usize, inner: usize, smallest: bool) -> Lowering {
    let body = ARG_REDUCE.replace("ARGMIN", if smallest { "true" } else { "false" });
    chunked(
        "arg_reduce",
        source(&body),
        [outer, size, inner, 0, 0],
        vec![Buf::Input(0), Buf::Output],
        outer * inner,
        size,
    )
}
