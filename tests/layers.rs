//! Layers and models: named parameters, whole-model checkpoints by name,
//! the one-call training step, and the layers' forward passes against the
//! f64 reference.

mod common;

use webgrad::layers::{Conv2d, Embedding, LayerNorm, Module, MultiHeadAttention, TransformerBlock};
use webgrad::models::{CharTransformer, DigitsCnn, TransformerConfig};
use webgrad::optim::{Adam, Optimizer, Sgd};
use webgrad::{Conv2dOptions, IndexTensor, Tensor, io};

use common::{check_forward, data};

fn small_config() -> TransformerConfig {
    TransformerConfig {
        vocabulary: 11,
        context: 8,
        width: 16,
        heads: 2,
        layers: 2,
        dropout: 0.1,
    }
}

#[test]
fn models_name_every_parameter_once() {
    let dev = gpu!();
    let gpt = CharTransformer::new(&dev, small_config(), 0).unwrap();
    let names: Vec<String> = gpt.named_parameters().into_iter().map(|(n, _)| n).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "{names:?}");
    for want in [
        "tokens.table",
        "blocks.1.attention.qkv.weight",
        "blocks.0.fc2.bias",
        "norm.weight",
        "head.weight",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let cnn = DigitsCnn::new(&dev, 0).unwrap();
    let names: Vec<String> = cnn.named_parameters().into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "conv1.weight",
            "conv1.bias",
            "conv2.weight",
            "conv2.bias",
            "head.weight",
            "head.bias"
        ]
    );
}

#[test]
fn whole_models_save_and_load_by_name() {
    let dev = gpu!();
    let dir = std::env::temp_dir().join(format!("webgrad-layers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gpt.safetensors");
    let a = CharTransformer::new(&dev, small_config(), 1).unwrap();
    let b = CharTransformer::new(&dev, small_config(), 2).unwrap();
    io::save_module_blocking(&path, &a).unwrap();
    io::load_module(&path, &b).unwrap();
    for ((name, x), (_, y)) in a.named_parameters().into_iter().zip(b.named_parameters()) {
        assert_eq!(
            x.to_vec_blocking().unwrap(),
            y.to_vec_blocking().unwrap(),
            "{name}"
        );
    }
    // A model of another shape is refused by name and shape, and left untouched.
    let other = CharTransformer::new(
        &dev,
        TransformerConfig {
            width: 8,
            ..small_config()
        },
        3,
    )
    .unwrap();
    let before = other.tokens.table.to_vec_blocking().unwrap();
    let err = io::load_module(&path, &other).unwrap_err().to_string();
    assert!(
        err.contains("tokens.table has shape [11, 16] in the checkpoint but [11, 8] in the model"),
        "{err}"
    );
    assert_eq!(other.tokens.table.to_vec_blocking().unwrap(), before);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn minimize_fits_a_linear_regression() {
    // y = 3x − 2 from exact data: one call per step, the loss returned.
    let dev = gpu!();
    let xs: Vec<f32> = (0..16).map(|i| i as f32 / 8.0 - 1.0).collect();
    let ys: Vec<f32> = xs.iter().map(|x| 3.0 * x - 2.0).collect();
    let x = Tensor::from_vec(&dev, xs, [16, 1]);
    let y = Tensor::from_vec(&dev, ys, [16, 1]);
    let w = Tensor::zeros(&dev, [1, 1]).to_variable().unwrap();
    let b = Tensor::zeros(&dev, [1]).to_variable().unwrap();
    let mut opt = Sgd::new(0.3);
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..200 {
        let loss = (&x.matmul(&w) + &b).mse(&y);
        last = opt.minimize_blocking(&loss, &[&w, &b]).unwrap();
        first.get_or_insert(last);
    }
    assert!(
        first.unwrap() > 1.0 && last < 1e-8,
        "loss {first:?} → {last}"
    );
    assert!((w.item_blocking().unwrap() - 3.0).abs() < 1e-4);
    assert!((b.item_blocking().unwrap() + 2.0).abs() < 1e-4);
}

#[test]
fn a_transformer_step_lowers_the_loss() {
    let dev = gpu!();
    let model = CharTransformer::new(&dev, small_config(), 4).unwrap();
    let ids: Vec<u32> = (0..2 * 8).map(|i| (i * 7 % 11) as u32).collect();
    let targets: Vec<usize> = ids.iter().map(|&i| ((i + 1) % 11) as usize).collect();
    let ids = IndexTensor::from_vec(&dev, ids, [2, 8]);
    let params = model.parameters();
    let mut opt = Adam::new(1e-2);
    let first = opt
        .minimize_blocking(&model.loss(&ids, &targets, Some(0)), &params)
        .unwrap();
    let mut last = first;
    for step in 1..30 {
        last = opt
            .minimize_blocking(&model.loss(&ids, &targets, Some(step)), &params)
            .unwrap();
    }
    // A random model predicts about uniformly (ln 11 = 2.4) or worse.
    assert!(first > 2.0 && first.is_finite(), "initial loss {first}");
    assert!(last < 0.5 * first, "loss {first} → {last}");
}

#[test]
fn layer_forward_passes_match_the_reference() {
    let dev = gpu!();
    let x = Tensor::from_vec(&dev, data(2 * 5 * 16, -1.0, 1.0, 0.0, 1), [2, 5, 16]);
    let attention = MultiHeadAttention::new(&dev, 16, 4, 1).unwrap();
    check_forward("MultiHeadAttention", &attention.forward(&x));
    let block = TransformerBlock::new(&dev, 16, 2, 0.2, 2).unwrap();
    check_forward("TransformerBlock with dropout", &block.forward(&x, Some(5)));
    let norm = LayerNorm::new(&dev, 16).unwrap();
    check_forward("LayerNorm", &norm.forward(&x));
    let embedding = Embedding::new(&dev, 7, 3, 3).unwrap();
    let ids = IndexTensor::from_vec(&dev, vec![6u32, 0, 6], [3]);
    check_forward("Embedding", &embedding.forward(&ids));
    let conv = Conv2d::new(
        &dev,
        2,
        4,
        [3, 3],
        Conv2dOptions::default().padding(1),
        webgrad::layers::Init::KaimingUniform,
        4,
    )
    .unwrap();
    let img = Tensor::from_vec(&dev, data(2 * 2 * 5 * 5, -1.0, 1.0, 0.0, 5), [2, 2, 5, 5]);
    check_forward("Conv2d", &conv.forward(&img));
    let cnn = DigitsCnn::new(&dev, 5).unwrap();
    let pixels = Tensor::from_vec(&dev, data(3 * 64, 0.0, 1.0, 0.0, 6), [3, 64]);
    check_forward("DigitsCnn", &cnn.forward(&pixels));
}
