//! Variables and in-place updates.

mod common;

use webgrad::{Tensor, grad, read_all_blocking, realize_all_blocking};

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
        step.realize_blocking().unwrap();
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
    realize_all_blocking(&[&w_new]).unwrap();
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

/// Reads and updates follow program order: every op sees the variable as it
/// was where the op was recorded, whatever the realize groups together.
#[test]
fn reads_follow_program_order_within_one_realize() {
    let dev = gpu!();
    let v = Tensor::from_vec(&dev, vec![1.0, 2.0], [2])
        .to_variable()
        .unwrap();
    let before = &v * 10.0; // old value
    let first = v.assign(&(&v + 1.0)); // v = [2, 3]
    let between = &v * 10.0; // sees the first update
    let second = v.assign(&(&v * 3.0)); // reads the first update: [6, 9]
    let after = &v * 10.0; // sees the second update
    let got = read_all_blocking(&[&after, &between, &before, &second, &first]).unwrap();
    assert_eq!(got[0], vec![60.0, 90.0]);
    assert_eq!(got[1], vec![20.0, 30.0]);
    assert_eq!(got[2], vec![10.0, 20.0]);
    assert_eq!(got[3], vec![6.0, 9.0]);
    // The superseded update keeps its own value; the variable holds the last.
    assert_eq!(got[4], vec![2.0, 3.0]);
    assert_eq!(v.to_vec_blocking().unwrap(), vec![6.0, 9.0]);
    // And keeps it after later updates.
    v.assign(&Tensor::zeros(&dev, [2]))
        .realize_blocking()
        .unwrap();
    assert_eq!(first.to_vec_blocking().unwrap(), vec![2.0, 3.0]);
}

#[test]
fn two_updates_keep_program_order_whatever_is_realized_first() {
    let dev = gpu!();
    let v = Tensor::from_vec(&dev, vec![1.0], [1])
        .to_variable()
        .unwrap();
    let c = Tensor::from_vec(&dev, vec![5.0], [1]);
    let d = Tensor::from_vec(&dev, vec![7.0], [1]);
    let first = v.assign(&c);
    let second = v.assign(&d);
    // Realizing the later update first, then the earlier one: the variable
    // keeps the later value, the earlier handle its own.
    second.realize_blocking().unwrap();
    first.realize_blocking().unwrap();
    assert_eq!(v.to_vec_blocking().unwrap(), vec![7.0]);
    assert_eq!(first.to_vec_blocking().unwrap(), vec![5.0]);
    assert_eq!(second.to_vec_blocking().unwrap(), vec![7.0]);
}

#[test]
fn a_swap_through_a_temporary_reads_the_old_values() {
    let dev = gpu!();
    let a = Tensor::from_vec(&dev, vec![1.0, 2.0], [2])
        .to_variable()
        .unwrap();
    let b = Tensor::from_vec(&dev, vec![3.0, 4.0], [2])
        .to_variable()
        .unwrap();
    // Each update's expression reads the other variable's old value; the
    // scheduler must run both reads before either write.
    let old_a = &a * 1.0;
    let old_b = &b * 1.0;
    let ua = a.assign(&old_b);
    let ub = b.assign(&old_a);
    realize_all_blocking(&[&ua, &ub]).unwrap();
    assert_eq!(a.to_vec_blocking().unwrap(), vec![3.0, 4.0]);
    assert_eq!(b.to_vec_blocking().unwrap(), vec![1.0, 2.0]);
    // Sequential semantics without the temporary: b = new a = old b.
    let ua = a.assign(&b);
    let ub = b.assign(&a);
    realize_all_blocking(&[&ub, &ua]).unwrap();
    assert_eq!(a.to_vec_blocking().unwrap(), vec![1.0, 2.0]);
    assert_eq!(b.to_vec_blocking().unwrap(), vec![1.0, 2.0]);
}

