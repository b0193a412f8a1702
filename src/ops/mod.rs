//! Op families. Each file holds the ops' constructors (shape rules, recorded
//! as graph nodes); elementwise ops also carry their WGSL snippet, reference
//! semantics and vjp rule in one table row.

pub mod elementwise;
pub mod matmul;
pub mod movement;
pub mod nn;
pub mod reduce;
