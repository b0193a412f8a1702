use webgrad::*;
fn main() -> Result<()> {
    env_logger::init(); let dev = Device::new_blocking()?;
    let a = Tensor::from_vec(&dev, vec![1.0, 2.0, 3.0], [3]);
    let u = Tensor::from_vec(&dev, vec![-1.0, 5.0, 7.0], [3]);
    let y = -&a;
    let loss = (&y * &u).sum();
    let g = grad(&loss, &[&a]);
    println!("{:?}", g[0].to_vec_blocking()?);
    println!("{:?}", reference::eval(&g[0])?);
    Ok(())
}
#[allow(dead_code)]
fn init() {}
