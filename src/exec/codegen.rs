//! Generates `value(i)`: the WGSL function computing element i of a fused
//! tree of elementwise ops (its loads and body from the graph, put together
//! by the `shaders/value_fn.wgsl` template). The elementwise kernel stores it
//! (`shaders/elementwise.wgsl`); the reduce kernel folds it
//! (`shaders/reduce.wgsl`), so a chain feeding a sum never touches memory.
//!
//! The tree is rooted at one node and descends along the edges the scheduler
//! chose to fuse; every other input is a buffer, loaded with broadcast-aware
//! indexing. A fused broadcast_to is just such a load.

use askama::Template;
use rustc_hash::FxHashMap as HashMap;
use std::sync::Arc;

use crate::dtype::DType;
use crate::graph::{Node, NodeId, Op};
use crate::kernel::render;
use crate::shape::broadcast_strides;

/// Most input buffers one fused kernel reads (8 storage bindings per stage
/// in WebGPU: parameters, output and six inputs).
pub(crate) const MAX_FUSED_INPUTS: usize = 6;
/// Most nodes fused into one kernel (keeps shaders small to compile).
pub(crate) const MAX_FUSED_NODES: usize = 64;

/// Bindings and code of a generated `value` function.
pub(crate) struct ValueFn {
    /// Input bindings (src0 at binding 2, ...) and the function itself.
    pub code: String,
    /// The nodes whose buffers are bound to src0, src1, ...
    pub inputs: Vec<Arc<Node>>,
    /// Parameter words, to be placed at `param_base` in `p`.
    pub params: Vec<u32>,
    /// The node whose constant each parameter word is (a replayed plan
    /// puts the new graph's constants there: see `replay.rs`).
    pub constants: Vec<NodeId>,
    /// The code defines `value4(i)`, elements 4i .. 4i + 3 as a vec4,
    /// instead of `value(i)` (see [`value_fn_vec4`]).
    pub vec4: bool,
    /// The root's dtype: an elementwise kernel storing a 16-bit one packs
    /// two values per word (`shaders/elementwise.wgsl`).
    pub out_dtype: DType,
}

/// The generated function's parts, put together by `shaders/value_fn.wgsl`.
#[derive(Template)]
#[template(path = "value_fn.wgsl", escape = "none")]
struct ValueTemplate<'a> {
    /// Element type of each input binding (src0, src1, ...).
    inputs: Vec<&'a str>,
    /// Writes `value4` (with a scalar `value_s`) instead of `value`.
    vec4: bool,
    /// vec4 code: `value4` applies a scalar `value_s` to each component
    /// (a plain load needs none).
    value_s: bool,
    /// `value_s`'s parameters.
    params: String,
    /// The loads of the input values, one `let` each.
    loads: String,
    /// One `let` per fused op.
    body: String,
    /// The name holding the result.
    result: String,
    /// `value4`'s returned vec4 (vec4 code only).
    vec4_result: String,
}

impl ValueTemplate<'_> {
    /// A `value` (or `value4`) that loads element i of one buffer.
    fn load(vec4: bool) -> ValueTemplate<'static> {
        let element = if vec4 { "vec4<f32>" } else { "f32" };
        ValueTemplate {
            inputs: vec![element],
            vec4,
            value_s: false,
            params: String::new(),
            loads: String::new(),
            body: String::new(),
            result: "src0[i]".to_string(),
            vec4_result: "src0[i]".to_string(),
        }
    }
}

/// Which edges (consumer → input) of the graph are fused.
pub(crate) type FusedEdge<'a> = &'a dyn Fn(&Node, &Node) -> bool;

/// `value(i)` for the tree rooted at `root` (shape `root.shape`, row-major
/// index i). Its parameter words start at `p[param_base]`.
pub(crate) fn value_fn(root: &Arc<Node>, fused: FusedEdge, param_base: usize) -> ValueFn {
    value_fn_in_place(root, fused, param_base, None)
}

/// Fewer elements than this run one per invocation: too few for the loads
/// to matter, while a four-element kernel is four times the arithmetic
/// code for lavapipe to compile at its first dispatch (a cold start pays
/// it). Also keeps vec4 bindings non-empty (WebGPU's minimum binding size
/// is one element of the array).
pub(crate) const VEC4_MIN_ELEMENTS: usize = 1024;

