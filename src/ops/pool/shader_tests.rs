//! The pooling kernels validate with naga.

use super::kernels::{ARGMAX, GATHER, SCATTER};
use crate::shader_check::validate;

#[test]
fn pool_shaders_validate() {
    validate("pool2d_argmax", ARGMAX);
    validate("pool2d_gather", GATHER);
    validate("pool2d_scatter", SCATTER);
}
