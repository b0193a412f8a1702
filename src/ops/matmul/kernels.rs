//! Matmul's kernels: a family of variants chosen per adapter.
//!
//! - `matmul_vec4`: register-blocked, 8×16 outputs per invocation from vec4
//!   loads, for K and N multiples of 4 (CPU rasterizers: no barriers).
//! - `matmul_strided`: the same blocking with scalar loads at any strides,
//!   for other sizes and for transposed operands read in place (generated).
//! - `matmul_sg`: `matmul_vec4`'s block with the subgroup's lanes along
//!   rows, B's loads shared across the subgroup by `subgroupBroadcast`
//!   (CPU rasterizers with fixed-size subgroups: lavapipe's are 8 lanes).
//! - `matmul_strided_sg`: `matmul_strided`'s strides with `matmul_sg`'s
//!   arrangement, for the products `matmul_sg` cannot take.
//! - `matmul_tiled`: workgroups stage tiles in workgroup memory (real GPUs).
//!
//! Every variant computes each output the same way: an accumulator from 0,
//! one `fma` per step along K in K's order (`fma_steps`). Blocking and
//! loads differ, the arithmetic does not, so the variant autotune keeps
//! (and the family: tiled or register-blocked) never changes a result's
//! bits on a given adapter; `tests/determinism.rs` checks every variant.

use std::borrow::Cow;

use crate::kernel::KernelFamily;
use crate::kernel::{
    Buf, KernelCall, Lowering, MAX_GROUPS_PER_DIM, Target, Window, fill, strided_copy, word,
};
use crate::shape::{Shape, broadcast_strides};

pub(crate) const MATMUL_VEC4: &str = include_str!("../../../shaders/matmul_vec4.wgsl");
pub(crate) const MATMUL_TILED: &str = include_str!("../../../shaders/matmul_tiled.wgsl");

/// `matmul_strided`: a 4×8 register block from scalar loads at any element
/// strides (p[6..10]: A's row and k strides, B's k and column strides), so
/// transposed operands are read in place and any M, N, K works, edges
/// clamped on load and guarded on store: the fallback for sizes the vec4
/// kernels cannot take (N = 10 classifier layers). A small block: these
/// products are small, and a big unrolled kernel costs cold-start compile
/// time. Generated (one line per accumulator) rather than written by hand.
/// p = [M, N, K, first_batch, a_batch_stride, b_batch_stride, a_row, a_k, b_k, b_col,
/// first step, end step, carry on] (the steps of K this dispatch takes: see
/// [`accumulators`]).
pub(crate) fn matmul_strided_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        const R: usize = 4;
        const Q: usize = 2; // vec4 column groups: 8 columns
        let mut s = String::from(HEADER);
        s += "@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul_strided(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let row0 = gid.y * 4u;
    let col0 = gid.x * 8u;
    if (row0 >= m || col0 >= n) {
        return;
    }
    let batch = gid.z + p[3];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let sak = p[7];
    let sbk = p[8];
";
        for i in 0..R {
            s += &format!("    let ar{i} = ab + min(row0 + {i}u, m - 1u) * p[6];\n");
        }
        for j in 0..4 * Q {
            s += &format!("    let bc{j} = bb + min(col0 + {j}u, n - 1u) * p[9];\n");
        }
        s += &accumulators(R, Q, 12, CLayout::Scalars);
        s += "    var ak = p[10] * sak;\n    var bk = p[10] * sbk;\n    let kk_end = p[11];\n    for (var kk = p[10]; kk < kk_end; kk++) {\n";
        for q in 0..Q {
            let l: Vec<String> = (0..4).map(|t| format!("b[bc{} + bk]", 4 * q + t)).collect();
            s += &format!("        let b{q} = vec4<f32>({});\n", l.join(", "));
        }
        for i in 0..R {
            s += &format!("        let a{i} = a[ar{i} + ak];\n");
            for q in 0..Q {
                s += &format!("        acc{i}{q} = fma(vec4<f32>(a{i}), b{q}, acc{i}{q});\n");
            }
        }
        s += "        ak += sak;\n        bk += sbk;\n    }\n";
        s += &store_scalars(R, Q);
        s += "}\n";
        s
    })
}