/// `value4(i)`: elements 4i .. 4i + 3 of the tree rooted at `root`, as a
/// vec4. Buffers of the root's shape are read as vec4, one-element buffers
/// once; a broadcast input, where the root's last axis is a multiple of 4
/// long, as a vec4 of its last axis or (broadcast along the last axis) one
/// element for all four. `None` where the element count is below
/// [`VEC4_MIN_ELEMENTS`] or not a multiple of 4, or an input is broadcast
/// and the last axis is not.
///
/// Why: lavapipe turns each storage-buffer access into a loop over the
/// SIMD lanes with a bounds check per element, and that loop, not the
/// arithmetic, bounds elementwise kernels on a CPU. A vec4 access is one
/// such loop for four elements: the fused gradient of the bench's
/// elementwise chain runs 2× faster. The arithmetic is the scalar code,
/// applied to each component in turn, so every element gets the same bits
/// as from `value(i)`.
pub(crate) fn value_fn_vec4(
    root: &Arc<Node>,
    fused: FusedEdge,
    param_base: usize,
    in_place: Option<NodeId>,
) -> Option<ValueFn> {
    let n = root.shape.numel();
    if n < VEC4_MIN_ELEMENTS || !n.is_multiple_of(4) || root.dtype != DType::F32 {
        return None;
    }
    generate(root, fused, param_base, in_place, true)
}

/// [`value_fn`] for a kernel that overwrites `in_place` (a variable of the
/// root's shape): loads of it read the output binding `dst[i]`, since WebGPU
/// forbids binding one buffer twice in a dispatch when one binding writes.
pub(crate) fn value_fn_in_place(
    root: &Arc<Node>,
    fused: FusedEdge,
    param_base: usize,
    in_place: Option<NodeId>,
) -> ValueFn {
    generate(root, fused, param_base, in_place, false).expect("scalar code is always possible")
}

/// How a generated function reads one input buffer.
#[derive(Clone, Copy, PartialEq)]
enum Load {
    /// Element i of a buffer of the root's shape (a vec4 in vec4 code).
    Same,
    /// The only element of a one-element buffer.
    Scalar,
    /// A broadcast-aware strided load (scalar code).
    Strided,
    /// In vec4 code, a broadcast input whose last axis is the output's:
    /// a vec4 of it (a bias added to rows).
    Row,
    /// In vec4 code, a broadcast input of size 1 along the last axis: one
    /// element for all four (a per-row statistic).
    Splat,
}

impl Load {
    /// Read as vec4s, one value per component.
    fn wide(self) -> bool {
        matches!(self, Load::Same | Load::Row)
    }
}

