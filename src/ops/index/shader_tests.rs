//! The index kernels, checked and unchecked, validate with naga.

use super::kernels::{ArgReduce, IndexAdd, IndexClamp, IndexSelect};
use crate::kernel::render;
use crate::shader_check::validate;

#[test]
fn index_shaders_validate() {
    for check in [false, true] {
        let select = render(&IndexSelect { check });
        validate(&format!("index_select {check}"), &select);
        assert_eq!(select.contains("atomicMax"), check);
        let add = render(&IndexAdd { check });
        validate(&format!("index_add {check}"), &add);
        assert_eq!(add.contains("atomicMax"), check);
    }
    validate("index_clamp", &render(&IndexClamp));
    validate("argmax", &render(&ArgReduce { smallest: false }));
    validate("argmin", &render(&ArgReduce { smallest: true }));
}
