//! Variables and in-place updates.

mod common;

use webgrad::{Tensor, grad, read_all_blocking, realize_all};

#[test]
fn assign_updates_a_variable_in_place() {
    // A private device, so that only this test's buffers are counted.
    let Some(dev) = common::private_device() else {
        return;
    };
    let w = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3])
        .to_variable()
        .unwrap();
    assert!(w.is_variable());
    let live = dev.memory_stats().live_buffers;
    let g = Tensor::from_vec(&dev, vec![10.0, 20.0, 30.0], [3]);
    for _ in 0..3 {
        let step = w.assign(&(&w - &(&g * 0.1)));
        step.realize().unwrap();
    }
    // w − 3·0.1·g, computed in w's own buffer.
    assert_eq!(w.to_vec_blocking().unwrap(), vec![-2.0, -4.0, -6.0]);
    // Only g was uploaded: no new buffer per step.
    assert_eq!(dev.memory_stats().live_buffers, live + 1);
}

#[test]
fn reads_in_the_same_submit_see_the_old_value_and_updates_chain() {
    let dev = gpu!();
    let w = Tensor::from_vec(&dev, vec![1.0, -1.0], [2])
        .to_variable()
        .unwrap();
    let m = Tensor::zeros(&dev, [2]).to_variable().unwrap();
    let loss = w.square().sum();
    let g = grad(&loss, &[&w]).remove(0);
    // m ← 0.5·m + g, then w ← w − 0.1·m_new: one submit, in order.
    let m_new = m.assign(&(&(&m * 0.5) + &g));
    let w_new = w.assign(&(&w - &(&m_new * 0.1)));
    let v = webgrad::read_and_realize_blocking(&[&loss], &[&w_new]).unwrap();
    assert_eq!(v[0], vec![2.0]); // the loss of the old w
    assert_eq!(
        read_all_blocking(&[&m, &w]).unwrap(),
        vec![vec![2.0, -2.0], vec![0.8, -0.8]]
    );
    // The realized update forgot its graph: realizing again does not re-apply it.
    realize_all(&[&w_new]).unwrap();
    assert_eq!(w.to_vec_blocking().unwrap(), vec![0.8, -0.8]);
}

#[test]
fn gradients_flow_to_variables() {
    let dev = gpu!();
    let w = Tensor::from_vec(&dev, vec![3.0], [1])
        .to_variable()
        .unwrap();
    let y = w.square().sum();
    let grads = y.backward();
    assert_eq!(grads.wrt(&w).to_vec_blocking().unwrap(), vec![6.0]);
    assert_eq!(webgrad::reference::eval(&y).unwrap(), vec![9.0]);
}