/// The code of `value(i)`, or of `value4(i)` when `vec4` (`None` when a
/// load cannot be a vec4 one).
fn generate(
    root: &Arc<Node>,
    fused: FusedEdge,
    param_base: usize,
    in_place: Option<NodeId>,
    vec4: bool,
) -> Option<ValueFn> {
    let out = &root.shape;
    let mut kinds: Vec<Load> = Vec::new();
    let mut reads_old = false;
    let mut inputs: Vec<Arc<Node>> = Vec::new();
    let mut loads: Vec<String> = Vec::new();
    let mut consts: Vec<f32> = Vec::new();
    let mut constants: Vec<NodeId> = Vec::new();
    let mut body: Vec<String> = Vec::new();
    let mut name_of: HashMap<NodeId, String> = HashMap::default();

    // Iterative post-order over the tree. (node, expanded?, computed here?,
    // read as a widening load?)
    let mut stack: Vec<(Arc<Node>, bool, bool, bool)> = vec![(root.clone(), false, true, false)];
    while let Some((node, expanded, computed, widening)) = stack.pop() {
        if name_of.contains_key(&node.id) {
            continue;
        }
        if !computed {
            // A buffer input, or a fused broadcast_to of one: a load.
            // A broadcast that already has a value (read earlier) is a
            // buffer like any other; its input may be long gone.
            let source = if (matches!(node.op, Op::Expand) || widening) && !node.is_realized() {
                node.inputs()[0].clone()
            } else {
                node.clone()
            };
            if let Some(name) = name_of.get(&source.id) {
                name_of.insert(node.id, name.clone());
                continue;
            }
            if in_place == Some(source.id) && &source.shape == out {
                reads_old = true;
                loads.push("    let old = dst[i];".to_string());
                name_of.insert(source.id, "old".to_string());
                name_of.insert(node.id, "old".to_string());
                continue;
            }
            let k = inputs.len();
            // 16-bit values are read in scalar code only (two per word).
            if vec4 && source.dtype != DType::F32 {
                return None;
            }
            let index = if &source.shape == out {
                kinds.push(Load::Same);
                "i".to_string()
            } else if source.shape.numel() == 1 {
                kinds.push(Load::Scalar);
                "0u".to_string()
            } else {
                let strides = broadcast_strides(&source.shape, out);
                let (rem, index) = if !vec4 {
                    kinds.push(Load::Strided);
                    ("i", format!("j{k}"))
                } else if out.dims().last().is_none_or(|d| d % 4 != 0) {
                    // Four consecutive elements could straddle two rows.
                    return None;
                } else if strides.last() == Some(&0) {
                    // The four share every coordinate but the last, along
                    // which the input is broadcast: one element.
                    kinds.push(Load::Splat);
                    ("i * 4u", format!("j{k}"))
                } else {
                    // The input moves along the last axis with stride 1:
                    // the four are one vec4 of it.
                    kinds.push(Load::Row);
                    ("i * 4u", format!("j{k} / 4u"))
                };
                loads.push(format!("    var j{k} = 0u;\n    var rem{k} = {rem};"));
                loads.push(broadcast_index(k, out.dims(), &strides));
                index
            };
            loads.push(format!(
                "    let x{k} = {};",
                load_expr(source.dtype, k, &index)
            ));
            name_of.insert(source.id, format!("x{k}"));
            name_of.insert(node.id, format!("x{k}"));
            inputs.push(source);
            continue;
        }
        if !expanded {
            stack.push((node.clone(), true, true, false));
            for input in node.inputs().iter().rev() {
                // A fused broadcast is a load of its input, unless it
                // broadcasts a constant it computes (the planner's `constant_chain`).
                let widening = fused(&node, input) && widening_load(&node, input, fused);
                let computed = fused(&node, input)
                    && (!matches!(input.op, Op::Expand) || fused(input, &input.inputs()[0]))
                    && !widening;
                stack.push((input.clone(), false, computed, widening));
            }
            continue;
        }
        let args: Vec<String> = node
            .inputs()
            .iter()
            .map(|i| name_of[&i.id].clone())
            .collect();
        let mut constant = |c: f32| {
            consts.push(c);
            constants.push(node.id);
            format!("{{{{C{}}}}}", consts.len() - 1)
        };
        let expr = match &node.op {
            Op::Fill(v) => constant(*v),
            Op::Unary(u) => {
                let c = u.constant().map(&mut constant).unwrap_or_default();
                u.rule().wgsl.replace("{x}", &args[0]).replace("{c}", &c)
            }
            // NaN counts as nonzero (the reference's rule); drivers may
            // compare `!=` ordered, so NaN is tested by its bits.
            Op::Where => format!(
                "select({}, {}, {m} != 0.0 || wg_isnan({m}))",
                args[2],
                args[1],
                m = args[0]
            ),
            // A broadcast or reshaped constant (the scheduler fuses these
            // edges only above a constant): the constant itself.
            Op::Expand | Op::Reshape => args[0].clone(),
            // Widening is exact: the value in registers is already it. A
            // 16-bit root is rounded by the store; any other rounding is
            // done here, exactly where the value would have been stored,
            // so results do not depend on what was fused.
            Op::Convert(DType::F32) => args[0].clone(),
            Op::Convert(_) if Arc::ptr_eq(&node, root) => args[0].clone(),
            Op::Convert(d) => format!("wg_from_{d}(wg_to_{d}({}))", args[0]),
            Op::Binary(b) => b
                .info()
                .wgsl
                .replace("{a}", &args[0])
                .replace("{b}", &args[1]),
            // Any other op at the root is read from its buffer.
            _ => unreachable!(
                "{} cannot be computed inside a fused kernel",
                node.op.name()
            ),
        };
        let name = format!("t{}", body.len());
        body.push(format!("    let {name} = {expr};"));
        name_of.insert(node.id, name);
    }

    let const_base = param_base;
    let elements: Vec<&str> = kinds
        .iter()
        .zip(&inputs)
        .map(|(kind, input)| {
            if input.dtype != DType::F32 {
                "u32"
            } else if vec4 && kind.wide() {
                "vec4<f32>"
            } else {
                "f32"
            }
        })
        .collect();
    let result = &name_of[&root.id];
    let mut template = ValueTemplate {
        inputs: elements,
        vec4,
        value_s: vec4,
        params: String::new(),
        loads: loads.join("\n"),
        body: body.join("\n"),
        result: result.clone(),
        vec4_result: String::new(),
    };
    if vec4 {
        // The scalar code as a function of the loaded values, applied to
        // each component.
        let mut names: Vec<(String, bool)> = (0..inputs.len())
            .map(|k| (format!("x{k}"), kinds[k].wide()))
            .collect();
        if reads_old {
            names.push(("old".to_string(), true));
        }
        let params: Vec<String> = names.iter().map(|(n, _)| format!("{n}: f32")).collect();
        template.params = params.join(", ");
        let lanes: Vec<String> = ["x", "y", "z", "w"]
            .iter()
            .map(|c| {
                let args: Vec<String> = names
                    .iter()
                    .map(|(n, wide)| if *wide { format!("{n}.{c}") } else { n.clone() })
                    .collect();
                format!("value_s({})", args.join(", "))
            })
            .collect();
        template.vec4_result = format!("vec4<f32>({})", lanes.join(", "));
    }
    let mut code = render(&template);
    code.push('\n');
    for i in 0..consts.len() {
        code = code.replace(
            &format!("{{{{C{i}}}}}"),
            &format!("bitcast<f32>(p[{}u])", const_base + i),
        );
    }
    append_helpers(&mut code, root.dtype);

    let params: Vec<u32> = consts.iter().map(|c| c.to_bits()).collect();
    Some(ValueFn {
        code,
        inputs,
        params,
        constants,
        vec4,
        out_dtype: root.dtype,
    })
}