const HEADER: &str = "@group(0) @binding(0) var<storage, read> p: array<u32>;
";

/// Where a kernel's block of C lives, for [`accumulators`].
#[derive(Clone, Copy)]
enum CLayout {
    /// `c: array<f32>`, row stride `n`, the block at `row0`, `col0` (elements).
    Scalars,
    /// `c: array<vec4<f32>>`, row stride `n4`, the block at `row0`, `col0` (vec4s).
    Vec4s,
}

/// `var accIQ = vec4<f32>(0.0);` for a block of `rows` × `groups` vec4
/// accumulators (rows of C × groups of 4 columns) or, when parameter word
/// `flag` is 1, the values of C the previous dispatch stored there: a
/// product whose K is split over dispatches (see [`K_CHUNK`]) carries each
/// sum on where the last dispatch left it, the same fmas in the same order
/// as one loop. Reads past the edge are clamped (their sums are never
/// stored).
fn accumulators(rows: usize, groups: usize, flag: usize, c: CLayout) -> String {
    let mut s = String::new();
    for i in 0..rows {
        for q in 0..groups {
            s += &format!("    var acc{i}{q} = vec4<f32>(0.0);\n");
        }
    }
    s += &format!("    if (p[{flag}] == 1u) {{\n");
    for i in 0..rows {
        let row = format!("cb + min(row0 + {i}u, m - 1u)");
        for q in 0..groups {
            let load = match c {
                CLayout::Scalars => {
                    let l: Vec<String> = (0..4)
                        .map(|t| format!("c[{row} * n + min(col0 + {}u, n - 1u)]", 4 * q + t))
                        .collect();
                    format!("vec4<f32>({})", l.join(", "))
                }
                CLayout::Vec4s => format!("c[{row} * n4 + min(col0 + {q}u, n4 - 1u)]"),
            };
            s += &format!("        acc{i}{q} = {load};\n");
        }
    }
    s += "    }\n";
    s
}

/// Steps along K one dispatch of a product takes at most: a longer K is
/// split over dispatches, each carrying the sums on (see [`accumulators`]),
/// so that no invocation loops more than `MAX_LOOP_TRIPS` times (the
/// strided kernels take one step of K per iteration, the vec4 ones four,
/// the tiled one sixteen). A multiple of 16, so every chunk but the last
/// is whole vec4s and whole tiles.
pub(crate) const K_CHUNK: usize = 16_384;

/// `accIG` advanced by four steps along K, one `fma` each in order
/// (`aI.x·b0G`, then `aI.y·b1G`, ...): every matmul variant accumulates
/// each output this way, from 0 up along K, so the variant autotune picks
/// cannot change a result's bits.
pub(crate) fn fma_steps(i: usize, g: usize) -> String {
    let mut sum = format!("acc{i}{g}");
    for (q, lane) in ["x", "y", "z", "w"].iter().enumerate() {
        sum = format!("fma(a{i}.{lane}{lane}{lane}{lane}, b{q}{g}, {sum})");
    }
    sum
}

/// Stores that block into a scalar `c` (row stride `n`, batch offset `cb`)
/// one element at a time, rows and columns past the edge skipped: any N.
fn store_scalars(rows: usize, groups: usize) -> String {
    let mut s = String::new();
    for i in 0..rows {
        s += &format!(
            "    if (row0 + {i}u < m) {{\n        let o = cb + (row0 + {i}u) * n + col0;\n"
        );
        for j in 0..4 * groups {
            let lane = ["x", "y", "z", "w"][j % 4];
            s += &format!(
                "        if (col0 + {j}u < n) {{ c[o + {j}u] = acc{i}{}.{lane}; }}\n",
                j / 4
            );
        }
        s += "    }\n";
    }
    s
}

