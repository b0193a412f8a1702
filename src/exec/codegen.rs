//! Generates the WGSL of a fused elementwise kernel: a tree of elementwise
//! nodes (the root and the nodes inlined into it) spliced into
//! `shaders/elementwise.wgsl`.

use std::collections::HashMap;
use std::rc::Rc;

use crate::graph::{Node, NodeId, Op};
use crate::shape::broadcast_strides;

use super::kernels::ELEMENTWISE_TEMPLATE;

/// Most input buffers one fused kernel reads (8 storage bindings per stage
/// in WebGPU: parameters, output and six inputs).
pub(crate) const MAX_FUSED_INPUTS: usize = 6;
/// Most nodes fused into one kernel (keeps shaders small to compile).
pub(crate) const MAX_FUSED_NODES: usize = 64;

/// A generated kernel: its source, the input nodes bound to src0, src1, ...
/// and its parameter words.
pub(crate) struct FusedKernel {
    pub source: String,
    pub inputs: Vec<Rc<Node>>,
    pub params: Vec<u32>,
}

/// Builds the kernel computing `root`, descending into the inputs for which
/// `inlined` is true; all other inputs are read from buffers.
pub(crate) fn fused_kernel(root: &Rc<Node>, inlined: &dyn Fn(&Node) -> bool) -> FusedKernel {
    let out = &root.shape;
    let rank = out.rank();
    let mut inputs: Vec<Rc<Node>> = Vec::new();
    let mut loads: Vec<String> = Vec::new();
    let mut broadcast_strides_words: Vec<u32> = Vec::new();
    let mut consts: Vec<f32> = Vec::new();
    let mut body: Vec<String> = Vec::new();
    let mut name_of: HashMap<NodeId, String> = HashMap::new();

    // Iterative post-order over the fused tree.
    let mut stack: Vec<(Rc<Node>, bool)> = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if name_of.contains_key(&node.id) {
            continue;
        }
        let is_tree_node = Rc::ptr_eq(&node, root) || inlined(&node);
        if !is_tree_node {
            // A buffer input: bind it and load element i (broadcast-aware).
            let k = inputs.len();
            let load = if &node.shape == out {
                format!("src{k}[i]")
            } else if node.shape.numel() == 1 {
                format!("src{k}[0]")
            } else {
                let first = 1 + rank + broadcast_strides_words.len();
                broadcast_strides_words.extend(broadcast_strides(&node.shape, out).iter().map(|&s| s as u32));
                loads.push(format!("    var j{k} = 0u;\n    var rem{k} = i;"));
                for d in (0..rank).rev() {
                    loads.push(format!(
                        "    j{k} += (rem{k} % p[{}u]) * p[{}u];\n    rem{k} = rem{k} / p[{}u];",
                        1 + d,
                        first + d,
                        1 + d
                    ));
                }
                format!("src{k}[j{k}]")
            };
            loads.push(format!("    let x{k} = {load};"));
            name_of.insert(node.id, format!("x{k}"));
            inputs.push(node);
            continue;
        }
        if !expanded {
            stack.push((node.clone(), true));
            for input in node.inputs().iter().rev() {
                stack.push((input.clone(), false));
            }
            continue;
        }
        let args: Vec<String> = node.inputs().iter().map(|i| name_of[&i.id].clone()).collect();
        let mut constant = |c: f32| {
            consts.push(c);
            format!("{{{{C{}}}}}", consts.len() - 1)
        };
        let expr = match &node.op {
            Op::Fill(v) => constant(*v),
            Op::Unary(u) => {
                let c = u.constant().map(&mut constant).unwrap_or_default();
                u.rule().wgsl.replace("{x}", &args[0]).replace("{c}", &c)
            }
            Op::Binary(b) => b.info().wgsl.replace("{a}", &args[0]).replace("{b}", &args[1]),
            other => unreachable!("{} is not elementwise", other.name()),
        };
        let name = format!("t{}", body.len());
        body.push(format!("    let {name} = {expr};"));
        name_of.insert(node.id, name);
    }
    body.push(format!("    let r = {};", name_of[&root.id]));

    let const_base = 1 + rank + broadcast_strides_words.len();
    let mut code = loads.join("\n") + "\n" + &body.join("\n");
    for (i, _) in consts.iter().enumerate() {
        code = code.replace(&format!("{{{{C{i}}}}}"), &format!("bitcast<f32>(p[{}u])", const_base + i));
    }
    let bindings: Vec<String> = (0..inputs.len())
        .map(|k| format!("@group(0) @binding({}) var<storage, read> src{k}: array<f32>;", k + 2))
        .collect();
    let source = ELEMENTWISE_TEMPLATE.replace("{{INPUTS}}", &bindings.join("\n")).replace("{{BODY}}", &code);

    let mut params = vec![out.numel() as u32];
    params.extend(out.dims().iter().map(|&d| d as u32));
    params.extend(broadcast_strides_words);
    params.extend(consts.iter().map(|c| c.to_bits()));
    FusedKernel { source, inputs, params }
}
