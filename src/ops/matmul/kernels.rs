//! Matmul's kernels: a family of variants chosen per adapter.
//!
//! - `matmul_vec4`: register-blocked, 8×16 outputs per invocation from vec4
//!   loads, for K and N multiples of 4 (CPU rasterizers: no barriers).
//! - `matmul_strided`: the same blocking with scalar loads at any strides,
//!   for other sizes and for transposed operands read in place.
//! - `matmul_tn`, `matmul_nt`: `matmul_vec4`'s block with A or B
//!   transposed, read in place (the backward pass's Aᵀ·G and G·Bᵀ).
//! - `matmul_sg`: `matmul_vec4`'s block with the subgroup's lanes along
//!   rows, B's loads shared across the subgroup by `subgroupBroadcast`
//!   (CPU rasterizers with fixed-size subgroups: lavapipe's are 8 lanes).
//! - `matmul_strided_sg`: `matmul_strided`'s strides with `matmul_sg`'s
//!   arrangement, for the products `matmul_sg` cannot take.
//! - `matmul_tiled`: workgroups stage tiles in workgroup memory (real GPUs).
//!
//! Every variant computes each output the same way: an accumulator from 0,
//! one `fma` per step along K in K's order (`fma_steps` in
//! `shaders/matmul_blocks.wgsl`). Blocking and
//! loads differ, the arithmetic does not, so the variant autotune keeps
//! (and the family: tiled or register-blocked) never changes a result's
//! bits on a given adapter; `tests/determinism.rs` checks every variant.
//!
//! Each kernel is one WGSL file under `shaders/`; the unrolled ones are
//! askama templates whose loops write one line per accumulator.

use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};

use askama::Template;

use crate::kernel::KernelFamily;
use crate::kernel::{
    Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, Target, Window, fill, render, strided_copy, word,
};
use crate::shape::{Shape, broadcast_strides};

pub(crate) const MATMUL_VEC4: &str = include_str!("../../../shaders/matmul_vec4.wgsl");
pub(crate) const MATMUL_TILED: &str = include_str!("../../../shaders/matmul_tiled.wgsl");

// The generated variants: each is one template under `shaders/` (their
// shared blocks in `matmul_blocks.wgsl`), rendered once per specialization
// and kept for the process (a pipeline cache keys on the source).

#[derive(Template)]
#[template(path = "matmul_strided.wgsl", escape = "none")]
struct MatmulStrided;

#[derive(Template)]
#[template(path = "matmul_tn.wgsl", escape = "none")]
struct MatmulTn;

#[derive(Template)]
#[template(path = "matmul_nt.wgsl", escape = "none")]
struct MatmulNt;

/// `matmul_sg` for subgroups of `lanes` lanes, op(A)·op(B) with op a
/// transpose where `ta`/`tb` say so; each lane loads `loads` vec4 of B per
/// step (16 / lanes, at least 1).
#[derive(Template)]
#[template(path = "matmul_sg.wgsl", escape = "none")]
struct MatmulSg {
    lanes: usize,
    loads: usize,
    ta: bool,
    tb: bool,
}

/// `matmul_strided_sg` for subgroups of `lanes` lanes and `rows` rows of C
/// per lane, under the entry point `entry`.
#[derive(Template)]
#[template(path = "matmul_strided_sg.wgsl", escape = "none")]
struct MatmulStridedSg {
    lanes: usize,
    loads: usize,
    rows: usize,
    entry: &'static str,
}

/// `matmul_strided`: a 4×8 register block from scalar loads at any strides
/// (see its template).
pub(crate) fn matmul_strided_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| render(&MatmulStrided))
}

/// `matmul_tn`: Aᵀ·B with A read in place (see its template).
pub(crate) fn matmul_tn_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| render(&MatmulTn))
}

/// `matmul_nt`: A·Bᵀ with B read in place (see its template).
pub(crate) fn matmul_nt_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| render(&MatmulNt))
}

