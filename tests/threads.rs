//! Tensors, devices and models across threads: a thread per device, one
//! model serving several threads, tensors moved between devices only when
//! asked, and every adapter listed.

mod common;

use std::sync::Arc;

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Optimizer, Sgd};
use webgrad::{Device, DeviceOptions, Tensor, grad};

/// A small classifier's batch: inputs and class labels.
fn batch(dev: &Device, seed: u64) -> (Tensor, Vec<usize>) {
    let x = Tensor::from_vec(dev, common::data(16 * 8, -1.0, 1.0, 0.0, seed), [16, 8]);
    let labels = (0..16).map(|i| (i * 7 + seed as usize) % 4).collect();
    (x, labels)
}

/// Three SGD steps of the same model from the same seed on `dev`; the
/// parameters after them.
fn train(dev: &Device) -> Vec<Vec<f32>> {
    let mlp = Mlp::new(dev, &[8, 16, 4], Activation::Tanh, Init::XavierUniform, 3).unwrap();
    let mut opt = Sgd::new(0.1).momentum(0.9);
    for step in 0..3 {
        let (x, labels) = batch(dev, step);
        let loss = mlp.forward(&x).cross_entropy(&labels);
        opt.minimize_blocking(&loss, &mlp.parameters()).unwrap();
    }
    mlp.parameters()
        .iter()
        .map(|p| p.to_vec_blocking().unwrap())
        .collect()
}

#[test]
fn a_thread_per_device_trains_as_one_thread_does() {
    let Some(main_dev) = common::private_device() else {
        return;
    };
    let alone = train(&main_dev);
    let replicas: Vec<Vec<Vec<f32>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let dev = common::private_device().unwrap();
                    train(&dev)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in replicas.iter().enumerate() {
        // Same graph, same seeds, deterministic devices: the same bits.
        assert_eq!(r, &alone, "thread {i}");
    }
}

#[test]
fn one_model_serves_several_threads_at_once() {
    let dev = gpu!();
    let mlp =
        Arc::new(Mlp::new(&dev, &[8, 16, 4], Activation::Relu, Init::XavierUniform, 5).unwrap());
    let serial: Vec<Vec<f32>> = (0..4)
        .map(|i| {
            let (x, _) = batch(&dev, 10 + i);
            mlp.forward(&x).softmax(1).to_vec_blocking().unwrap()
        })
        .collect();
    let concurrent: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let (mlp, dev) = (mlp.clone(), dev.clone());
                s.spawn(move || {
                    let (x, _) = batch(&dev, 10 + i);
                    mlp.forward(&x).softmax(1).to_vec_blocking().unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(concurrent, serial);
}

#[test]
fn a_graph_recorded_on_one_thread_is_differentiated_on_another() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, vec![0.5, -1.0, 2.0], [3]);
    let y = x.tanh().square().sum();
    let g = std::thread::spawn(move || grad(&y, &[&x])[0].to_vec_blocking().unwrap())
        .join()
        .unwrap();
    // d/dx tanh²x = 2 tanh x (1 − tanh² x).
    for (got, x) in g.iter().zip([0.5f64, -1.0, 2.0]) {
        let t = x.tanh();
        let want = 2.0 * t * (1.0 - t * t);
        assert!((f64::from(*got) - want).abs() < 1e-6, "{got} vs {want}");
    }
}

#[test]
fn tensors_of_two_devices_meet_only_through_an_explicit_copy() {
    let Some(a_dev) = common::private_device() else {
        return;
    };
    let b_dev = common::private_device().unwrap();
    let a = Tensor::from_vec(&a_dev, vec![1.0, 2.5, -3.0], [3]);
    let b = Tensor::from_vec(&b_dev, vec![0.5, 0.5, 0.5], [3]);
    let mixed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| a.add(&b)));
    let message = mixed
        .err()
        .and_then(|e| e.downcast_ref::<String>().cloned())
        .expect("mixing devices must panic");
    assert!(
        message.contains(&format!("{a_dev:?}")) && message.contains(&format!("{b_dev:?}")),
        "{message}"
    );
    let moved = a.to_device_blocking(&b_dev).unwrap();
    assert_eq!(moved.device(), &b_dev);
    assert_ne!(&a_dev, &b_dev);
    assert_eq!(moved.add(&b).to_vec_blocking().unwrap(), [1.5, 3.0, -2.5]);
    // 16-bit values keep their dtype and bits.
    let half = a.scale(1.0 / 3.0).to_dtype(webgrad::DType::BF16);
    let moved = half.to_device_blocking(&b_dev).unwrap();
    assert_eq!(moved.dtype(), webgrad::DType::BF16);
    assert_eq!(
        moved.to_vec_blocking().unwrap(),
        half.to_vec_blocking().unwrap()
    );
    let ids = webgrad::IndexTensor::from_vec(&a_dev, vec![3, 1, 4], [3]);
    let ids_b = ids.to_device_blocking(&b_dev).unwrap();
    assert_eq!(ids_b.to_vec_blocking().unwrap(), [3, 1, 4]);
}

#[test]
fn every_adapter_is_listed_and_can_be_opened() {
    if common::device().is_none() {
        return;
    }
    let adapters = webgrad::adapters_blocking();
    assert!(!adapters.is_empty());
    let devices = Device::all_blocking(common::test_options()).unwrap();
    assert_eq!(devices.len(), adapters.len());
    for (dev, adapter) in devices.iter().zip(&adapters) {
        assert_eq!(dev.adapter(), Some(adapter));
        assert_eq!(
            Tensor::from_vec(dev, vec![2.0], [1])
                .square()
                .to_vec_blocking()
                .unwrap(),
            [4.0]
        );
    }
    let beyond = Device::with_options_blocking(DeviceOptions {
        adapter: Some(adapters.len()),
        ..common::test_options()
    })
    .expect_err("an adapter index past the list is refused");
    assert!(
        beyond
            .to_string()
            .contains(&format!("adapter is {}", adapters.len())),
        "{beyond}"
    );
}
