//! Trains a small MLP on a three-arm spiral and draws what it learned: a PNG
//! of the decision regions with the data points over them, and the loss
//! curve below.
//!
//! cargo run --release --example spiral [-- OUTPUT.png]   (default: spiral.png)

use webgrad::layers::{Activation, Init, Mlp, Module};
use webgrad::optim::{Adam, Optimizer};
use webgrad::{Device, Result, Tensor, grad, read_and_realize_blocking};

const CLASSES: usize = 3;
const PER_CLASS: usize = 100;
const SIZE: usize = 400; // the decision-region panel, in pixels
const CURVE_HEIGHT: usize = 140;
const EXTENT: f32 = 1.15; // the panel spans [−EXTENT, EXTENT]²

const COLORS: [[u8; 3]; CLASSES] = [[230, 80, 60], [60, 140, 230], [70, 180, 90]];

fn main() -> Result<()> {
    let out = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "spiral.png".into());
    let dev = Device::new_blocking()?;
    let data = webgrad::data::spiral(CLASSES, PER_CLASS, 7);
    let (x, labels) = data.tensors(&dev);
    let xy = data.inputs.clone();
    let model = Mlp::new(
        &dev,
        &[2, 64, 64, CLASSES],
        Activation::Relu,
        Init::KaimingUniform,
        3,
    )?;
    let params = model.parameters();
    let mut opt = Adam::new(1e-2);
    let mut losses = Vec::new();
    for step in 0..1000 {
        let loss = model.forward(&x).cross_entropy(&labels);
        let grads = grad(&loss, &params);
        let updates = opt.step(&params, &grads)?;
        let v = read_and_realize_blocking(&[&loss], &updates.iter().collect::<Vec<_>>())?;
        losses.push(v[0][0]);
        if step % 200 == 0 {
            println!("step {step:>4}  loss {:.4}", v[0][0]);
        }
    }
    println!("final loss {:.4}", losses.last().unwrap());

    // Classify every pixel of the panel in one batch.
    let grid = webgrad::data::grid_points(SIZE, EXTENT);
    let logits = model
        .forward(&Tensor::from_vec(&dev, grid, [SIZE * SIZE, 2]))
        .to_vec_blocking()?;
    let (w, h) = (SIZE, SIZE + CURVE_HEIGHT);
    let mut img = vec![255u8; w * h * 3];
    let put = |x: usize, y: usize, c: [u8; 3], img: &mut Vec<u8>| {
        if x < w && y < h {
            img[(y * w + x) * 3..(y * w + x) * 3 + 3].copy_from_slice(&c);
        }
    };
    for (p, class) in webgrad::data::argmax_rows(&logits, CLASSES)
        .into_iter()
        .enumerate()
    {
        // Region colour: the class colour blended with white.
        let c = COLORS[class].map(|v| ((v as u32 + 2 * 255) / 3) as u8);
        put(p % SIZE, p / SIZE, c, &mut img);
    }
    for (pt, &l) in xy.chunks(2).zip(&labels) {
        let cx = ((pt[0] + EXTENT) / (2.0 * EXTENT) * SIZE as f32) as i64;
        let cy = ((EXTENT - pt[1]) / (2.0 * EXTENT) * SIZE as f32) as i64;
        for dy in -2..=2i64 {
            for dx in -2..=2i64 {
                let edge = dx.abs() == 2 || dy.abs() == 2;
                let c = if edge { [30, 30, 30] } else { COLORS[l] };
                if cx + dx >= 0 && cy + dy >= 0 {
                    put((cx + dx) as usize, (cy + dy) as usize, c, &mut img);
                }
            }
        }
    }
    // The loss curve (log scale) in the bottom panel.
    let (lo, hi) = losses.iter().fold((f32::MAX, f32::MIN), |(a, b), &l| {
        (a.min(l.max(1e-6)), b.max(l))
    });
    let (llo, lhi) = (lo.ln(), hi.ln().max(lo.ln() + 1e-3));
    for x in 0..w {
        put(x, SIZE, [0, 0, 0], &mut img);
    }
    let mut prev: Option<(usize, usize)> = None;
    for (i, &l) in losses.iter().enumerate() {
        let x = i * (w - 1) / (losses.len() - 1);
        let frac = (l.max(1e-6).ln() - llo) / (lhi - llo);
        let y = SIZE + 10 + ((1.0 - frac) * (CURVE_HEIGHT - 20) as f32) as usize;
        if let Some((px, py)) = prev {
            let (y0, y1) = (py.min(y), py.max(y));
            for yy in y0..=y1 {
                put(px.max(x.saturating_sub(1)), yy, [40, 40, 160], &mut img);
            }
        }
        put(x, y, [40, 40, 160], &mut img);
        prev = Some((x, y));
    }
    let file = std::fs::File::create(&out).expect("create the PNG file");
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()
        .and_then(|mut wr| wr.write_image_data(&img))
        .expect("write the PNG");
    println!(
        "wrote {out}: decision regions ({SIZE}×{SIZE}) over [−{EXTENT}, {EXTENT}]², loss curve (log scale) below"
    );
    Ok(())
}
