//! The convolution kernels (both families) validate with naga.

use super::kernels::{Loaders, conv2d_source, conv2d_tiled_source};
use crate::shader_check::validate;

#[test]
fn conv_shaders_validate() {
    validate("conv2d", conv2d_source());
    for (name, loaders) in [
        ("forward", Loaders::Forward),
        ("input grad", Loaders::InputGrad),
        ("weight grad", Loaders::WeightGrad),
    ] {
        validate(
            &format!("conv2d tiled {name}"),
            conv2d_tiled_source(loaders),
        );
    }
}