/// `matmul_tn`: Aᵀ·B with A stored [k, m], the ∂L/∂B = Aᵀ·G of the backward
/// pass, read in place: per step along K one vec4 pair of A's column
/// (8 rows of op(A)) and four vec4 of B's row, an outer product into the
/// same 8×16 block of accumulators as `matmul_vec4` (as many loads per
/// multiply-add). For M and N multiples of 4.
/// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch, first
/// step, end step, carry on] (steps of K, or of K/4 for vec4 loads along K).
pub(crate) fn matmul_tn_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let mut s = String::from(HEADER);
        s += "@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;

@compute @workgroup_size(8, 8, 1)
fn matmul_tn(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n4 = p[1] / 4u;
    let k = p[2];
    let m4 = m / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 4u;
    if (row0 >= m || col0 >= n4) {
        return;
    }
    let batch = gid.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n4;
    let ac0 = ab + min(row0 / 4u, m4 - 1u);
    let ac1 = ab + min(row0 / 4u + 1u, m4 - 1u);
";
        for q in 0..4 {
            s += &format!("    let bc{q} = bb + min(col0 + {q}u, n4 - 1u);\n");
        }
        s += &accumulators(8, 4, 9, CLayout::Vec4s);
        s += "    let kk_end = p[8];\n    for (var kk = p[7]; kk < kk_end; kk++) {\n        let ar = kk * m4;\n        let br = kk * n4;\n";
        s += "        let a0 = a[ac0 + ar];\n        let a1 = a[ac1 + ar];\n";
        for q in 0..4 {
            s += &format!("        let b{q} = b[bc{q} + br];\n");
        }
        for i in 0..8 {
            let lane = ["x", "y", "z", "w"][i % 4];
            for q in 0..4 {
                s += &format!(
                    "        acc{i}{q} = fma(vec4<f32>(a{}.{lane}), b{q}, acc{i}{q});\n",
                    i / 4
                );
            }
        }
        s += "    }\n";
        for i in 0..8 {
            s += &format!(
                "    if (row0 + {i}u < m) {{\n        let o = cb + (row0 + {i}u) * n4 + col0;\n        c[o] = acc{i}0;\n"
            );
            for q in 1..4 {
                s += &format!("        if (col0 + {q}u < n4) {{ c[o + {q}u] = acc{i}{q}; }}\n");
            }
            s += "    }\n";
        }
        s += "}\n";
        s
    })
}

/// `matmul_nt`: A·Bᵀ with B stored [n, k], the ∂L/∂A = G·Bᵀ of the backward
/// pass, read in place: vec4 loads along K of 8 rows of A and 16 rows of
/// stored B, 512 multiply-adds per step into an 8×16 block (as many loads
/// per multiply-add as `matmul_vec4`), each output's four in K's order. For K a multiple of 4; any N (the
/// block's columns are stored one by one, guarded).
/// p = [M, N, K, batch, a_batch_stride, b_batch_stride, first_batch, first
/// step, end step, carry on] (steps of K, or of K/4 for vec4 loads along K).
pub(crate) fn matmul_nt_source() -> &'static str {
    static SOURCE: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SOURCE.get_or_init(|| {
        let mut s = String::from(HEADER);
        s += "@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

@compute @workgroup_size(8, 8, 1)
fn matmul_nt(@builtin(global_invocation_id) gid: vec3<u32>) {
    let m = p[0];
    let n = p[1];
    let k4 = p[2] / 4u;
    let row0 = gid.y * 8u;
    let col0 = gid.x * 16u;
    if (row0 >= m || col0 >= n) {
        return;
    }
    let batch = gid.z + p[6];
    let ab = batch * (p[4] / 4u);
    let bb = batch * (p[5] / 4u);
    let cb = batch * m * n;
";
        for i in 0..8 {
            s += &format!("    let ar{i} = ab + min(row0 + {i}u, m - 1u) * k4;\n");
        }
        for j in 0..16 {
            s += &format!("    let bc{j} = bb + min(col0 + {j}u, n - 1u) * k4;\n");
        }
        s += &accumulators(8, 4, 9, CLayout::Scalars);
        s += "    let kk_end = p[8];\n    for (var kk = p[7]; kk < kk_end; kk++) {\n";
        for j in 0..16 {
            s += &format!("        let b{j} = b[bc{j} + kk];\n");
        }
        for i in 0..8 {
            s += &format!("        let a{i} = a[ar{i} + kk];\n");
            // Four steps along K in order, one fma each (not `dot`, whose
            // order is the driver's): the same bits as every other variant.
            for q in 0..4 {
                let mut sum = format!("acc{i}{q}");
                for lane in ["x", "y", "z", "w"] {
                    let along: Vec<String> =
                        (0..4).map(|t| format!("b{}.{lane}", 4 * q + t)).collect();
                    sum = format!(
                        "fma(a{i}.{lane}{lane}{lane}{lane}, vec4<f32>({}), {sum})",
                        along.join(", ")
                    );
                }
                s += &format!("        acc{i}{q} = {sum};\n");
            }
        }
        s += "    }\n";
        s += &store_scalars(8, 4);
        s += "}\n";
        s
    })
}

