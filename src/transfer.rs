//! Moving values between devices. A tensor belongs to one device and an op
//! whose inputs live on two is refused (naming both); a copy to another
//! device is always asked for, never implied. Values cross through host
//! memory: WebGPU has no copy between devices.

use crate::device::Device;
use crate::error::Result;
use crate::ops::index::IndexTensor;
use crate::tensor::Tensor;

impl Tensor {
    /// A copy of this value on `device`: read back, then uploaded, with the
    /// same shape and dtype (a 16-bit value is read as f32, which is exact,
    /// and stored in 16 bits again, also exact). The copy is a new leaf:
    /// it is not differentiated through, and a variable's copy is a plain
    /// value (make it a variable there with [`Tensor::to_variable`]).
    pub async fn to_device(&self, device: &Device) -> Result<Tensor> {
        let values = self.to_vec().await?;
        let copy = Tensor::from_vec(device, values, self.shape().clone());
        Ok(match self.dtype() {
            crate::DType::F32 => copy,
            dtype => copy.to_dtype(dtype),
        })
    }

    /// [`Tensor::to_device`], natively.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_device_blocking(&self, device: &Device) -> Result<Tensor> {
        pollster::block_on(self.to_device(device))
    }
}

impl IndexTensor {
    /// A copy of these indices on `device` (read back, then uploaded).
    pub async fn to_device(&self, device: &Device) -> Result<IndexTensor> {
        let values = self.to_vec().await?;
        Ok(IndexTensor::from_vec(device, values, self.shape().clone()))
    }

    /// [`IndexTensor::to_device`], natively.
    #[cfg(not(target_arch = "wasm32"))]
    pub fn to_device_blocking(&self, device: &Device) -> Result<IndexTensor> {
        pollster::block_on(self.to_device(device))
    }
}
