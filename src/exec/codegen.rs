//! Generates `value(i)`: the WGSL function computing element i of a fused
//! tree of elementwise ops. The elementwise kernel stores it
//! (`shaders/elementwise.wgsl`); the reduce kernel folds it
//! (`shaders/reduce.wgsl`), so a chain feeding a sum never touches memory.
//!
//! The tree is rooted at one node and descends along the edges the scheduler
//! chose to fuse; every other input is a buffer, loaded with broadcast-aware
//! indexing. A fused broadcast_to is just such a load.

use rustc_hash::FxHashMap as HashMap;
use std::rc::Rc;

use crate::graph::{Node, NodeId, Op};
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
    pub inputs: Vec<Rc<Node>>,
    /// Parameter words, to be placed at `param_base` in `p`.
    pub params: Vec<u32>,
    /// The node whose constant each parameter word is (a replayed plan
    /// puts the new graph's constants there: see `replay.rs`).
    pub constants: Vec<NodeId>,
    /// The code defines `value4(i)`, elements 4i .. 4i + 3 as a vec4,
    /// instead of `value(i)` (see [`value_fn_vec4`]).
    pub vec4: bool,
}

/// Which edges (consumer → input) of the graph are fused.
pub(crate) type FusedEdge<'a> = &'a dyn Fn(&Node, &Node) -> bool;

/// `value(i)` for the tree rooted at `root` (shape `root.shape`, row-major
/// index i). Its parameter words start at `p[param_base]`.
pub(crate) fn value_fn(root: &Rc<Node>, fused: FusedEdge, param_base: usize) -> ValueFn {
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
    root: &Rc<Node>,
    fused: FusedEdge,
    param_base: usize,
    in_place: Option<NodeId>,
) -> Option<ValueFn> {
    let n = root.shape.numel();
    if n < VEC4_MIN_ELEMENTS || !n.is_multiple_of(4) {
        return None;
    }
    generate(root, fused, param_base, in_place, true)
}

