//! cumsum, normalization, dropout and attention on the GPU: forward against
//! the f64 reference and closed forms; vjp and jvp against central
//! differences of the reference (gradient checker).

mod common;

use webgrad::AttentionMask;
use webgrad::BatchNormMode;
use webgrad::{Shape, Tensor, grad};

use common::{assert_close, check_op, data};

fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Shape) {
    let s = Shape::new(shape);
    (data(s.numel(), -2.0, 2.0, 0.0, seed), s)
}

#[test]
fn cumsum_along_each_axis() {
    let dev = gpu!();
    for axis in 0..3 {
        check_op(
            &dev,
            &format!("cumsum[{axis}]"),
            &[input(&[3, 4, 5], axis as u64)],
            &|t| t[0].cumsum(axis),
        );
    }
    // Closed forms: running sums, and the adjoint is the reversed running sum.
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0], [4]);
    assert_eq!(
        x.cumsum(0).to_vec_blocking().unwrap(),
        vec![1.0, 3.0, 6.0, 10.0]
    );
    let w = Tensor::from_vec(&dev, vec![1.0, 10.0, 100.0, 1000.0], [4]);
    let g = grad(&(&x.cumsum(0) * &w).sum(), &[&x]);
    assert_eq!(
        g[0].to_vec_blocking().unwrap(),
        vec![1111.0, 1110.0, 1100.0, 1000.0]
    );
}

#[test]
fn layer_norm_and_rms_norm() {
    let dev = gpu!();
    check_op(
        &dev,
        "layer_norm over 1 axis",
        &[input(&[3, 5], 1), input(&[5], 2), input(&[5], 3)],
        &|t| t[0].layer_norm(1, Some(&t[1]), Some(&t[2]), 1e-5),
    );
    check_op(
        &dev,
        "layer_norm over 2 axes",
        &[input(&[2, 3, 4], 4)],
        &|t| t[0].layer_norm(2, None, None, 1e-5),
    );
    check_op(
        &dev,
        "rms_norm",
        &[input(&[4, 6], 5), input(&[6], 6)],
        &|t| t[0].rms_norm(1, Some(&t[1]), 1e-6),
    );
    // Closed form: each normalized row has mean 0 and variance 1.
    let (xd, xs) = input(&[4, 16], 7);
    let y = Tensor::from_vec(&dev, xd, xs)
        .layer_norm(1, None, None, 0.0)
        .to_vec_blocking()
        .unwrap();
    for row in y.chunks(16) {
        let mean: f32 = row.iter().sum::<f32>() / 16.0;
        let var: f32 = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / 16.0;
        assert!(
            mean.abs() < 1e-5 && (var - 1.0).abs() < 1e-4,
            "mean {mean}, var {var}"
        );
    }
}

#[test]
fn batch_norm_trains_and_evaluates() {
    let dev = gpu!();
    let zeros = Tensor::zeros(&dev, [3]).to_variable().unwrap();
    let ones = Tensor::ones(&dev, [3]).to_variable().unwrap();
    check_op(
        &dev,
        "batch_norm (training statistics)",
        &[input(&[4, 3, 2, 2], 1), input(&[3], 2), input(&[3], 3)],
        &|t| {
            t[0].batch_norm(
                &zeros,
                &ones,
                Some(&t[1]),
                Some(&t[2]),
                BatchNormMode::Eval,
                1e-5,
            )
            .0 + t[0]
                .batch_norm(
                    &zeros,
                    &ones,
                    None,
                    None,
                    BatchNormMode::Train { momentum: 0.1 },
                    1e-5,
                )
                .0
        },
    );
    // Running averages move by the momentum towards the batch's mean and
    // unbiased variance: channel values {1, 3} have mean 2, variance 2.
    let x = Tensor::from_vec(&dev, vec![1.0, 1.0, 3.0, 3.0], [2, 2]);
    let rm = Tensor::zeros(&dev, [2]).to_variable().unwrap();
    let rv = Tensor::ones(&dev, [2]).to_variable().unwrap();
    let (y, updates) = x.batch_norm(
        &rm,
        &rv,
        None,
        None,
        BatchNormMode::Train { momentum: 0.5 },
        0.0,
    );
    let refs: Vec<&Tensor> = updates.iter().collect();
    let out = webgrad::read_and_realize_blocking(&[&y], &refs).unwrap();
    assert_eq!(out[0], vec![-1.0, -1.0, 1.0, 1.0]);
    assert_eq!(rm.to_vec_blocking().unwrap(), vec![1.0, 1.0]);
    assert_eq!(rv.to_vec_blocking().unwrap(), vec![1.5, 1.5]);
    // Evaluation uses the running averages: (x − 1) / √1.5.
    let (e, none) = x.batch_norm(&rm, &rv, None, None, BatchNormMode::Eval, 0.0);
    assert!(none.is_empty());
    let expected: Vec<f64> = [0.0, 0.0, 2.0, 2.0]
        .iter()
        .map(|v: &f64| v / 1.5f64.sqrt())
        .collect();
    assert_close(
        "batch_norm eval",
        &e.to_vec_blocking().unwrap(),
        &expected,
        1e-6,
        1e-6,
    );
}