/// Whether `node` reads `input`, a conversion to f32 of a 16-bit buffer of
/// another shape (a bias broadcast to rows), as a load of that buffer: a
/// broadcast load that converts as it reads (widening is exact).
fn widening_load(node: &Node, input: &Node, fused: FusedEdge) -> bool {
    matches!(input.op, Op::Convert(DType::F32))
        && input.shape != node.shape
        && !input.is_realized()
        && !fused(input, &input.inputs()[0])
}

/// Element `index` of input buffer `k` (of `dtype`) as an f32.
fn load_expr(dtype: DType, k: usize, index: &str) -> String {
    match dtype {
        DType::F32 => format!("src{k}[{index}]"),
        _ => format!("wg_from_{dtype}(wg_half(src{k}[({index}) / 2u], {index}))"),
    }
}

/// Appends the helper functions `code` calls, and the rounding an
/// elementwise kernel storing `out` (packing 16-bit values) calls.
pub(crate) fn append_helpers(code: &mut String, out: DType) {
    let store = format!("wg_to_{out}(");
    for (name, helper) in HELPERS {
        let defined = code.contains(&format!("fn {name}"));
        if !defined && (code.contains(name) || (out != DType::F32 && name == store)) {
            *code += helper;
        }
    }
}

/// Lines adding to `j{k}` the offset of output element `rem{k}` in an input
/// read with `strides` (0 on broadcast axes). Sizes and strides are
/// constants of the shader: a division by a constant is a multiply and a
/// shift, while one by a value read at run time is, on CPU rasterizers, a
/// scalar instruction per lane. Axes of size 1 are skipped, and no division
/// is done past the outermost axis the input moves along.
fn broadcast_index(k: usize, dims: &[usize], strides: &[usize]) -> String {
    let Some(outermost) = (0..dims.len()).find(|&d| dims[d] > 1 && strides[d] != 0) else {
        return String::new();
    };
    let first_axis = (0..dims.len()).find(|&d| dims[d] > 1);
    let mut code = Vec::new();
    for d in (outermost..dims.len()).rev().filter(|&d| dims[d] > 1) {
        let (size, stride) = (dims[d] as u32, strides[d] as u32);
        if d == outermost {
            let coord = if first_axis == Some(d) {
                format!("rem{k}")
            } else {
                format!("(rem{k} % {size}u)")
            };
            code.push(format!("    j{k} += {coord} * {stride}u;"));
        } else {
            if stride != 0 {
                code.push(format!("    j{k} += (rem{k} % {size}u) * {stride}u;"));
            }
            code.push(format!("    rem{k} = rem{k} / {size}u;"));
        }
    }
    code.join("\n")
}

