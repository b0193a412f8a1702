//! Every op family on f16 and bf16 tensors: the value and the gradients of
//! its inputs (which come back in their dtype) against the f64 reference
//! of the same graph, which rounds to the dtype at the same nodes. The
//! tolerance is derived from the dtype's epsilon: each stored value is
//! within one unit in the last place of the reference's (the f32 and f64
//! results it rounds may straddle a rounding boundary), and compositions
//! carry that through a few stored nodes.

mod common;

use webgrad::{
    AttentionMask, Conv2dOptions, DType, IndexTensor, Pool2dOptions, Shape, Tensor, grad,
    read_all_blocking, reference,
};

type Op = Box<dyn Fn(&[Tensor]) -> Tensor>;

/// (name, input shapes, op) for every family.
fn cases(dev: &webgrad::Device) -> Vec<(&'static str, Vec<Vec<usize>>, Op)> {
    let ids = IndexTensor::from_vec(dev, vec![2, 0, 2, 1], [4]);
    let ids2 = ids.clone();
    vec![
        (
            "unary chain",
            vec![vec![3, 5]],
            Box::new(|t: &[Tensor]| t[0].exp().tanh().sigmoid()),
        ),
        (
            "binary broadcast",
            vec![vec![3, 5], vec![5]],
            Box::new(|t: &[Tensor]| &(&t[0] * &t[1]) - &t[1]),
        ),
        (
            "sum and max",
            vec![vec![4, 6]],
            Box::new(|t: &[Tensor]| &t[0].sum_axes_keepdim(&[1]) + &t[0].max_axes_keepdim(&[1])),
        ),
        (
            "matmul",
            vec![vec![2, 4, 6], vec![6, 3]],
            Box::new(|t: &[Tensor]| t[0].matmul(&t[1])),
        ),
        (
            "conv2d",
            vec![vec![2, 3, 6, 6], vec![4, 3, 3, 3]],
            Box::new(|t: &[Tensor]| t[0].conv2d(&t[1], None, Conv2dOptions::default().padding(1))),
        ),
        (
            "max pool",
            vec![vec![2, 2, 6, 6]],
            Box::new(|t: &[Tensor]| t[0].max_pool2d(Pool2dOptions::new(2))),
        ),
        (
            "avg pool",
            vec![vec![2, 2, 6, 6]],
            Box::new(|t: &[Tensor]| t[0].avg_pool2d(Pool2dOptions::new(2))),
        ),
        (
            "softmax",
            vec![vec![3, 7]],
            Box::new(|t: &[Tensor]| t[0].softmax(1)),
        ),
        (
            "layer norm",
            vec![vec![4, 8], vec![8]],
            Box::new(|t: &[Tensor]| t[0].layer_norm(1, Some(&t[1]), None, 1e-5)),
        ),
        (
            "attention",
            vec![vec![2, 5, 4], vec![2, 5, 4], vec![2, 5, 4]],
            Box::new(|t: &[Tensor]| {
                t[0].scaled_dot_product_attention(&t[1], &t[2], AttentionMask::Causal)
            }),
        ),
        (
            "index_select",
            vec![vec![3, 4]],
            Box::new(move |t: &[Tensor]| t[0].index_select(0, &ids)),
        ),
        (
            "embedding",
            vec![vec![3, 4]],
            Box::new(move |t: &[Tensor]| t[0].embedding(&ids2)),
        ),
        (
            "concat and slice",
            vec![vec![2, 3], vec![2, 2]],
            Box::new(|t: &[Tensor]| Tensor::concat(&[&t[0], &t[1]], 1).slice(&[0..2, 1..4])),
        ),
        (
            "permute and reshape",
            vec![vec![2, 3, 4]],
            Box::new(|t: &[Tensor]| t[0].permute(&[2, 0, 1]).reshape([4, 6])),
        ),
        (
            "cumsum",
            vec![vec![3, 6]],
            Box::new(|t: &[Tensor]| t[0].cumsum(1)),
        ),
        (
            "upsample",
            vec![vec![1, 2, 3, 3]],
            Box::new(|t: &[Tensor]| t[0].upsample_bilinear2d([5, 4])),
        ),
        (
            "dropout",
            vec![vec![4, 8]],
            Box::new(|t: &[Tensor]| t[0].dropout(0.25, 7)),
        ),
    ]
}