/// [`value_fn`] for a kernel that overwrites `in_place` (a variable of the
/// root's shape): loads of it read the output binding `dst[i]`, since WebGPU
/// forbids binding one buffer twice in a dispatch when one binding writes.
pub(crate) fn value_fn_in_place(
    root: &Rc<Node>,
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
    root: &Rc<Node>,
    fused: FusedEdge,
    param_base: usize,
    in_place: Option<NodeId>,
    vec4: bool,
) -> Option<ValueFn> {
    let out = &root.shape;
    let mut kinds: Vec<Load> = Vec::new();
    let mut reads_old = false;
    let mut inputs: Vec<Rc<Node>> = Vec::new();
    let mut loads: Vec<String> = Vec::new();
    let mut consts: Vec<f32> = Vec::new();
    let mut constants: Vec<NodeId> = Vec::new();
    let mut body: Vec<String> = Vec::new();
    let mut name_of: HashMap<NodeId, String> = HashMap::default();

    // Iterative post-order over the tree. (node, expanded?, computed here?)
    let mut stack: Vec<(Rc<Node>, bool, bool)> = vec![(root.clone(), false, true)];
    while let Some((node, expanded, computed)) = stack.pop() {
        if name_of.contains_key(&node.id) {
            continue;
        }
        if !computed {
            // A buffer input, or a fused broadcast_to of one: a load.
            // A broadcast that already has a value (read earlier) is a
            // buffer like any other; its input may be long gone.
            let source = if matches!(node.op, Op::Expand) && !node.is_realized() {
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
            loads.push(format!("    let x{k} = src{k}[{index}];"));
            name_of.insert(source.id, format!("x{k}"));
            name_of.insert(node.id, format!("x{k}"));
            inputs.push(source);
            continue;
        }
        if !expanded {
            stack.push((node.clone(), true, true));
            for input in node.inputs().iter().rev() {
                // A fused broadcast is a load of its input, unless it
                // broadcasts a constant it computes (the planner's `constant_chain`).
                let computed = fused(&node, input)
                    && (!matches!(input.op, Op::Expand) || fused(input, &input.inputs()[0]));
                stack.push((input.clone(), false, computed));
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
    let mut code = String::new();
    for (k, kind) in kinds.iter().enumerate() {
        let element = if vec4 && kind.wide() {
            "vec4<f32>"
        } else {
            "f32"
        };
        code += &format!(
            "@group(0) @binding({}) var<storage, read> src{k}: array<{element}>;\n",
            k + 2
        );
    }
    let result = &name_of[&root.id];
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
        code += &format!("\nfn value_s({}) -> f32 {{\n", params.join(", "));
        code += &body.join("\n");
        code += &format!("\n    return {result};\n}}\n");
        code += "\nfn value4(i: u32) -> vec4<f32> {\n";
        code += &loads.join("\n");
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
        code += &format!("\n    return vec4<f32>({});\n}}\n", lanes.join(", "));
    } else {
        code += "\nfn value(i: u32) -> f32 {\n";
        code += &loads.join("\n");
        code += "\n";
        code += &body.join("\n");
        code += &format!("\n    return {result};\n}}\n");
    }
    for i in 0..consts.len() {
        code = code.replace(
            &format!("{{{{C{i}}}}}"),
            &format!("bitcast<f32>(p[{}u])", const_base + i),
        );
    }
    for (name, helper) in HELPERS {
        if code.contains(name) {
            code += helper;
        }
    }

    let params: Vec<u32> = consts.iter().map(|c| c.to_bits()).collect();
    Some(ValueFn {
        code,
        inputs,
        params,
        constants,
        vec4,
    })
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
pub(crate) fn load_fn(input: &Rc<Node>) -> ValueFn {
    ValueFn {
        code: "@group(0) @binding(2) var<storage, read> src0: array<f32>;\n\nfn value(i: u32) -> f32 {\n    return src0[i];\n}\n"
            .to_string(),
        inputs: vec![input.clone()],
        params: Vec::new(),
        constants: Vec::new(),
        vec4: false,
    }
}

/// [`load_fn`] reading four elements at a time (`value4`).
pub(crate) fn load_fn_vec4(input: &Rc<Node>) -> ValueFn {
    ValueFn {
        code: "@group(0) @binding(2) var<storage, read> src0: array<vec4<f32>>;\n\nfn value4(i: u32) -> vec4<f32> {\n    return src0[i];\n}\n"
            .to_string(),
        vec4: true,
        ..load_fn(input)
    }
}

/// Functions WGSL lacks, appended to a kernel whose code calls them.
/// Helpers come before the helpers they call: each is appended only if the
/// code so far calls it.
const HELPERS: [(&str, &str); 11] = [
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
];

/// Domain errors give NaN on every adapter (WGSL leaves log and sqrt of a
/// negative number to the driver; one browser returned 0), log(±0) = −∞.
/// NaN stays NaN.
const WG_LOG: &str = "
fn wg_log(x: f32) -> f32 {
    if (wg_isnan(x)) {
        return x;
    }
    if (x == 0.0) {
        // SwiftShader returns −88 (the log of the smallest normal).
        return -wg_inf();
    }
    return select(log(x), wg_nan(), x < 0.0);
}
";
const WG_SQRT: &str = "
fn wg_sqrt(x: f32) -> f32 {
    if (wg_isnan(x)) {
        return x;
    }
    return select(sqrt(x), wg_nan(), x < 0.0);
}
";
/// a / b with IEEE 754's division by zero on every adapter (WGSL leaves
/// it to the driver): 0/0 and NaN/0 are NaN, x/±0 is ±∞ by the signs.
const WG_DIV: &str = "
fn wg_div(a: f32, b: f32) -> f32 {
    // `b != 0.0` would be false for a NaN b (drivers compare ordered).
    if (b == 0.0) {
        if (a == 0.0 || wg_isnan(a)) {
            return wg_nan();
        }
        let negative = ((bitcast<u32>(a) ^ bitcast<u32>(b)) & 0x80000000u) != 0u;
        return select(wg_inf(), -wg_inf(), negative);
    }
    return a / b;
}
";
/// +∞ built at run time (shader compilers reject infinite constants).
const WG_INF: &str = "
fn wg_inf() -> f32 {
    return bitcast<f32>(0x7f800000u | (p[0] & 0u));
}
";
/// A quiet NaN built at run time (shader compilers reject NaN constants).
const WG_NAN: &str = "
fn wg_nan() -> f32 {
    return bitcast<f32>(0x7fc00000u | (p[0] & 0u));
}
";

/// NaN test on the bits: compilers may assume floats are never NaN, and
/// fold `x != x` to false.
pub(crate) const WG_ISNAN: &str = "
fn wg_isnan(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) > 0x7f800000u;
}
";

/// ±∞ test on the bits (a literal as large as f32::MAX is rejected by
/// some WGSL compilers, and compilers may assume floats are finite).
const WG_ISINF: &str = "
fn wg_isinf(x: f32) -> bool {
    return (bitcast<u32>(x) & 0x7fffffffu) == 0x7f800000u;
}
";

/// log(1 + x) without cancellation: the Taylor series to x⁸ for |x| < 0.1
/// (truncation below 1e-9 relative), the direct formula beyond. (Rewriting
/// tricks like Goldberg's depend on an exact `log` near 1, which drivers'
/// fast math does not give.)
const WG_LOG1P: &str = "
fn wg_log1p(x: f32) -> f32 {
    if (abs(x) < 0.1) {
        return x * (1.0 + x * (-0.5 + x * (0.33333333 + x * (-0.25 + x * (0.2 + x * (-0.16666667 + x * (0.14285714 + x * -0.125)))))));
    }
    return wg_log(1.0 + x);
}
";

/// eˣ − 1 without cancellation: the Taylor series to x⁸ for |x| < 0.1,
/// exp(x) − 1 beyond.
const WG_EXPM1: &str = "
fn wg_expm1(x: f32) -> f32 {
    if (abs(x) < 0.1) {
        return x * (1.0 + x * (0.5 + x * (0.16666667 + x * (0.041666668 + x * (0.008333334 + x * (0.0013888889 + x * (0.0001984127 + x * 0.0000248016)))))));
    }
    return exp(x) - 1.0;
}
";

/// erf(x) by Abramowitz & Stegun 7.1.26 on |x| (absolute error < 1.5e-7),
/// odd in x.
const WG_ERF: &str = "
fn wg_erf(x: f32) -> f32 {
    let a = abs(x);
    if (a < 0.5) {
        // Maclaurin series to x^11 (the next term is below f32's relative
        // precision here): relative accuracy down to 0 and subnormals,
        // where the rational fit's absolute error (1.5e-7) would swamp
        // erf(x) ≈ 1.128·x.
        let z = x * x;
        let s = 1.0 - z * (1.0 / 3.0 - z * (1.0 / 10.0 - z * (1.0 / 42.0 - z * (1.0 / 216.0 - z * (1.0 / 1320.0)))));
        return 1.1283791670955126 * x * s;
    }
    let t = 1.0 / (1.0 + 0.3275911 * a);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-a * a);
    return select(y, -y, x < 0.0);
}
";

/// x^c by IEEE 754's pow (C's, numpy's, PyTorch's and the f64
/// reference's): x^±0 = 1 and 1^c = 1 even for NaN, NaN otherwise
/// propagates; (±0)^c and (±∞)^c by the sign of c and the parity of an
/// integer c; |x|^±∞ by whether |x| > 1, with (−1)^±∞ = 1; a negative x
/// only for integer c (sign from its parity), NaN otherwise. WGSL's `pow`
/// is only defined for x > 0, so everything else is decided here.
const WG_POW: &str = "
fn wg_pow(x: f32, c: f32) -> f32 {
    if (c == 0.0 || x == 1.0) {
        return 1.0;
    }
    if (wg_isnan(x) || wg_isnan(c)) {
        return wg_nan();
    }
    let ax = abs(x);
    let ac = abs(c);
    if (wg_isinf(c)) {
        if (ax == 1.0) {
            return 1.0;
        }
        return select(0.0, wg_inf(), (ax > 1.0) == (c > 0.0));
    }
    // Every f32 of magnitude 2^24 or more is an even integer.
    let integer = ac >= 16777216.0 || fract(ac) == 0.0;
    let odd = ac < 16777216.0 && integer && fract(ac * 0.5) != 0.0;
    let negative = x < 0.0 || (x == 0.0 && bitcast<u32>(x) != 0u);
    var m: f32;
    if (x == 0.0 || wg_isinf(x)) {
        // 0^c and inf^c: 0 or inf by the sign of c (and of the base's exponent).
        m = select(0.0, wg_inf(), (c > 0.0) == (ax > 1.0));
    } else if (x > 0.0) {
        return pow(x, c);
    } else if (integer) {
        m = pow(ax, c);
    } else {
        return wg_nan();
    }
    return select(m, -m, negative && odd);
}
";
