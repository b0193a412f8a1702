//! Integer index tensors: index_select, embedding and their scatter-add
//! adjoint, argmax/argmin. Forward against the f64 reference and closed
//! forms; vjp and jvp against central differences (gradient checker);
//! repeated indices summing to the same bits every run.

mod common;

use webgrad::{IndexTensor, Shape, Tensor, grad, jacfwd, jacrev};

use common::{assert_close, check_op, data};

fn input(shape: &[usize], seed: u64) -> (Vec<f32>, Shape) {
    let s = Shape::new(shape);
    (data(s.numel(), -2.0, 2.0, 0.0, seed), s)
}

#[test]
fn index_select_along_every_axis_with_repeats() {
    let dev = gpu!();
    let x = input(&[4, 5, 3], 1);
    for (axis, idx) in [
        (0, vec![3u32, 0, 3, 1]),
        (1, vec![4, 4, 0]),
        (2, vec![2, 1, 1, 0, 2]),
    ] {
        let n = idx.len();
        let idx = IndexTensor::from_vec(&dev, idx, [n]);
        check_op(
            &dev,
            &format!("index_select axis {axis}"),
            std::slice::from_ref(&x),
            &|t| t[0].index_select(axis, &idx),
        );
    }
}

#[test]
fn embedding_gradients_sum_repeated_ids_deterministically() {
    let dev = gpu!();
    let ids = IndexTensor::from_vec(&dev, vec![1u32, 3, 1, 1, 0, 3], [2, 3]);
    check_op(&dev, "embedding", &[input(&[5, 4], 2)], &|t| {
        t[0].embedding(&ids).tanh()
    });
    // Second order through the scatter-add (its adjoint is the gather).
    check_op(
        &dev,
        "d/dtable of an embedding loss",
        &[input(&[5, 4], 3)],
        &|t| grad(&t[0].embedding(&ids).sin().sum(), &[&t[0]])[0].clone(),
    );
    // Closed form: row 1 is used three times.
    let table = Tensor::from_vec(&dev, vec![0.0; 5 * 4], [5, 4]);
    let g = grad(&table.embedding(&ids).sum(), &[&table])[0]
        .to_vec_blocking()
        .unwrap();
    let counts = [1.0, 3.0, 0.0, 2.0, 0.0];
    for (row, c) in counts.iter().enumerate() {
        assert_eq!(&g[row * 4..row * 4 + 4], &[*c; 4], "row {row}");
    }
}

#[test]
fn scatter_add_gives_the_same_bits_segmented_or_scanned() {
    // Many repeats of few ids: summation order matters in f32. Host ids are
    // segmented on the host; ids computed on the GPU (argmax) are scanned.
    // Both sum in increasing position order, so the bits agree, every run.
    let dev = gpu!();
    let k = 3000;
    let ids: Vec<u32> = (0..k).map(|i| ((i * 7919) % 13) as u32).collect();
    // Rows whose argmax is ids[i]: a one-hot-like score matrix.
    let mut scores = vec![0.0f32; k * 13];
    for (i, &d) in ids.iter().enumerate() {
        scores[i * 13 + d as usize] = 1.0;
    }
    let computed = Tensor::from_vec(&dev, scores, [k, 13]).argmax(1);
    assert_eq!(computed.to_vec_blocking().unwrap(), ids);
    let host = IndexTensor::from_vec(&dev, ids, [k]);
    let table = Tensor::from_vec(&dev, vec![0.0; 13 * 2], [13, 2]);
    let w = Tensor::from_vec(&dev, data(k * 2, -1.0, 1.0, 0.0, 9), [k, 2]);
    let grad_via = |idx: &IndexTensor| {
        let loss = (&table.index_select(0, idx) * &w).sum();
        grad(&loss, &[&table])[0].to_vec_blocking().unwrap()
    };
    let a = grad_via(&host);
    assert_eq!(a, grad_via(&host));
    assert_eq!(a, grad_via(&computed));
    let expected =
        webgrad::reference::eval(&grad(&(&table.index_select(0, &host) * &w).sum(), &[&table])[0])
            .unwrap();
    assert_close("scatter-add", &a, &expected, 1e-4, 1e-4);
}

#[test]
fn forward_and_reverse_jacobians_agree_through_index_ops() {
    let dev = gpu!();
    let idx = IndexTensor::from_vec(&dev, vec![2u32, 0, 2], [3]);
    let (xd, xs) = input(&[3, 2], 5);
    let x = Tensor::from_vec(&dev, xd, xs);
    let f = |x: &Tensor| x.index_select(0, &idx).exp();
    let forward = jacfwd(f, &x).to_vec_blocking().unwrap();
    let reverse: Vec<f64> = jacrev(f, &x)
        .to_vec_blocking()
        .unwrap()
        .iter()
        .map(|&v| v as f64)
        .collect();
    assert_close("jacfwd vs jacrev", &forward, &reverse, 1e-5, 1e-5);
}

#[test]
fn argmax_and_argmin_take_the_first_extreme_and_the_first_nan() {
    let dev = gpu!();
    let x = Tensor::from_vec(
        &dev,
        vec![
            1.0,
            5.0,
            5.0,
            -2.0,
            0.0,
            -2.0,
            3.0,
            f32::NAN,
            9.0,
            f32::NAN,
            -1.0,
            2.0,
        ],
        [3, 4],
    );
    assert_eq!(x.argmax(1).to_vec_blocking().unwrap(), vec![1, 3, 1]);
    assert_eq!(x.argmin(1).to_vec_blocking().unwrap(), vec![3, 3, 1]);
    let y = Tensor::from_vec(&dev, vec![1.0, 7.0, -3.0, 4.0, 2.0, 0.0], [3, 2]);
    assert_eq!(y.argmax(0).to_vec_blocking().unwrap(), vec![2, 0]);
    assert_eq!(y.argmin(0).to_vec_blocking().unwrap(), vec![1, 2]);
    assert_eq!(y.argmax(0).reference_eval().unwrap(), vec![2, 0]);
    assert_eq!(x.argmin(1).reference_eval().unwrap(), vec![3, 3, 1]);
}

#[test]
fn index_errors_name_the_op_and_the_shapes() {
    let d = webgrad::Device::reference_only();
    let x = Tensor::zeros(&d, [4, 3]);
    let msg = |f: &dyn Fn()| {
        let e = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
            .expect_err("expected a panic");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    };
    let idx = IndexTensor::from_vec(&d, vec![0u32, 4], [2]);
    let m = msg(&|| {
        x.index_select(0, &idx);
    });
    assert!(
        m.contains("index_select: index 4 is out of range for axis 0 of shape [4, 3]"),
        "{m}"
    );
    let m = msg(&|| {
        x.index_select(0, &IndexTensor::from_vec(&d, vec![0u32; 4], [2, 2]));
    });
    assert!(
        m.contains("index_select: indices must be 1-D, got shape [2, 2]"),
        "{m}"
    );
    let m = msg(&|| {
        Tensor::zeros(&d, [2, 0]).argmax(1);
    });
    assert!(m.contains("argmax: axis 1 of shape [2, 0] is empty"), "{m}");
    let m = msg(&|| {
        IndexTensor::from_vec(&d, vec![1u32, 2, 3], [2, 2]);
    });
    assert!(
        m.contains("IndexTensor::from_vec: 3 indices do not fill shape [2, 2]"),
        "{m}"
    );
    let m = msg(&|| {
        Tensor::zeros(&d, [4]).embedding(&idx);
    });
    assert!(
        m.contains("embedding: the table must be [vocabulary, width], got [4]"),
        "{m}"
    );
}