/// `matmul_sg` for subgroups of `size` lanes (a power of two, 8 to 64),
/// op(A)·op(B) with op a transpose where `(ta, tb)` say so: B's loads
/// shared across the subgroup by `subgroupBroadcast`. On lavapipe, where a
/// lane's load is a gather, that is the difference (20 vs 5 GFLOP/s for
/// [128, 784] @ [784, 256] in a probe). Natively only (naga takes subgroup
/// operations without WGSL's `enable subgroups`, which a browser needs).
pub(crate) fn matmul_sg_source(size: u32, (ta, tb): (bool, bool)) -> &'static str {
    static SOURCES: Sources<(u32, bool, bool)> = Mutex::new(Vec::new());
    rendered_once(&SOURCES, (size, ta, tb), || MatmulSg {
        lanes: size as usize,
        loads: 16usize.div_ceil(size as usize),
        ta,
        tb,
    })
}

/// `matmul_strided_sg` for subgroups of `size` lanes: `matmul_strided`'s
/// parameters with `matmul_sg`'s arrangement, `rows` rows per lane (8, or
/// 2 for the cold start's small kernel: `COLD_ROWS`). The entry point is
/// `matmul_strided_sg` (8 rows) or `matmul_strided_sgR`.
pub(crate) fn matmul_strided_sg_source(size: u32, rows: usize) -> &'static str {
    static SOURCES: Sources<(u32, usize)> = Mutex::new(Vec::new());
    rendered_once(&SOURCES, (size, rows), || MatmulStridedSg {
        lanes: size as usize,
        loads: 16usize.div_ceil(size as usize),
        rows,
        entry: strided_sg_entry(rows),
    })
}

/// Rendered sources by specialization.
type Sources<K> = Mutex<Vec<(K, &'static str)>>;

/// The source `make` renders for `key`, rendered at its first use and kept
/// for the process (a handful of keys: subgroup sizes × flags).
fn rendered_once<K: PartialEq + Copy, T: Template>(
    sources: &Sources<K>,
    key: K,
    make: impl FnOnce() -> T,
) -> &'static str {
    let mut sources = sources.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = sources.iter().find(|(k, _)| *k == key) {
        return s;
    }
    let leaked: &'static str = Box::leak(render(&make()).into_boxed_str());
    sources.push((key, leaked));
    leaked
}

/// Steps along K one dispatch of a product takes at most: a longer K is
/// split over dispatches, each carrying the sums on (the `accumulators`
/// block of `shaders/matmul_blocks.wgsl`),
/// so that no invocation loops more than `MAX_LOOP_TRIPS` times (the
/// strided kernels take one step of K per iteration, the vec4 ones four,
/// the tiled one sixteen). A multiple of 16, so every chunk but the last
/// is whole vec4s and whole tiles.
pub(crate) const K_CHUNK: usize = 16_384;

/// The entry point of `matmul_strided_sg_source(_, rows)`.
fn strided_sg_entry(rows: usize) -> &'static str {
    match rows {
        8 => "matmul_strided_sg",
        4 => "matmul_strided_sg4",
        2 => "matmul_strided_sg2",
        _ => unreachable!("matmul_strided_sg has 2, 4 or 8 rows per lane"),
    }
}

/// Which kernels a lowering may use beyond the family's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Subgroups {
    /// None: `matmul_vec4`, `matmul_tn`, `matmul_nt`, `matmul_strided`.
    Off,
    /// `matmul_sg` where it can go, `matmul_strided_sg` elsewhere.
    On,
    /// `matmul_strided_sg` with `COLD_ROWS` (2) rows per lane for every
    /// product: one pipeline serves them all, so a process that computes
    /// one gradient compiles one matmul kernel, a small one (lavapipe
    /// compiles each at its first dispatch: about 0.3 s for the 8-row
    /// unrolled kernels, about 0.2 s for 4 rows).
    StridedOnly,
}

/// Rows per lane of the cold start's kernel (`Subgroups::StridedOnly`):
/// 2 rather than 4 made a cold process's first gradient about 7% faster
/// on lavapipe (five alternating runs each, medians 590 and 633 ms), its
/// products running slower only until their second sight.
const COLD_ROWS: usize = 2;

