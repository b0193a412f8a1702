//! The index kernels, checked and unchecked, validate with naga.

use super::kernels::{ARG_REDUCE, INDEX_ADD, INDEX_SELECT, checked, clamp_source, source};
use crate::shader_check::validate;

#[test]
fn index_shaders_validate() {
    for check in [false, true] {
        let select = checked(INDEX_SELECT, check);
        validate(&format!("index_select {check}"), &source(&select));
        let add = checked(INDEX_ADD, check);
        validate(&format!("index_add {check}"), &source(&add));
    }
    validate("index_clamp", &clamp_source());
    validate("argmax", &source(&ARG_REDUCE.replace("ARGMIN", "false")));
    validate("argmin", &source(&ARG_REDUCE.replace("ARGMIN", "true")));
}
