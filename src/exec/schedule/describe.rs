//! Kernel names for the profiler.

use std::sync::Arc;

use crate::exec::codegen::FusedEdge;
use crate::graph::{Node, Op};
use crate::shape::Shape;

/// A kernel's name for the profiler — its op with the ops fused into it
/// and the output's shape, `add(mul·exp) [128, 256]` — and its FLOPs
/// (one per element and elementwise op; a family counts its own).
pub(super) fn describe(node: &Arc<Node>, fused: FusedEdge) -> (String, u64) {
    let mut names: Vec<String> = Vec::new();
    let mut flops = 0u64;
    let mut stack = vec![node.clone()];
    while let Some(n) = stack.pop() {
        match &n.op {
            Op::Family(f) => {
                let shapes: Vec<Shape> = n.inputs().iter().map(|i| i.shape.clone()).collect();
                let refs: Vec<&Shape> = shapes.iter().collect();
                flops += f.flops(&n.shape, &refs);
            }
            Op::Reduce { .. } => flops += n.inputs()[0].shape.numel() as u64,
            op if op.is_elementwise() && !matches!(op, Op::Fill(_)) => {
                flops += n.shape.numel() as u64
            }
            _ => {}
        }
        if !names.is_empty() && matches!(n.op, Op::Fill(_) | Op::Expand) {
            // Constants and broadcasts are loads, not work.
        } else {
            names.push(n.op.name());
        }
        for input in n.inputs().iter() {
            if fused(&n, input) {
                stack.push(input.clone());
            }
        }
    }
    let head = names.remove(0);
    const SHOWN: usize = 6;
    let mut name = head;
    if !names.is_empty() {
        let mut inner: Vec<String> = names.iter().take(SHOWN).cloned().collect();
        if names.len() > SHOWN {
            inner.push(format!("+{}", names.len() - SHOWN));
        }
        name = format!("{name}({})", inner.join("·"));
    }
    (format!("{name} {:?}", node.shape), flops)
}