/// Variant and grid (z = batch) for an `op(A) @ op(B)` product of
/// `[m, k] @ [k, n]`, op a transpose where `(ta, tb)` say so; `subgroup`
/// the adapter's subgroup size (`None` where the kernels may not use them).
fn variant(
    family: KernelFamily,
    (m, n, k): (usize, usize, usize),
    (ta, tb): (bool, bool),
    (subgroup, which): (Option<u32>, Subgroups),
) -> (&'static str, &'static str, [u32; 2]) {
    let blocks = |cols: usize, rows: usize| [(cols as u32).div_ceil(8), (rows as u32).div_ceil(8)];
    let subgroup = if which == Subgroups::Off {
        None
    } else {
        subgroup
    };
    let vec4_sg = which == Subgroups::On && k % 4 == 0 && n % 4 == 0 && k > 0;
    match (ta, tb, subgroup) {
        (_, _, Some(subgroup)) if vec4_sg && (!ta || m % 4 == 0) => (
            matmul_sg_source(subgroup, (ta, tb)),
            "matmul_sg",
            [
                (n / 4).div_ceil(4) as u32,
                m.div_ceil(8 * subgroup as usize) as u32,
            ],
        ),
        (_, _, Some(subgroup)) => {
            // The cold start's kernel is the smaller one (see `Subgroups`).
            let rows = if which == Subgroups::StridedOnly {
                COLD_ROWS
            } else {
                8
            };
            (
                matmul_strided_sg_source(subgroup, rows),
                strided_sg_entry(rows),
                [
                    n.div_ceil(16) as u32,
                    m.div_ceil(rows * subgroup as usize) as u32,
                ],
            )
        }
        (false, false, _) if family == KernelFamily::Tiled => (
            MATMUL_TILED,
            "matmul_tiled",
            [n.div_ceil(64) as u32, m.div_ceil(64) as u32],
        ),
        (false, false, _) if k % 4 == 0 && n % 4 == 0 && k > 0 => (
            MATMUL_VEC4,
            "matmul_vec4",
            blocks((n / 4).div_ceil(4), m.div_ceil(8)),
        ),
        (true, false, _) if m % 4 == 0 && n % 4 == 0 => (
            matmul_tn_source(),
            "matmul_tn",
            blocks((n / 4).div_ceil(4), m.div_ceil(8)),
        ),
        (false, true, _) if k % 4 == 0 && k > 0 => (
            matmul_nt_source(),
            "matmul_nt",
            blocks(n.div_ceil(16), m.div_ceil(8)),
        ),
        _ => (
            matmul_strided_source(),
            "matmul_strided",
            blocks(n.div_ceil(8), m.div_ceil(4)),
        ),
    }
}

/// Batched `op(A) @ op(B)`, op a transpose of the last two axes where
/// `ta`/`tb` say so (the adjoints' Aᵀ·G and G·Bᵀ): the register-blocked
/// family reads transposed operands in place; the tiled family (and a
/// product too tall for one dispatch) gets them copied to scratch first.
/// An operand whose batch dims only partly broadcast is expanded to the
/// full batch first (into a scratch buffer); one that does not broadcast at
/// all, or is shared by every batch entry, is read in place.
pub(super) fn lower(
    out: &Shape,
    a: &Shape,
    b: &Shape,
    flags: (bool, bool),
    target: Target,
    copy_transposed: bool,
) -> Lowering {
    lower_with(out, a, b, flags, target, copy_transposed, Subgroups::Off)
}

