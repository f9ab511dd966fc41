//! The float type a device computes in (issue 16): f32 everywhere by default, f16 on a wgpu
//! device whose adapter has `shader-f16`, chosen by the caller before the model is loaded.
//!
//! burn 0.22 fixes a device's default float type once, before the first tensor on it
//! (`Device::configure`, burn-tensor `src/device.rs`): every float tensor then made without an
//! explicit type (the weights read from the checkpoint as f32 and converted at upload, every
//! activation, every constant) has that type. [`set_precision`] makes that choice; the model
//! code is the same for both. Outputs read back through [`crate::readback`] are f32 on the host
//! either way.
//!
//! f16 is not the reference's precision: its error against the official f32 outputs is
//! measured and bounded by its own tolerances (`tests/f16.rs`, BENCHMARKS.md), never by the f32
//! ones. The CPU backend always stays in f32 (its host kernels are f32 kernels).

use burn::tensor::{Device, DeviceError, FloatDType};

/// The float type a device computes in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// f32, as the official model: what every device supports, the default.
    #[default]
    F32,
    /// f16 storage and arithmetic: only on a wgpu device whose adapter has `shader-f16`
    /// ([`f16_available`]); an error elsewhere.
    F16,
    /// f16 where [`f16_available`], else f32.
    Auto,
}

/// Why a precision could not be set.
#[derive(Debug, thiserror::Error)]
pub enum PrecisionError {
    /// f16 was asked for on a device that cannot compute in it (the CPU backend, or an adapter
    /// without `shader-f16`).
    #[error("f16 needs a wgpu device whose adapter has shader-f16; this one has not")]
    F16Unavailable,
    /// The device's float type was fixed before (by an earlier choice or by the first tensor
    /// made on it) and differs from the one asked for.
    #[error(
        "the device already computes in {current:?}: choose the precision before the first \
         model or tensor on it"
    )]
    AlreadyFixed {
        /// The float type the device keeps.
        current: FloatDType,
    },
    /// burn refused the setting for another reason.
    #[error("device settings: {0}")]
    Device(String),
}

/// Whether `device` can compute in f16: a wgpu device whose adapter reports `shader-f16`
/// (burn's `supports_dtype`: storage, conversion and arithmetic). Never the CPU backend.
/// Opens the device.
pub fn f16_available(device: &Device) -> bool {
    #[cfg(feature = "wgpu")]
    {
        matches!(device.as_dispatch(), burn_dispatch::DispatchDevice::Cube(_))
            && device.supports_dtype(FloatDType::F16)
    }
    #[cfg(not(feature = "wgpu"))]
    {
        let _ = device;
        false
    }
}

/// The float type `precision` resolves to on `device`: [`Precision::Auto`] is f16 where
/// [`f16_available`], else f32. Opens the device; changes nothing.
pub fn resolve(device: &Device, precision: Precision) -> Result<FloatDType, PrecisionError> {
    match precision {
        Precision::F32 => Ok(FloatDType::F32),
        Precision::F16 if f16_available(device) => Ok(FloatDType::F16),
        Precision::F16 => Err(PrecisionError::F16Unavailable),
        Precision::Auto if f16_available(device) => Ok(FloatDType::F16),
        Precision::Auto => Ok(FloatDType::F32),
    }
}

/// Makes `device` compute in `precision` and returns the float type chosen. Call it before
/// loading a model on the device (before any tensor on it): burn fixes a device's float type
/// at its first tensor. Asking again for the type the device already has succeeds.
pub fn set_precision(
    device: &mut Device,
    precision: Precision,
) -> Result<FloatDType, PrecisionError> {
    let dtype = resolve(device, precision)?;
    let current = device.settings().float_dtype;
    if current == dtype {
        return Ok(dtype);
    }
    match device.configure(dtype) {
        Ok(()) => Ok(dtype),
        Err(DeviceError::AlreadyInitialized { .. }) => Err(PrecisionError::AlreadyFixed {
            current: device.settings().float_dtype,
        }),
        Err(e) => Err(PrecisionError::Device(e.to_string())),
    }
}

/// The float type `device` computes in now (f32 unless [`set_precision`] chose f16).
pub fn current(device: &Device) -> FloatDType {
    device.settings().float_dtype
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_backend_stays_in_f32() {
        let mut device = Device::flex();
        assert!(!f16_available(&device));
        assert!(matches!(
            resolve(&device, Precision::F16),
            Err(PrecisionError::F16Unavailable)
        ));
        assert_eq!(resolve(&device, Precision::Auto).unwrap(), FloatDType::F32);
        assert_eq!(
            set_precision(&mut device, Precision::Auto).unwrap(),
            FloatDType::F32
        );
        assert_eq!(current(&device), FloatDType::F32);
    }
}
