//! Device tensors back to the host. Every read is asynchronous (`into_data_async`), as WebGPU
//! requires; natively, block on the futures (e.g. `pollster::block_on`).
//!
//! - [`read_f32`], [`read_bool`], [`read_bool_bytes`]: one tensor, its shape and row-major
//!   values;
//! - [`read_prediction`]: a click's masks, scores and (optionally) low-res logits in one
//!   transaction ([`HostPrediction`]).

use burn::tensor::{Bool, BoolStore, DType, Tensor, TensorData, Transaction};

use crate::error::{Result, SamError};
use crate::predictor::Prediction;

/// Reads a float tensor back to the host (shape, row-major values).
pub async fn read_f32<const D: usize>(t: Tensor<D>) -> Result<(Vec<usize>, Vec<f32>)> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| SamError::Backend(format!("reading a tensor back: {e:?}")))?;
    let shape = data.shape().to_vec();
    let values = data
        .try_into_vec_as::<f32>()
        .map_err(|e| SamError::Backend(format!("tensor data: {e:?}")))?;
    Ok((shape, values))
}

/// Reads a boolean tensor back to the host (shape, row-major values). Backends store
/// booleans as bytes or as 32-bit words; both are read as they are (no conversion pass on the
/// device, a quarter or an eighth of the bytes of an integer copy).
pub async fn read_bool<const D: usize>(t: Tensor<D, Bool>) -> Result<(Vec<usize>, Vec<bool>)> {
    read_bool_as(t, |b| b).await
}

/// [`read_bool`] as bytes, 1 for true and 0 for false: what a mask handed on as bytes (a
/// JS `Uint8Array`, an image) needs, without a `Vec<bool>` in between.
pub async fn read_bool_bytes<const D: usize>(t: Tensor<D, Bool>) -> Result<(Vec<usize>, Vec<u8>)> {
    read_bool_as(t, u8::from).await
}

/// Reads a boolean tensor back, each value mapped by `f`.
async fn read_bool_as<const D: usize, T>(
    t: Tensor<D, Bool>,
    f: impl Fn(bool) -> T,
) -> Result<(Vec<usize>, Vec<T>)> {
    let data = t
        .into_data_async()
        .await
        .map_err(|e| SamError::Backend(format!("reading a tensor back: {e:?}")))?;
    bool_data_as(data, f)
}

/// Boolean tensor data on the host, each value mapped by `f` (bytes or 32-bit words, as the
/// backend stores them).
fn bool_data_as<T>(data: TensorData, f: impl Fn(bool) -> T) -> Result<(Vec<usize>, Vec<T>)> {
    let shape = data.shape().to_vec();
    let n: usize = shape.iter().product();
    let bytes = data.as_bytes();
    let values: Vec<T> = match data.dtype() {
        DType::Bool(BoolStore::U32) if bytes.len() == 4 * n => bytes
            .chunks_exact(4)
            .map(|w| f(w.iter().any(|&b| b != 0)))
            .collect(),
        DType::Bool(_) if bytes.len() == n => bytes.iter().map(|&b| f(b != 0)).collect(),
        other => {
            return Err(SamError::Backend(format!(
                "boolean tensor data of {other:?} with {} bytes for {n} values",
                bytes.len()
            )));
        }
    };
    Ok((shape, values))
}

/// A click's results on the host: what [`read_prediction`] returns.
#[derive(Clone, Debug, PartialEq)]
pub struct HostPrediction {
    /// `[1, C, H, W]`.
    pub mask_shape: Vec<usize>,
    /// The masks, row-major, 1 inside and 0 outside.
    pub masks: Vec<u8>,
    /// `[C]` predicted IoU.
    pub scores: Vec<f32>,
    /// `[1, C, 256, 256]` low-res logits, when asked for.
    pub low_res_logits: Option<Vec<f32>>,
}

/// Reads a [`Prediction`] back in one transaction: on wgpu the masks, the scores and (with
/// `low_res_logits`) the low-res logits come back with one submission and one wait for the
/// GPU, instead of one round trip each; on the CPU backend it costs what separate reads do.
pub async fn read_prediction(pred: Prediction, low_res_logits: bool) -> Result<HostPrediction> {
    let masks = pred.masks();
    let mut tr = Transaction::default()
        .register(pred.iou_predictions)
        .register(masks);
    if low_res_logits {
        tr = tr.register(pred.low_res_logits);
    }
    let data = tr
        .execute_async()
        .await
        .map_err(|e| SamError::Backend(format!("reading a prediction back: {e:?}")))?;
    let mut data = data.into_iter();
    let mut next = || {
        data.next()
            .ok_or_else(|| SamError::Backend("a transaction returned fewer tensors".into()))
    };
    let floats = |d: TensorData| {
        d.try_into_vec_as::<f32>()
            .map_err(|e| SamError::Backend(format!("tensor data: {e:?}")))
    };
    let scores = floats(next()?)?;
    let (mask_shape, masks) = bool_data_as(next()?, u8::from)?;
    let low_res_logits = if low_res_logits {
        Some(floats(next()?)?)
    } else {
        None
    };
    Ok(HostPrediction {
        mask_shape,
        masks,
        scores,
        low_res_logits,
    })
}
