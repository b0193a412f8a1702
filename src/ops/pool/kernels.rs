//! Max pooling's kernels (`shaders/pool2d*.wgsl`): the windows' argmax into
//! a scratch buffer of indices, then one invocation per output element
//! gathering (forward) or scattering (adjoint) through it.

use std::borrow::Cow;

use super::Geometry;
use crate::kernel::{Buf, KernelCall, Lowering, MAX_LOOP_TRIPS, grid_1d, word};

pub(crate) const ARGMAX: &str = concat!(
    include_str!("../../../shaders/pool2d.wgsl"),
    include_str!("../../../shaders/pool2d_argmax.wgsl")
);
pub(crate) const GATHER: &str = concat!(
    include_str!("../../../shaders/pool2d.wgsl"),
    include_str!("../../../shaders/pool2d_gather.wgsl")
);
pub(crate) const SCATTER: &str = concat!(
    include_str!("../../../shaders/pool2d.wgsl"),
    include_str!("../../../shaders/pool2d_scatter.wgsl")
);

/// Which of the pair a lowering computes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// `out[window] = v[argmax]`; inputs (x, v).
    Gather,
    /// `out[pixel] = Σ g[window] over windows whose argmax it is`; inputs (x, g).
    Scatter,
}

/// The kernel `entry` of `source` over `threads` invocations, once per range
/// of at most `MAX_LOOP_TRIPS` window positions (`positions` 0: one call
/// with no loop).
fn calls(
    (entry, source): (&'static str, &'static str),
    g: &Geometry,
    threads: usize,
    positions: usize,
    bindings: Vec<Buf>,
) -> Vec<KernelCall> {
    let chunk = MAX_LOOP_TRIPS as usize;
    (0..positions.max(1))
        .step_by(chunk)
        .map(|first| {
            let end = (first + chunk).min(positions);
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
                first,
                end,
            ];
            KernelCall {
                source: Cow::Borrowed(source),
                entry,
                params: params.map(word).to_vec(),
                bindings: bindings.clone(),
                groups: grid_1d(threads as u64),
                loop_trips: (end - first) as u64,
            }
        })
        .collect()
}

pub(super) fn lower(direction: Direction, g: &Geometry) -> Lowering {
    let windows = g.n * g.c * g.p * g.q;
    let positions = g.kernel[0] * g.kernel[1];
    let mut kernels = calls(
        ("max_pool2d_argmax", ARGMAX),
        g,
        windows,
        positions,
        vec![Buf::Input(0), Buf::Temp(0)],
    );
    let rest = vec![Buf::Temp(0), Buf::Input(1), Buf::Output];
    kernels.extend(match direction {
        Direction::Gather => calls(("max_pool2d_gather", GATHER), g, windows, 0, rest),
        Direction::Scatter => {
            // The windows covering one pixel: at most this many rows of
            // windows by this many columns.
            let along =
                |axis: usize, windows: usize| g.kernel[axis].div_ceil(g.stride[axis]).min(windows);
            let covering = along(0, g.p) * along(1, g.q);
            let pixels = g.n * g.c * g.h * g.w;
            calls(("max_pool2d_scatter", SCATTER), g, pixels, covering, rest)
        }
    });
    Lowering {
        temps: vec![windows],
        kernels,
    }
}