#[test]
fn dropout_masks_are_seeded_exact_and_scaled() {
    let dev = gpu!();
    let n = 100_000;
    let x = Tensor::ones(&dev, [n]);
    let a = x.dropout(0.25, 42);
    let values = a.to_vec_blocking().unwrap();
    // The GPU's mask is the reference's, bit for bit.
    let reference: Vec<f32> = webgrad::reference::eval(&a)
        .unwrap()
        .iter()
        .map(|&v| v as f32)
        .collect();
    assert_eq!(values, reference);
    assert_eq!(values, x.dropout(0.25, 42).to_vec_blocking().unwrap());
    assert_ne!(values, x.dropout(0.25, 43).to_vec_blocking().unwrap());
    let kept = values.iter().filter(|&&v| v != 0.0).count() as f64 / n as f64;
    assert!((kept - 0.75).abs() < 0.01, "kept {kept}");
    assert!(values.iter().all(|&v| v == 0.0 || v == 1.0 / 0.75));
    // The gradient is the mask itself.
    let g = grad(&a.sum(), &[&x]);
    assert_eq!(g[0].to_vec_blocking().unwrap(), values);
    check_op(&dev, "dropout", &[input(&[6, 7], 3)], &|t| {
        t[0].dropout(0.5, 9)
    });
}

#[test]
fn attention_matches_the_reference_with_gradients() {
    let dev = gpu!();
    for causal in [false, true] {
        check_op(
            &dev,
            &format!("attention causal={causal}"),
            &[
                input(&[2, 5, 4], 1),
                input(&[2, 5, 4], 2),
                input(&[2, 5, 3], 3),
            ],
            &|t| {
                t[0].scaled_dot_product_attention(
                    &t[1],
                    &t[2],
                    if causal {
                        AttentionMask::Causal
                    } else {
                        AttentionMask::None
                    },
                )
            },
        );
    }
    // More keys than queries: query i sees keys ≤ i + (S − T).
    check_op(
        &dev,
        "attention causal, 3 queries over 5 keys",
        &[input(&[3, 2], 4), input(&[5, 2], 5), input(&[5, 2], 6)],
        &|t| t[0].scaled_dot_product_attention(&t[1], &t[2], AttentionMask::Causal),
    );
    // Closed form: under the causal mask the first position sees only itself.
    let (qd, qs) = input(&[1, 4, 8], 7);
    let q = Tensor::from_vec(&dev, qd, qs);
    let (vd, vs) = input(&[1, 4, 8], 8);
    let v = Tensor::from_vec(&dev, vd.clone(), vs);
    let y = q
        .split_heads(2)
        .scaled_dot_product_attention(&q.split_heads(2), &v.split_heads(2), AttentionMask::Causal)
        .merge_heads();
    assert_eq!(y.dims(), &[1, 4, 8]);
    let first = y.to_vec_blocking().unwrap();
    assert_close(
        "first position",
        &first[..8],
        &vd[..8].iter().map(|&x| x as f64).collect::<Vec<_>>(),
        1e-6,
        1e-6,
    );
    // split_heads and merge_heads are inverses.
    assert_eq!(
        q.split_heads(2).merge_heads().to_vec_blocking().unwrap(),
        q.to_vec_blocking().unwrap()
    );
}
