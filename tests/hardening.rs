//! Hostile and extreme input that once went wrong silently or crashed:
//! every case against a closed form or the f64 reference, or refused with
//! a message that names the call and the problem.

mod common;

use common::{data, panic_message, test_options};
use webgrad::{Device, DeviceOptions, MatmulKernel, Tensor, grad};

/// A product wider than one dispatch's 65,535 workgroups along x (and its
/// gradients, one of them as wide), on every variant and the tiled family.
#[test]
fn products_wider_than_one_dispatch_are_computed() {
    let tiled = common::device_with(DeviceOptions {
        matmul: MatmulKernel::Tiled,
        ..test_options()
    });
    let (Some(blocked), Some(tiled)) = (common::private_device(), tiled) else {
        return;
    };
    let n = 1_048_600;
    let check = |dev: &Device, what: &str| {
        let a = Tensor::from_vec(dev, vec![3.0], [1, 1]);
        let v = data(n, -1.0, 1.0, 0.0, 7);
        let b = Tensor::from_vec(dev, v.clone(), [1, n]);
        let c = a.matmul(&b);
        let g = grad(&c.sum(), &[&a, &b]);
        let got = webgrad::read_all_blocking(&[&c, &g[0], &g[1]]).unwrap();
        for (i, (&c, &b)) in got[0].iter().zip(&v).enumerate() {
            assert_eq!(c, 3.0 * b, "{what}: column {i}");
        }
        // ∂(Σc)/∂a = Σ b (the reference's f64 sum, to f32 rounding); ∂/∂b = a.
        let sum: f64 = v.iter().map(|&x| x as f64).sum();
        assert!(
            (got[1][0] as f64 - sum).abs() < 1e-2,
            "{what}: {} vs {sum}",
            got[1][0]
        );
        assert!(got[2].iter().all(|&x| x == 3.0), "{what}: ∂/∂b");
    };
    for variant in 0..4 {
        blocked.force_variant(Some(variant));
        check(&blocked, &format!("variant {variant}"));
    }
    check(&tiled, "tiled");
}
