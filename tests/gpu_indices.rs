//! Indices computed on the GPU (an argmax fed to index_select or
//! embedding): an index past the axis fails the realize that ran the op,
//! naming the op and the largest offending index, in the forward and the
//! backward pass alike; `IndexTensor::clamp` is the explicit alternative,
//! whose forward and backward passes both use the clamped rows. Values
//! are checked against the f64 reference and closed forms.

mod common;

use webgrad::{Device, Error, IndexTensor, Tensor, grad, reference};

/// GPU-computed indices with the given values: the argmax of rows that
/// are 1 at the value and 0 elsewhere, over `width` columns.
fn gpu_indices(dev: &Device, values: &[usize], width: usize) -> IndexTensor {
    let mut rows = vec![0.0; values.len() * width];
    for (r, &v) in values.iter().enumerate() {
        rows[r * width + v] = 1.0;
    }
    Tensor::from_vec(dev, rows, [values.len(), width]).argmax(1)
}

/// A `[rows, 2]` table whose row r is (10r, 10r + 1).
fn table(dev: &Device, rows: usize) -> Tensor {
    let data: Vec<f32> = (0..rows)
        .flat_map(|r| [10.0 * r as f32, 10.0 * r as f32 + 1.0])
        .collect();
    Tensor::from_vec(dev, data, [rows, 2])
}

fn out_of_range(result: webgrad::Result<Vec<f32>>) -> String {
    match result {
        Err(Error::IndexOutOfRange(message)) => message,
        other => panic!("expected an IndexOutOfRange error, got {other:?}"),
    }
}

#[test]
fn an_index_past_the_axis_fails_the_realize_naming_the_op() {
    let dev = gpu!();
    // index_select: index 5 into a 3-row table (the largest of 1, 5, 4).
    let x = table(&dev, 3);
    let y = x.index_select(0, &gpu_indices(&dev, &[1, 5, 4], 8));
    let message = out_of_range(y.to_vec_blocking());
    assert!(
        message.contains("index_select") && message.contains("the largest is 5"),
        "{message}"
    );
    assert!(matches!(
        y.realize_blocking(),
        Err(Error::IndexOutOfRange(_))
    ));
    // embedding: ids [7, 9] into a 4-row table.
    let ids = gpu_indices(&dev, &[7, 9], 10);
    let e = table(&dev, 4).embedding(&ids);
    let message = out_of_range(e.to_vec_blocking());
    assert!(
        message.starts_with("embedding:") && message.contains("the largest is 9"),
        "{message}"
    );
    // A table with no rows: every index is out of range.
    let empty = Tensor::from_vec(&dev, Vec::<f32>::new(), [0, 3]);
    let z = empty.embedding(&gpu_indices(&dev, &[0], 2));
    let message = out_of_range(z.to_vec_blocking());
    assert!(message.contains("of size 0"), "{message}");
    // The gradient alone (which never reads the forward value) fails the
    // same way: it would put index 6's gradient in no row.
    let x = table(&dev, 3);
    let y = x.index_select(0, &gpu_indices(&dev, &[0, 6], 7));
    let g = grad(&y.sum(), &[&x]);
    let message = out_of_range(g[0].to_vec_blocking());
    assert!(
        message.contains("the gradient of index_select") && message.contains("the largest is 6"),
        "{message}"
    );
    // The device goes on working, and the reference refuses the same graph.
    let ok = table(&dev, 2).scale(2.0).to_vec_blocking().unwrap();
    assert_eq!(ok, [0.0, 2.0, 20.0, 22.0]);
    let panic = common::panic_message(|| {
        let _ = reference::eval(&y);
    });
    assert!(panic.contains("out of range"), "{panic}");
}