/// Checks every family in f16 and bf16 on `dev` against the reference;
/// returns the values and gradients read.
fn check_every_family(dev: &webgrad::Device) -> Vec<Vec<f32>> {
    let dev = dev.clone();
    let mut read = Vec::new();
    for dtype in [DType::F16, DType::BF16] {
        for (k, (name, shapes, op)) in cases(&dev).into_iter().enumerate() {
            let inputs: Vec<Tensor> = shapes
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    let shape = Shape::new(s);
                    let data = common::data(shape.numel(), -1.5, 1.5, 0.0, (k * 10 + i) as u64);
                    Tensor::from_vec(&dev, data, shape).to_dtype(dtype)
                })
                .collect();
            let y = op(&inputs);
            assert_eq!(y.dtype(), dtype, "{name}");
            // A weighted sum, so every output element's adjoint differs.
            let weights = Tensor::from_vec(
                &dev,
                common::data(y.numel(), 0.5, 1.5, 0.0, 99),
                y.shape().clone(),
            )
            .to_dtype(dtype);
            let loss = (&y * &weights).sum();
            let refs: Vec<&Tensor> = inputs.iter().collect();
            let grads = grad(&loss, &refs);
            let mut all = vec![&y];
            all.extend(grads.iter());
            let got = read_all_blocking(&all).unwrap();
            read.extend(got.iter().cloned());
            for (j, (t, values)) in all.iter().zip(&got).enumerate() {
                assert_eq!(t.dtype(), dtype, "{name}: output {j}");
                // Stored in the dtype: every value is one of its values.
                assert!(
                    values
                        .iter()
                        .all(|&v| dtype.round(v).to_bits() == v.to_bits() || v.is_nan()),
                    "{dtype} {name}: output {j} holds values the dtype cannot"
                );
                let want = reference::eval(t).unwrap();
                let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-3);
                for (i, (&g, &r)) in values.iter().zip(&want).enumerate() {
                    // A few ulps of the dtype, relative to the value and to
                    // the output's scale (sums of rounded terms).
                    let tol = 4.0 * dtype.epsilon() * (r.abs() + 0.25 * scale);
                    assert!(
                        (g as f64 - r).abs() <= tol,
                        "{dtype} {name}: {} element {i}: {g} vs reference {r} (tolerance {tol:e})",
                        if j == 0 {
                            "value".to_string()
                        } else {
                            format!("gradient {j}")
                        },
                    );
                }
            }
        }
    }
    read
}

#[test]
fn every_family_in_16_bits_matches_the_reference() {
    // The default device: on a CPU adapter (lavapipe), f16 values are
    // decoded from their words with integer arithmetic, the path every
    // adapter has, as without `shader-f16`.
    let dev = gpu!();
    let adapter = dev.adapter().unwrap();
    if adapter.device_type == "Cpu" {
        assert!(!dev.native_f16());
    }
    check_every_family(&dev);
}

#[test]
fn native_f16_reads_give_the_same_bits_as_the_portable_path() {
    // Both paths forced: f16 values read as WGSL's f16 (where the adapter
    // has `shader-f16`: lavapipe does), and decoded from words.
    let devices = [webgrad::F16Reads::Native, webgrad::F16Reads::Portable].map(|reads| {
        common::device_with(webgrad::DeviceOptions {
            f16_reads: reads,
            ..common::test_options()
        })
    });
    let [Some(native), Some(portable)] = devices else {
        return;
    };
    let shader_f16 = native.adapter().unwrap().shader_f16;
    assert_eq!(native.native_f16(), shader_f16);
    assert!(!portable.native_f16());
    let want = check_every_family(&portable);
    let got = check_every_family(&native);
    assert_eq!(got.len(), want.len());
    for (k, (a, b)) in got.iter().zip(&want).enumerate() {
        let same = a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
        assert!(
            same,
            "result {k} differs between the native and the portable f16 path"
        );
    }
}