/// [`lower`] with the subgroup kernels `subgroups` allows (the adapter
/// must have them: `target.subgroup`).
pub(super) fn lower_with(
    out: &Shape,
    a: &Shape,
    b: &Shape,
    (ta, tb): (bool, bool),
    target: Target,
    copy_transposed: bool,
    subgroups: Subgroups,
) -> Lowering {
    let sg = (target.subgroup, subgroups);
    let r = out.rank();
    let (m, n) = (out.dims()[r - 2], out.dims()[r - 1]);
    let k = a.dims()[a.rank() - if ta { 2 } else { 1 }];
    let batch_dims = &out.dims()[..r - 2];
    let batch: usize = batch_dims.iter().product();
    let mut low = Lowering::default();
    if k == 0 {
        low.kernels.push(fill(Buf::Output, out.numel(), 0.0));
        return low;
    }
    if super::wide::too_wide(n) && !super::wide::too_wide(m) {
        return super::wide::through_transpose(out, |out_t| {
            lower_with(out_t, b, a, (!tb, !ta), target, copy_transposed, subgroups)
        });
    }
    let mut operand = |x: &Shape, input: usize, rows: usize, cols: usize| -> (Buf, usize) {
        let xb: usize = x.dims()[..x.rank() - 2].iter().product();
        if xb == batch {
            (Buf::Input(input), rows * cols)
        } else if xb == 1 {
            (Buf::Input(input), 0)
        } else {
            let mut full = batch_dims.to_vec();
            full.extend([rows, cols]);
            let full = Shape::new(&full);
            let src = broadcast_strides(x, &full);
            let temp = low.temps.len();
            low.temps.push(full.numel());
            low.kernels.push(strided_copy(
                Buf::Input(input),
                Buf::Temp(temp),
                &Window {
                    dims: full.dims(),
                    src_offset: 0,
                    src_strides: &src,
                    dst_offset: 0,
                    dst_strides: &full.strides(),
                },
            ));
            (Buf::Temp(temp), rows * cols)
        }
    };
    // Each operand as stored: (buffer, batch stride, rows, columns).
    let (a_rows, a_cols) = if ta { (k, m) } else { (m, k) };
    let (b_rows, b_cols) = if tb { (n, k) } else { (k, n) };
    let (sa, stride_a) = operand(a, 0, a_rows, a_cols);
    let (sb, stride_b) = operand(b, 1, b_rows, b_cols);
    let in_place = target.family != KernelFamily::Tiled && !copy_transposed;
    let max_rows = {
        let (_, entry, _) = variant(target.family, (m, n, k), (ta, tb), sg);
        rows_per_group(entry) * MAX_GROUPS_PER_DIM as usize
    };
    let materialize_a = ta && (!in_place || m > max_rows);
    let materialize_b = tb && (!in_place || m > max_rows);
    let mut transpose = |buf: Buf, stride: usize, rows: usize, cols: usize| -> (Buf, usize) {
        // [nb, rows, cols] stored → [nb, cols, rows] contiguous in scratch.
        let nb = if stride == 0 { 1 } else { batch };
        let temp = low.temps.len();
        low.temps.push(nb * rows * cols);
        low.kernels.push(strided_copy(
            buf,
            Buf::Temp(temp),
            &Window {
                dims: &[nb, cols, rows],
                src_offset: 0,
                src_strides: &[stride, 1, cols],
                dst_offset: 0,
                dst_strides: &[rows * cols, rows, 1],
            },
        ));
        (Buf::Temp(temp), stride)
    };
    let (sa, stride_a) = if materialize_a {
        transpose(sa, stride_a, a_rows, a_cols)
    } else {
        (sa, stride_a)
    };
    let (sb, stride_b) = if materialize_b {
        transpose(sb, stride_b, b_rows, b_cols)
    } else {
        (sb, stride_b)
    };
    let flags = (ta && !materialize_a, tb && !materialize_b);
    // A B shared by every batch entry of a contiguous A: the batch is just
    // more rows, [batch·m, k] @ [k, n], one product with more parallelism.
    let (m, batch, stride_a) = if stride_b == 0 && stride_a == m * k && batch > 1 && !flags.0 {
        (batch * m, 1, 0)
    } else {
        (m, batch, stride_a)
    };
    // Rows beyond one dispatch's 65,535 row groups (a [4194304, 1] @ [1, 1]
    // has 131,072 of them): whole chunks of rows become batch entries of one
    // product, the rows left over a product of their own in scratch buffers.
    let (_, entry, _) = variant(target.family, (m, n, k), flags, sg);
    let max_rows = rows_per_group(entry) * MAX_GROUPS_PER_DIM as usize;
    if batch == 1 && m > max_rows {
        let chunks = m / max_rows;
        let done = chunks * max_rows;
        // One B serves every chunk: its batch stride is 0.
        push_products(
            &mut low,
            (target, sg),
            (max_rows, n, k),
            chunks,
            (max_rows * k, 0),
            flags,
            [sa, sb, Buf::Output],
        );
        let rest = m - done;
        if rest > 0 {
            let (ta, tc) = (low.temps.len(), low.temps.len() + 1);
            low.temps.extend([rest * k, rest * n]);
            low.kernels.push(strided_copy(
                sa,
                Buf::Temp(ta),
                &Window {
                    dims: &[rest * k],
                    src_offset: done * k,
                    src_strides: &[1],
                    dst_offset: 0,
                    dst_strides: &[1],
                },
            ));
            push_products(
                &mut low,
                (target, sg),
                (rest, n, k),
                1,
                (0, 0),
                flags,
                [Buf::Temp(ta), sb, Buf::Temp(tc)],
            );
            low.kernels.push(strided_copy(
                Buf::Temp(tc),
                Buf::Output,
                &Window {
                    dims: &[rest * n],
                    src_offset: 0,
                    src_strides: &[1],
                    dst_offset: done * n,
                    dst_strides: &[1],
                },
            ));
        }
        return low;
    }
    push_products(
        &mut low,
        (target, sg),
        (m, n, k),
        batch,
        (stride_a, stride_b),
        flags,
        [sa, sb, Buf::Output],
    );
    low
}