/// `matmul_sg` for subgroups of `size` lanes (a power of two, 8 to 64),
/// op(A)·op(B) with op a transpose where `(ta, tb)` say so, read in place:
/// `matmul_vec4`'s 8×16 block per invocation and its parameters, but one
/// subgroup per workgroup with its lanes along rows (lane l computes rows
/// 8l..8l+8 of the workgroup's 8·size) and all lanes on the same 16
/// columns. Per step of 4 along K the lanes need the same 16 vec4 of B:
/// each loads 16/size of them and `subgroupBroadcast` hands every lane
/// all 16, so a lane loads 8 vec4 of A and 2 of B (on 8 lanes) instead of
/// 8 and 16. On lavapipe, where a lane's load is a gather, that is the
/// difference (20 vs 5 GFLOP/s for [128, 784] @ [784, 256] in a probe).
/// A transposed A is read as two vec4 of 4 rows per step along K, a
/// transposed B as a vec4 along K per column, regrouped after the
/// broadcast: as many loads as the plain product. For K and N multiples of
/// 4, and M too when A is transposed. No early return: a broadcast needs
/// every lane; edges are clamped on load and skipped on store. Natively
/// only (naga takes subgroup operations without WGSL's `enable
/// subgroups`, which a browser needs).
pub(crate) fn matmul_sg_source(size: u32, (ta, tb): (bool, bool)) -> &'static str {
    type Sources = Vec<((u32, bool, bool), &'static str)>;
    static SOURCES: std::sync::Mutex<Sources> = std::sync::Mutex::new(Vec::new());
    let mut sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = sources.iter().find(|(key, _)| *key == (size, ta, tb)) {
        return s;
    }
    let lanes = size as usize;
    let loads = 16usize.div_ceil(lanes);
    let mut s = String::from(HEADER);
    s += "@group(0) @binding(1) var<storage, read> a: array<vec4<f32>>;\n";
    s += "@group(0) @binding(2) var<storage, read> b: array<vec4<f32>>;\n";
    s += "@group(0) @binding(3) var<storage, read_write> c: array<vec4<f32>>;\n\n";
    s += &format!("@compute @workgroup_size({lanes}, 1, 1)\n");
    s += "fn matmul_sg(@builtin(workgroup_id) wg: vec3<u32>, \
          @builtin(subgroup_invocation_id) sl: u32) {\n";
    s += "    let m = p[0];\n    let n4 = p[1] / 4u;\n    let k4 = p[2] / 4u;\n";
    s += "    let batch = wg.z + p[6];\n    let ab = batch * (p[4] / 4u);\n";
    s += "    let bb = batch * (p[5] / 4u);\n    let cb = batch * m * n4;\n";
    s += &format!("    let row0 = wg.y * {}u + sl * 8u;\n", 8 * lanes);
    s += "    let col0 = wg.x * 4u;\n";
    if ta {
        // A stored [k, m]: rows row0..row0+8 of op(A) at one k are two
        // vec4 of that k's row of A (clamped at the last vec4).
        s += "    let m4 = m / 4u;\n";
        for h in 0..2 {
            s += &format!("    let ac{h} = ab + min(row0 / 4u + {h}u, m4 - 1u);\n");
        }
    } else {
        for i in 0..8 {
            s += &format!("    let ar{i} = ab + min(row0 + {i}u, m - 1u) * k4;\n");
        }
    }
    // Lane sl loads the vec4 number j·size + sl of the 16 B needs per step.
    for j in 0..loads {
        s += &format!("    let t{j} = min({}u + sl, 15u);\n", j * lanes);
        if tb {
            // Number t: column 4·col0 + t of op(B), 4 values along K.
            s += &format!("    let bo{j} = bb + min(col0 * 4u + t{j}, n4 * 4u - 1u) * k4;\n");
        } else {
            // Number 4q + g: row q (of the step) of B, column group g.
            s += &format!(
                "    let bo{j} = bb + (t{j} / 4u) * n4 + min(col0 + t{j} % 4u, n4 - 1u);\n"
            );
        }
    }
    s += &accumulators(8, 4, 9, CLayout::Vec4s);
    s += "    let kk_end = p[8];\n    for (var kk = p[7]; kk < kk_end; kk++) {\n";
    for j in 0..loads {
        if tb {
            s += &format!("        let l{j} = b[bo{j} + kk];\n");
        } else {
            s += &format!("        let l{j} = b[bo{j} + kk * 4u * n4];\n");
        }
    }
    // bQG: row Q of the step's 4 rows of op(B), columns 4G..4G+4.
    if tb {
        for t in 0..16 {
            s += &format!(
                "        let col{t} = subgroupBroadcast(l{}, {}u);\n",
                t / lanes,
                t % lanes
            );
        }
        for q in 0..4 {
            let lane = ["x", "y", "z", "w"][q];
            for g in 0..4 {
                let parts: Vec<String> =
                    (0..4).map(|t| format!("col{}.{lane}", 4 * g + t)).collect();
                s += &format!("        let b{q}{g} = vec4<f32>({});\n", parts.join(", "));
            }
        }
    } else {
        for q in 0..4 {
            for g in 0..4 {
                let t = 4 * q + g;
                s += &format!(
                    "        let b{q}{g} = subgroupBroadcast(l{}, {}u);\n",
                    t / lanes,
                    t % lanes
                );
            }
        }
    }
    if ta {
        for q in 0..4 {
            for h in 0..2 {
                s += &format!("        let at{q}{h} = a[ac{h} + (kk * 4u + {q}u) * m4];\n");
            }
        }
    }
    for i in 0..8 {
        if ta {
            let lane = ["x", "y", "z", "w"][i % 4];
            let parts: Vec<String> = (0..4).map(|q| format!("at{q}{}.{lane}", i / 4)).collect();
            s += &format!("        let a{i} = vec4<f32>({});\n", parts.join(", "));
        } else {
            s += &format!("        let a{i} = a[ar{i} + kk];\n");
        }
        for g in 0..4 {
            s += &format!("        acc{i}{g} = {};\n", fma_steps(i, g));
        }
    }
    s += "    }\n";
    for i in 0..8 {
        s += &format!("    if (row0 + {i}u < m) {{\n");
        s += &format!("        let o = cb + (row0 + {i}u) * n4 + col0;\n");
        s += &format!("        c[o] = acc{i}0;\n");
        for g in 1..4 {
            s += &format!("        if (col0 + {g}u < n4) {{ c[o + {g}u] = acc{i}{g}; }}\n");
        }
        s += "    }\n";
    }
    s += "}\n";
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    sources.push(((size, ta, tb), leaked));
    leaked
}

