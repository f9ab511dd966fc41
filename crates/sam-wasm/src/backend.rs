//! Which Burn device runs the model: WebGPU (burn's wgpu runtime) when the browser gives an
//! adapter, else burn's CPU backend (`flex`, compiled with wasm SIMD when enabled).
//!
//! burn's wgpu runtime can be initialised once per thread (worker); the device is kept and
//! shared by every [`crate::Segmenter`] of that thread.

use std::cell::RefCell;

use burn::tensor::Device;
use js_sys::{Promise, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::js_error;

/// What the caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU if an adapter is available, else the CPU.
    Auto,
    /// WebGPU or an error.
    WebGpu,
    /// The CPU only.
    Cpu,
}

impl BackendChoice {
    /// Parses `"auto"`, `"webgpu"` or `"cpu"`.
    pub fn parse(s: &str) -> Result<Self, JsValue> {
        match s {
            "auto" => Ok(Self::Auto),
            "webgpu" => Ok(Self::WebGpu),
            "cpu" => Ok(Self::Cpu),
            other => Err(js_error(
                &format!("unknown backend {other:?} (expected \"auto\", \"webgpu\" or \"cpu\")"),
                Some("TypeError"),
            )),
        }
    }
}

/// The chosen device, its name for JS (`"webgpu"` / `"cpu"`) and a description.
#[derive(Clone, Debug)]
pub struct Backend {
    pub device: Device,
    pub name: &'static str,
    pub info: String,
}

thread_local! {
    static WEBGPU: RefCell<Option<(Device, String)>> = const { RefCell::new(None) };
}

/// `navigator.gpu` of this window or worker, if any.
fn navigator_gpu() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    (!gpu.is_undefined() && !gpu.is_null()).then_some(gpu)
}

/// Asks `navigator.gpu` for an adapter; `Ok(description)` when one is given, `Err(why not)`.
pub async fn probe_webgpu() -> Result<String, String> {
    let gpu = navigator_gpu().ok_or_else(|| {
        "this browser has no WebGPU (navigator.gpu is missing; Chrome/Edge 113+, Safari 26+, or \
         Firefox 141+ on Windows have it, some only on secure https:// or localhost pages)"
            .to_string()
    })?;
    let request = Reflect::get(&gpu, &"requestAdapter".into())
        .ok()
        .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
        .ok_or("navigator.gpu.requestAdapter is not a function")?;
    let promise = request
        .call0(&gpu)
        .map_err(|e| format!("requestAdapter failed: {e:?}"))?;
    let adapter = JsFuture::from(Promise::from(promise))
        .await
        .map_err(|e| format!("requestAdapter failed: {e:?}"))?;
    if adapter.is_null() || adapter.is_undefined() {
        return Err("WebGPU is present but gave no adapter (GPU blocklisted or disabled)".into());
    }
    Ok(describe_adapter(&adapter))
}

fn describe_adapter(adapter: &JsValue) -> String {
    let field = |obj: &JsValue, name: &str| {
        Reflect::get(obj, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .filter(|s| !s.is_empty())
    };
    let mut parts = Vec::new();
    if let Ok(info) = Reflect::get(adapter, &"info".into())
        && info.is_object()
    {
        for name in ["vendor", "architecture", "description"] {
            if let Some(v) = field(&info, name) {
                parts.push(v);
            }
        }
    }
    let f16 = Reflect::get(adapter, &"features".into())
        .ok()
        .and_then(|f| {
            let has = Reflect::get(&f, &"has".into()).ok()?;
            let has = has.dyn_into::<js_sys::Function>().ok()?;
            has.call1(&f, &"shader-f16".into()).ok()
        })
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    if f16 {
        parts.push("shader-f16".into());
    }
    if parts.is_empty() {
        "WebGPU adapter".into()
    } else {
        format!("WebGPU: {}", parts.join(", "))
    }
}

/// The wgpu device of this thread, initialised on first use.
async fn webgpu_device() -> Result<(Device, String), String> {
    if let Some(found) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(found);
    }
    let info = probe_webgpu().await?;
    let device = Device::wgpu_options()
        .init_async()
        .await
        .map_err(|e| format!("could not start WebGPU: {e}"))?;
    // Another call may have finished first: keep the first device.
    Ok(WEBGPU.with(|w| w.borrow_mut().get_or_insert((device, info)).clone()))
}

/// Picks the backend for `choice`. `Auto` falls back to the CPU (saying why in `info`);
/// `WebGpu` without an adapter is an error naming the reason.
pub async fn select(choice: BackendChoice) -> Result<Backend, JsValue> {
    let cpu = |why: Option<String>| Backend {
        device: Device::flex(),
        name: "cpu",
        info: match why {
            None => "CPU (WebAssembly)".into(),
            Some(why) => format!("CPU (WebAssembly); WebGPU not used: {why}"),
        },
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu(None)),
        BackendChoice::WebGpu => match webgpu_device().await {
            Ok((device, info)) => Ok(Backend {
                device,
                name: "webgpu",
                info,
            }),
            Err(why) => Err(js_error(
                &format!("WebGPU is not available: {why}; use backend \"cpu\" or \"auto\""),
                Some("NotSupportedError"),
            )),
        },
        BackendChoice::Auto => Ok(match webgpu_device().await {
            Ok((device, info)) => Backend {
                device,
                name: "webgpu",
                info,
            },
            Err(why) => cpu(Some(why)),
        }),
    }
}

/// Whether `navigator.gpu` gives an adapter in this window or worker.
#[wasm_bindgen(js_name = webgpuAvailable)]
pub async fn webgpu_available() -> bool {
    probe_webgpu().await.is_ok()
}