/// Rows of C one workgroup of a variant covers (at least: `matmul_sg`
/// covers 8 per lane of its subgroup, 64 or more).
fn rows_per_group(entry: &str) -> usize {
    match entry {
        "matmul_tiled" | "matmul_vec4" | "matmul_tn" | "matmul_nt" | "matmul_sg"
        | "matmul_strided_sg" => 64,
        // 2 rows × 8 lanes or more.
        "matmul_strided_sg2" => 16,
        // matmul_strided (4 rows × 8 invocations), matmul_strided_sg4
        // (4 rows × 8 lanes or more).
        _ => 32,
    }
}

/// `batch` products `op(A) @ op(B)` of `[m, k] @ [k, n]` (operands at batch
/// strides `strides`), in as many dispatches as the 65,535-group limit on
/// z needs.
fn push_products(
    low: &mut Lowering,
    (target, subgroup): (Target, (Option<u32>, Subgroups)),
    (m, n, k): (usize, usize, usize),
    batch: usize,
    (stride_a, stride_b): (usize, usize),
    (ta, tb): (bool, bool),
    bindings: [Buf; 3],
) {
    let (source, entry, groups) = variant(target.family, (m, n, k), (ta, tb), subgroup);
    // Steps along K per loop iteration: vec4 loads along K take four.
    let per_step = match entry {
        "matmul_vec4" | "matmul_nt" | "matmul_sg" => 4,
        _ => 1,
    };
    let per_dispatch = MAX_GROUPS_PER_DIM as usize;
    for k_first in (0..k).step_by(K_CHUNK) {
        let k_end = (k_first + K_CHUNK).min(k);
        let carry = usize::from(k_first > 0);
        let (first_step, end_step) = (k_first / per_step, k_end / per_step);
        let loop_trips = match entry {
            // Per tile of 16: its loads (4) and its multiply-adds (16).
            "matmul_tiled" => (k_end - k_first).div_ceil(16) * 21,
            _ => end_step - first_step,
        };
        for first in (0..batch).step_by(per_dispatch) {
            let z = (batch - first).min(per_dispatch) as u32;
            let params: Vec<usize> = if entry.starts_with("matmul_strided") {
                // Element strides of A (row, k) and B (k, column) as stored.
                let (a_row, a_k) = if ta { (1, m) } else { (k, 1) };
                let (b_k, b_col) = if tb { (1, k) } else { (n, 1) };
                vec![
                    m, n, k, first, stride_a, stride_b, a_row, a_k, b_k, b_col, first_step,
                    end_step, carry,
                ]
            } else {
                vec![
                    m, n, k, batch, stride_a, stride_b, first, first_step, end_step, carry,
                ]
            };
            low.kernels.push(KernelCall {
                source: Cow::Borrowed(source),
                entry,
                params: params.into_iter().map(word).collect(),
                bindings: bindings.to_vec(),
                groups: [groups[0], groups[1], z],
                loop_trips: loop_trips as u64,
            });
        }
    }
}