/// `matmul_strided_sg` for subgroups of `size` lanes: `matmul_strided`'s
/// parameters (any element strides: transposed operands in place, any M,
/// N, K) with `matmul_sg`'s arrangement — one subgroup per workgroup,
/// lanes along rows, `rows` rows × 16 columns per lane — and B's 16
/// values per step along K loaded 16/size per lane and broadcast. With 8
/// rows a lane loads per step 8 values of A and 2 of B (8 lanes) for 128
/// multiply-adds, where `matmul_strided` loads 4 and 8 for 32: for the
/// products the vec4 kernels cannot take (N = 10). With 2 rows it is a
/// quarter of the kernel for lavapipe to compile: the cold start's one
/// matmul kernel (`COLD_ROWS`). The entry point is `matmul_strided_sg`
/// (8 rows) or `matmul_strided_sgR`.
pub(crate) fn matmul_strided_sg_source(size: u32, rows: usize) -> &'static str {
    type Sources = Vec<((u32, usize), &'static str)>;
    static SOURCES: std::sync::Mutex<Sources> = std::sync::Mutex::new(Vec::new());
    let mut sources = SOURCES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, s)) = sources.iter().find(|(key, _)| *key == (size, rows)) {
        return s;
    }
    let entry = strided_sg_entry(rows);
    let lanes = size as usize;
    let loads = 16usize.div_ceil(lanes);
    let mut s = String::from(HEADER);
    s += "@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;