#[test]
fn reading_a_value_whose_variable_was_overwritten_since_is_an_error() {
    let dev = gpu!();
    let v = Tensor::from_vec(&dev, vec![1.0, 2.0], [2])
        .to_variable()
        .unwrap();
    let old = &v * 2.0; // recorded before the update, not realized
    v.assign(&(&v + 1.0)).realize_blocking().unwrap();
    let err = old.to_vec_blocking().unwrap_err();
    assert!(matches!(err, webgrad::Error::StaleRead(_)), "{err}");
    assert!(err.to_string().contains("scale(2)"), "{err}");
    // An update's handle is its variable's buffer until the next update.
    let u1 = v.assign(&(&v * 2.0));
    u1.realize_blocking().unwrap();
    assert_eq!(u1.to_vec_blocking().unwrap(), vec![4.0, 6.0]);
    v.assign(&(&v * 2.0)).realize_blocking().unwrap();
    let err = u1.to_vec_blocking().unwrap_err();
    assert!(matches!(err, webgrad::Error::StaleRead(_)), "{err}");
    // Realized together, the same read is fine.
    let w = Tensor::from_vec(&dev, vec![1.0], [1])
        .to_variable()
        .unwrap();
    let old = &w * 2.0;
    let up = w.assign(&(&w + 1.0));
    realize_all_blocking(&[&up, &old]).unwrap();
    assert_eq!(old.to_vec_blocking().unwrap(), vec![2.0]);
}

#[test]
fn gradients_of_reads_after_an_update_go_to_the_variable() {
    let dev = gpu!();
    let w = Tensor::from_vec(&dev, vec![3.0], [1])
        .to_variable()
        .unwrap();
    let _update = w.assign(&(&w * 2.0));
    // Recorded after the (pending) update: reads w = 6.
    let loss = w.square().sum();
    let g = grad(&loss, &[&w]).remove(0);
    // d(w²)/dw at the new value 6, as under torch.no_grad() updates.
    assert_eq!(g.to_vec_blocking().unwrap(), vec![12.0]);
    assert_eq!(w.to_vec_blocking().unwrap(), vec![6.0]);
}

/// A variable made from host data (an input, a small constant) is an
/// upload into a buffer of its own: no kernel, and never an alias of the
/// tensor it was made from (realized or not); anything else is copied.
#[test]
fn variables_from_host_data_are_uploads_of_their_own() {
    let Some(dev) = common::private_device() else {
        return;
    };
    let x = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let before = dev.counters().kernels;
    let v = x.to_variable().unwrap();
    let zeros = Tensor::zeros(&dev, [2, 3]).to_variable().unwrap();
    assert_eq!(dev.counters().kernels, before, "no kernel for uploads");
    v.assign(&(&v * 2.0)).realize_blocking().unwrap();
    assert_eq!(v.to_vec_blocking().unwrap(), vec![2.0, 4.0, 6.0]);
    assert_eq!(x.to_vec_blocking().unwrap(), vec![1.0, 2.0, 3.0]);
    assert_eq!(zeros.to_vec_blocking().unwrap(), vec![0.0; 6]);
    // x is realized now: a second variable is still a buffer of its own.
    let w = x.to_variable().unwrap();
    w.assign(&(&w + 1.0)).realize_blocking().unwrap();
    assert_eq!(w.to_vec_blocking().unwrap(), vec![2.0, 3.0, 4.0]);
    assert_eq!(x.to_vec_blocking().unwrap(), vec![1.0, 2.0, 3.0]);
    // A computed value is copied by a kernel.
    let before = dev.counters().kernels;
    let e = x.exp().to_variable().unwrap();
    assert!(dev.counters().kernels > before);
    let want: Vec<f32> = [1f32, 2.0, 3.0].iter().map(|v| v.exp()).collect();
    let got = e.to_vec_blocking().unwrap();
    assert!(got.iter().zip(&want).all(|(g, w)| (g - w).abs() < 1e-5));
}