/// GPU indices that fit are computed right, forward and backward, with the
/// check in the kernel; a bound known when recording skips the check.
#[test]
fn gpu_indices_in_range_match_the_reference() {
    let dev = gpu!();
    let x = table(&dev, 3);
    // Checked (argmax over 8 columns may exceed 3 rows): values 2, 0, 2.
    let idx = gpu_indices(&dev, &[2, 0, 2], 8);
    let y = x.index_select(0, &idx);
    let w = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]);
    let g = grad(&y.mul(&w).sum(), &[&x]);
    let got = webgrad::read_all_blocking(&[&y, &g[0]]).unwrap();
    assert_eq!(got[0], [20.0, 21.0, 0.0, 1.0, 20.0, 21.0]);
    // Row 2 gathers the weights of positions 0 and 2, row 0 of position 1.
    assert_eq!(got[1], [3.0, 4.0, 0.0, 0.0, 6.0, 8.0]);
    assert_eq!(
        reference::eval(&g[0]).unwrap(),
        [3.0, 4.0, 0.0, 0.0, 6.0, 8.0]
    );
    // Unchecked: an argmax over 3 columns always fits 3 rows.
    let y = x.index_select(0, &gpu_indices(&dev, &[1, 2], 3));
    assert_eq!(y.to_vec_blocking().unwrap(), [10.0, 11.0, 20.0, 21.0]);
}

/// A training-style loop: the same graph every step (planned, recorded,
/// then replayed), whose indices go out of range only in the last step.
#[test]
fn replayed_plans_check_their_indices_too() {
    let dev = gpu!();
    let x = table(&dev, 4);
    for (step, last) in [1usize, 2, 3, 0, 3, 6].into_iter().enumerate() {
        let idx = gpu_indices(&dev, &[0, last], 8);
        let y = x.index_select(0, &idx).sum();
        let got = y.to_vec_blocking();
        if last < 4 {
            let expected = 1.0 + 20.0 * last as f32 + 1.0;
            assert_eq!(got.unwrap(), [expected], "step {step}");
        } else {
            let message = out_of_range(got);
            assert!(
                message.contains("the largest is 6"),
                "step {step}: {message}"
            );
        }
    }
}

#[test]
fn clamped_indices_read_and_write_the_last_row() {
    let dev = gpu!();
    let x = table(&dev, 3);
    let idx = gpu_indices(&dev, &[5, 1, 7], 8).clamp(3);
    assert_eq!(idx.to_vec_blocking().unwrap(), [2, 1, 2]);
    assert_eq!(idx.reference_eval().unwrap(), [2, 1, 2]);
    let y = x.index_select(0, &idx);
    let w = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [3, 2]);
    let g = grad(&y.mul(&w).sum(), &[&x]);
    let got = webgrad::read_all_blocking(&[&y, &g[0]]).unwrap();
    assert_eq!(got[0], [20.0, 21.0, 10.0, 11.0, 20.0, 21.0]);
    // Forward and backward agree: the gradient goes to the rows read.
    assert_eq!(got[1], [0.0, 0.0, 3.0, 4.0, 6.0, 8.0]);
    assert_eq!(
        reference::eval(&g[0]).unwrap(),
        [0.0, 0.0, 3.0, 4.0, 6.0, 8.0]
    );
    // Host indices are clamped the same way.
    let host = IndexTensor::from_vec(&dev, vec![0u32, 9, u32::MAX], [3]).clamp(2);
    assert_eq!(host.to_vec_blocking().unwrap(), [0, 1, 1]);
    let message = common::panic_message(|| {
        let _ = host.clamp(0);
    });
    assert!(
        message.contains("IndexTensor::clamp: size must be at least 1"),
        "{message}"
    );
}

/// A variable updated by the realize whose check failed holds a value made
/// with a bad index: reading it (or using it) fails too, instead of
/// training on silently.
#[test]
fn a_failed_update_marks_its_variable() {
    let dev = gpu!();
    let w = table(&dev, 3).to_variable().unwrap();
    let y = w.index_select(0, &gpu_indices(&dev, &[4], 5)).sum();
    let g = grad(&y, &[&w]);
    let update = w.assign(&(&w - &g[0].scale(0.1)));
    assert!(matches!(
        update.realize_blocking(),
        Err(Error::IndexOutOfRange(_))
    ));
    let message = out_of_range(w.to_vec_blocking());
    assert!(message.contains("the largest is 4"), "{message}");
    let message = out_of_range(w.scale(2.0).to_vec_blocking());
    assert!(message.contains("index_select"), "{message}");
    // A variable made afresh works.
    let fresh = table(&dev, 3).to_variable().unwrap();
    assert_eq!(
        fresh.to_vec_blocking().unwrap(),
        [0.0, 1.0, 10.0, 11.0, 20.0, 21.0]
    );
}