/// `value(i)` that loads element i of one buffer.
pub(crate) fn load_fn(input: &Arc<Node>) -> ValueFn {
    load(input, false)
}

/// [`load_fn`] reading four elements at a time (`value4`).
pub(crate) fn load_fn_vec4(input: &Arc<Node>) -> ValueFn {
    load(input, true)
}

/// A plain load, its code rendered once per width and kept (a 16-bit
/// input, read in scalar code, each time).
fn load(input: &Arc<Node>, vec4: bool) -> ValueFn {
    static CODE: [std::sync::OnceLock<String>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    let (code, vec4) = if input.dtype == DType::F32 {
        let code = CODE[usize::from(vec4)].get_or_init(|| render(&ValueTemplate::load(vec4)));
        (code.clone(), vec4)
    } else {
        let mut template = ValueTemplate::load(false);
        template.inputs = vec!["u32"];
        template.result = load_expr(input.dtype, 0, "i");
        let mut code = render(&template);
        append_helpers(&mut code, DType::F32);
        (code, false)
    };
    ValueFn {
        code,
        inputs: vec![input.clone()],
        params: Vec::new(),
        constants: Vec::new(),
        vec4,
        out_dtype: DType::F32,
    }
}

/// Functions WGSL lacks, appended to a kernel whose code calls them.
/// Helpers come before the helpers they call: each is appended only if the
/// code so far calls it.
const HELPERS: [(&str, &str); 16] = [
    ("wg_pow(", WG_POW),
    ("wg_div(", WG_DIV),
    ("wg_log1p(", WG_LOG1P),
    ("wg_expm1(", WG_EXPM1),
    ("wg_erf(", WG_ERF),
    ("wg_log(", WG_LOG),
    ("wg_sqrt(", WG_SQRT),
    ("wg_inf(", WG_INF),
    ("wg_nan(", WG_NAN),
    ("wg_isnan(", WG_ISNAN),
    ("wg_isinf(", WG_ISINF),
    ("wg_half(", WG_HALF),
    ("wg_to_f16(", WG_TO_F16),
    ("wg_from_f16(", WG_FROM_F16),
    ("wg_to_bf16(", WG_TO_BF16),
    ("wg_from_bf16(", WG_FROM_BF16),
];

// The functions WGSL lacks, one file each under `shaders/numerics/` (each
// says its rule; docs/numerics.md has them all).
const WG_LOG: &str = include_str!("../../shaders/numerics/wg_log.wgsl");
const WG_SQRT: &str = include_str!("../../shaders/numerics/wg_sqrt.wgsl");
const WG_DIV: &str = include_str!("../../shaders/numerics/wg_div.wgsl");
const WG_INF: &str = include_str!("../../shaders/numerics/wg_inf.wgsl");
const WG_NAN: &str = include_str!("../../shaders/numerics/wg_nan.wgsl");
pub(crate) const WG_ISNAN: &str = include_str!("../../shaders/numerics/wg_isnan.wgsl");
const WG_ISINF: &str = include_str!("../../shaders/numerics/wg_isinf.wgsl");
const WG_LOG1P: &str = include_str!("../../shaders/numerics/wg_log1p.wgsl");
const WG_EXPM1: &str = include_str!("../../shaders/numerics/wg_expm1.wgsl");
const WG_ERF: &str = include_str!("../../shaders/numerics/wg_erf.wgsl");
const WG_POW: &str = include_str!("../../shaders/numerics/wg_pow.wgsl");
const WG_HALF: &str = include_str!("../../shaders/numerics/wg_half.wgsl");
const WG_TO_F16: &str = include_str!("../../shaders/numerics/wg_to_f16.wgsl");
pub(crate) const WG_FROM_F16: &str = include_str!("../../shaders/numerics/wg_from_f16.wgsl");
const WG_TO_BF16: &str = include_str!("../../shaders/numerics/wg_to_bf16.wgsl");
const WG_FROM_BF16: &str = include_str!("../../shaders/numerics/wg_from_bf16.wgsl");
