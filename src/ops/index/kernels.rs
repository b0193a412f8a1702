//! The index ops' kernels (`shaders/index*.wgsl`, `shaders/arg_reduce.wgsl`):
//! one invocation per output element, a shared layout header
//! (`shaders/index.wgsl`, which each includes).

use std::borrow::Cow;
use std::sync::OnceLock;

use askama::Template;

use crate::kernel::{Buf, KernelCall, Lowering, MAX_LOOP_TRIPS, grid_1d, render, word};

/// `index_select` (`shaders/index_select.wgsl`); `check` keeps the lines
/// that report indices past the axis in status words.
#[derive(Template)]
#[template(path = "index_select.wgsl", escape = "none")]
pub(crate) struct IndexSelect {
    pub check: bool,
}

/// `index_add` (`shaders/index_add.wgsl`), `check` as for [`IndexSelect`].
#[derive(Template)]
#[template(path = "index_add.wgsl", escape = "none")]
pub(crate) struct IndexAdd {
    pub check: bool,
}

/// argmin (`smallest`) or argmax along an axis (`shaders/arg_reduce.wgsl`).
#[derive(Template)]
#[template(path = "arg_reduce.wgsl", escape = "none")]
pub(crate) struct ArgReduce {
    pub smallest: bool,
}

/// Indices clamped into the axis (`shaders/index_clamp.wgsl`).
#[derive(Template)]
#[template(path = "index_clamp.wgsl", escape = "none")]
pub(crate) struct IndexClamp;

fn one(
    entry: &'static str,
    source: &'static str,
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
    source: &'static str,
    params: [usize; 5],
    bindings: Vec<Buf>,
    threads: usize,
    steps: usize,
) -> Lowering {
    let chunk = MAX_LOOP_TRIPS as usize;
    let kernels = (0..steps.max(1))
        .step_by(chunk)
        .map(|first| {
            let end = (first + chunk).min(steps);
            let mut words = params.to_vec();
            words.extend([first, end]);
            KernelCall {
                source: Cow::Borrowed(source),
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
        {
            static SOURCES: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
            SOURCES[usize::from(check)].get_or_init(|| render(&IndexSelect { check }))
        },
        [outer, size, inner, count, 0],
        bindings,
        outer * count * inner,
    )
}

pub(super) fn index_clamp(count: usize, size: u32) -> Lowering {
    one(
        "index_clamp",
        {
            static SOURCE: OnceLock<String> = OnceLock::new();
            SOURCE.get_or_init(|| render(&IndexClamp))
        },
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
        {
            static SOURCES: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
            SOURCES[usize::from(check)].get_or_init(|| render(&IndexAdd { check }))
        },
        [outer, k, inner, size, segmented as usize],
        bindings,
        outer * size * inner,
        k,
    )
}

pub(super) fn arg_reduce(outer: usize, size: usize, inner: usize, smallest: bool) -> Lowering {
    static SOURCES: [OnceLock<String>; 2] = [OnceLock::new(), OnceLock::new()];
    chunked(
        "arg_reduce",
        SOURCES[usize::from(smallest)].get_or_init(|| render(&ArgReduce { smallest })),
        [outer, size, inner, 0, 0],
        vec![Buf::Input(0), Buf::Output],
        outer * inner,
        size,
    )
}
