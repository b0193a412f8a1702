//! Op families. Elementwise ops are table rows (`elementwise.rs`: name,
//! WGSL snippet, f64 reference and vjp rule in one row); reductions and
//! movement ops are graph variants the scheduler fuses; every other family
//! implements [`Family`](crate::graph::family::Family) in one file or folder of its own.

pub mod attention;
pub mod cast;
pub mod concat;
pub mod conv;
pub mod dropout;
pub mod elementwise;
pub mod flip;
pub mod index;
pub mod matmul;
pub mod movement;
pub mod nn;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod scan;
pub mod upsample;
