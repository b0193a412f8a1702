//! Every matmul kernel and specialization validates with naga.

use super::kernels::{
    MATMUL_TILED, MATMUL_VEC4, matmul_nt_source, matmul_sg_source, matmul_strided_sg_source,
    matmul_strided_source, matmul_tn_source,
};
use crate::shader_check::{validate, validate_with};

#[test]
fn matmul_shaders_validate() {
    validate("matmul_vec4", MATMUL_VEC4);
    validate("matmul_strided", matmul_strided_source());
    validate("matmul_tn", matmul_tn_source());
    validate("matmul_nt", matmul_nt_source());
    for size in [8, 16, 32, 64] {
        let subgroups = naga::valid::Capabilities::SUBGROUP;
        for flags in [(false, false), (true, false), (false, true), (true, true)] {
            validate_with("matmul_sg", matmul_sg_source(size, flags), subgroups);
        }
        for rows in [2, 4, 8] {
            let source = matmul_strided_sg_source(size, rows);
            validate_with("matmul_strided_sg", source, subgroups);
        }
    }
    validate("matmul_tiled", MATMUL_TILED);
}
