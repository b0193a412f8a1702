//! The convolution kernels (both families) validate with naga.

use super::kernels::{CONV2D, CONV2D_TILED, TILED_FORWARD, TILED_INPUT_GRAD, TILED_WEIGHT_GRAD};
use crate::shader_check::validate;

#[test]
fn conv_shaders_validate() {
    validate("conv2d", CONV2D);
    for (name, loaders) in [
        ("forward", TILED_FORWARD),
        ("input grad", TILED_INPUT_GRAD),
        ("weight grad", TILED_WEIGHT_GRAD),
    ] {
        validate(
            &format!("conv2d tiled {name}"),
            &CONV2D_TILED.replace("//LOADERS", loaders),
        );
    }
}