";
    s += &format!(
        "@compute @workgroup_size({lanes}, 1, 1)
fn {entry}(@builtin(workgroup_id) wg: vec3<u32>, @builtin(subgroup_invocation_id) sl: u32) {{
    let m = p[0];
    let n = p[1];
    let k = p[2];
    let batch = wg.z + p[3];
    let ab = batch * p[4];
    let bb = batch * p[5];
    let cb = batch * m * n;
    let sak = p[7];
    let sbk = p[8];
    let row0 = wg.y * {group_rows}u + sl * {rows}u;
    let col0 = wg.x * 16u;
",
        group_rows = rows * lanes
    );
    for i in 0..rows {
        s += &format!(
            "    let ar{i} = ab + min(row0 + {i}u, m - 1u) * p[6];
"
        );
    }
    for j in 0..loads {
        s += &format!(
            "    let bo{j} = bb + min(col0 + min({}u + sl, 15u), n - 1u) * p[9];
",
            j * lanes
        );
    }
    s += &accumulators(rows, 4, 12, CLayout::Scalars);
    s += "    var ak = p[10] * sak;
    var bk = p[10] * sbk;
    let kk_end = p[11];
    for (var kk = p[10]; kk < kk_end; kk++) {
";
    for j in 0..loads {
        s += &format!(
            "        let l{j} = b[bo{j} + bk];
"
        );
    }
    for q in 0..4 {
        let parts: Vec<String> = (0..4)
            .map(|t| {
                let col = 4 * q + t;
                format!("subgroupBroadcast(l{}, {}u)", col / lanes, col % lanes)
            })
            .collect();
        s += &format!(
            "        let b{q} = vec4<f32>({});
",
            parts.join(", ")
        );
    }
    for i in 0..rows {
        s += &format!(
            "        let a{i} = a[ar{i} + ak];
"
        );
        for q in 0..4 {
            s += &format!(
                "        acc{i}{q} = fma(vec4<f32>(a{i}), b{q}, acc{i}{q});
"
            );
        }
    }
    s += "        ak += sak;
        bk += sbk;
    }
";
    s += &store_scalars(rows, 4);
    s += "}
";
    let leaked: &'static str = Box::leak(s.into_boxed_str());
    sources.push(((size, rows), leaked));
    leaked
}

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
