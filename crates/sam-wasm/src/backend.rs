//! Which Burn device runs the model: WebGPU (burn's wgpu runtime) when the browser gives a
//! hardware adapter, else burn's CPU backend (`flex`, compiled with wasm SIMD when enabled).
//!
//! `"auto"` never picks a software adapter (SwiftShader, llvmpipe, lavapipe, or one that reports
//! `isFallbackAdapter`): those emulate the GPU on the CPU and are far slower than the CPU
//! backend (a tiny model: ~31 s an embedding on SwiftShader against 0.5 s). `"webgpu"` still
//! uses them. The decision is [`AdapterDescription::software_reason`], a pure function.
//!
//! burn's wgpu runtime can be initialised once per thread (worker); the device is kept and
//! shared by every [`crate::Segmenter`] of that thread.

use std::cell::RefCell;

use burn::tensor::{Device, FloatDType};
use js_sys::{Promise, Reflect};
use sam_core::Precision;
use sam_core::precision::PrecisionError;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::error::js_error;

/// What the caller asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendChoice {
    /// WebGPU if a hardware adapter is available, else the CPU.
    Auto,
    /// WebGPU (any adapter, software ones included) or an error.
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

/// What a WebGPU adapter says about itself: `GPUAdapter.info` (`vendor`, `architecture`,
/// `device`, `description`), `isFallbackAdapter` and whether it has `shader-f16`. Strings may
/// be empty (browsers hide them unless asked).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterDescription {
    pub vendor: String,
    pub architecture: String,
    pub device: String,
    pub description: String,
    /// `GPUAdapterInfo.isFallbackAdapter` (or the older `GPUAdapter.isFallbackAdapter`).
    pub is_fallback_adapter: bool,
    pub shader_f16: bool,
}

/// Software implementations of WebGPU / Vulkan, as they name themselves (lower case), and how
/// to write their names.
const SOFTWARE_ADAPTERS: &[(&str, &str)] = &[
    ("swiftshader", "SwiftShader"),
    ("llvmpipe", "llvmpipe"),
    ("lavapipe", "lavapipe"),
];

impl AdapterDescription {
    /// Why this adapter emulates a GPU on the CPU (`"SwiftShader, a software fallback"`), or
    /// `None` for a hardware adapter. Looks for SwiftShader, llvmpipe or lavapipe in
    /// `vendor`, `architecture`, `device` and `description` (any case), then at
    /// `isFallbackAdapter`.
    pub fn software_reason(&self) -> Option<String> {
        let fields = [
            &self.vendor,
            &self.architecture,
            &self.device,
            &self.description,
        ];
        for (needle, name) in SOFTWARE_ADAPTERS {
            if fields.iter().any(|f| f.to_lowercase().contains(needle)) {
                return Some(format!("{name}, a software fallback"));
            }
        }
        self.is_fallback_adapter
            .then(|| "a fallback adapter (isFallbackAdapter), likely software".to_string())
    }

    /// The adapter's non-empty fields, e.g. `"google, swiftshader, shader-f16"`.
    pub fn summary(&self) -> String {
        let mut parts: Vec<&str> = [
            &self.vendor,
            &self.architecture,
            &self.device,
            &self.description,
        ]
        .into_iter()
        .map(|s| s.as_str())
        .filter(|s| !s.is_empty())
        .collect();
        if self.is_fallback_adapter {
            parts.push("fallback");
        }
        if self.shader_f16 {
            parts.push("shader-f16");
        }
        if parts.is_empty() {
            "an unnamed adapter".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Why a backend runs, for `Segmenter.backendReason`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BackendReason {
    /// The caller asked for this backend (`"cpu"` or `"webgpu"`).
    Requested,
    /// `"auto"` found a hardware WebGPU adapter.
    HardwareAdapter,
    /// `"auto"` found no WebGPU adapter (no `navigator.gpu`, or no adapter given).
    NoWebGpu(String),
    /// `"auto"` found a hardware adapter, but burn's wgpu device did not start on it.
    WebGpuFailed(String),
    /// `"auto"` skipped a software adapter (the reason from
    /// [`AdapterDescription::software_reason`]).
    SoftwareAdapter(String),
}

impl BackendReason {
    /// A short sentence for a badge, without the backend's name, e.g. `"the WebGPU adapter is
    /// SwiftShader, a software fallback"`; empty for [`BackendReason::Requested`].
    pub fn short(&self) -> String {
        match self {
            Self::Requested => String::new(),
            Self::HardwareAdapter => "a hardware WebGPU adapter".into(),
            Self::NoWebGpu(_) => "no WebGPU adapter".into(),
            Self::WebGpuFailed(_) => "WebGPU did not start".into(),
            Self::SoftwareAdapter(why) => format!("the WebGPU adapter is {why}"),
        }
    }
}

/// The chosen device, its name for JS (`"webgpu"` / `"cpu"`), why, and a description.
#[derive(Clone, Debug)]
pub struct Backend {
    pub device: Device,
    pub name: &'static str,
    pub reason: BackendReason,
    /// One sentence: the backend, the adapter, and why it runs.
    pub info: String,
}

thread_local! {
    static WEBGPU: RefCell<Option<(Device, AdapterDescription)>> = const { RefCell::new(None) };
}

#[cfg(feature = "webgpu")]
thread_local! {
    /// The wgpu handles of this thread's device (instance, adapter, device, queue), for what
    /// draws with it beside burn (`crate::preview`).
    static SETUP: RefCell<Option<sam_core::preview::WgpuSetup>> = const { RefCell::new(None) };
}

/// The wgpu handles of this thread's WebGPU device, once it is started.
#[cfg(feature = "webgpu")]
pub fn wgpu_setup() -> Option<sam_core::preview::WgpuSetup> {
    SETUP.with(|s| s.borrow().clone())
}

/// `navigator.gpu` of this window or worker, if any.
fn navigator_gpu() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    let gpu = Reflect::get(&navigator, &"gpu".into()).ok()?;
    (!gpu.is_undefined() && !gpu.is_null()).then_some(gpu)
}

/// Asks `navigator.gpu` for an adapter; `Ok(its description)` when one is given, `Err(why not)`.
pub async fn probe_webgpu() -> Result<AdapterDescription, String> {
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

/// Reads a `GPUAdapter`'s `info`, `isFallbackAdapter` and `features`.
fn describe_adapter(adapter: &JsValue) -> AdapterDescription {
    let text = |obj: &JsValue, name: &str| {
        Reflect::get(obj, &name.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let flag = |obj: &JsValue, name: &str| {
        Reflect::get(obj, &name.into())
            .ok()
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    };
    let mut desc = AdapterDescription::default();
    if let Ok(info) = Reflect::get(adapter, &"info".into())
        && info.is_object()
    {
        desc.vendor = text(&info, "vendor");
        desc.architecture = text(&info, "architecture");
        desc.device = text(&info, "device");
        desc.description = text(&info, "description");
        // Chrome 136+ moved the flag to GPUAdapterInfo.
        desc.is_fallback_adapter = flag(&info, "isFallbackAdapter");
    }
    desc.is_fallback_adapter |= flag(adapter, "isFallbackAdapter");
    desc.shader_f16 = Reflect::get(adapter, &"features".into())
        .ok()
        .and_then(|f| {
            let has = Reflect::get(&f, &"has".into()).ok()?;
            let has = has.dyn_into::<js_sys::Function>().ok()?;
            has.call1(&f, &"shader-f16".into()).ok()
        })
        .and_then(|v| v.as_bool())
        .unwrap_or(false);
    desc
}

/// The adapter of this thread: the one of the wgpu device when it is started, else a probe.
async fn adapter() -> Result<AdapterDescription, String> {
    match WEBGPU.with(|w| w.borrow().as_ref().map(|(_, a)| a.clone())) {
        Some(found) => Ok(found),
        None => probe_webgpu().await,
    }
}

/// Without the `webgpu` feature (the threaded module): no wgpu device, so `"auto"` takes the CPU.
#[cfg(not(feature = "webgpu"))]
async fn webgpu_device(_adapter: AdapterDescription) -> Result<Device, String> {
    Err(
        "this module is CPU-only (the threaded build); WebGPU runs in the single-threaded one"
            .into(),
    )
}

/// The wgpu device of this thread, initialised on first use.
#[cfg(feature = "webgpu")]
async fn webgpu_device(adapter: AdapterDescription) -> Result<Device, String> {
    if let Some((device, _)) = WEBGPU.with(|w| w.borrow().clone()) {
        return Ok(device);
    }
    let (device, setup) = Device::wgpu_options()
        .init_with_setup_async()
        .await
        .map_err(|e| format!("could not start WebGPU: {e}"))?;
    // Another call may have finished first: keep the first device.
    SETUP.with(|s| {
        s.borrow_mut().get_or_insert(setup);
    });
    Ok(WEBGPU.with(|w| w.borrow_mut().get_or_insert((device, adapter)).0.clone()))
}

/// Picks the backend for `choice`. `Auto` takes a hardware adapter and otherwise falls back
/// to the CPU, saying why in `reason` and `info`; `WebGpu` takes any adapter, and without
/// one is an error naming the reason.
pub async fn select(choice: BackendChoice) -> Result<Backend, JsValue> {
    let cpu = |reason: BackendReason, adapter: Option<&AdapterDescription>| {
        let info = match (&reason, adapter) {
            (BackendReason::NoWebGpu(why) | BackendReason::WebGpuFailed(why), _) => {
                format!("CPU (WebAssembly); WebGPU not used: {why}")
            }
            (BackendReason::SoftwareAdapter(why), Some(a)) => format!(
                "CPU (WebAssembly); WebGPU not used: the adapter ({}) is {why}, slower than the \
                 CPU backend; backend \"webgpu\" forces it",
                a.summary()
            ),
            _ => "CPU (WebAssembly), as asked".into(),
        };
        Backend {
            device: Device::flex(),
            name: "cpu",
            reason,
            info,
        }
    };
    match choice {
        BackendChoice::Cpu => Ok(cpu(BackendReason::Requested, None)),
        BackendChoice::WebGpu => {
            let started = match adapter().await {
                Ok(a) => webgpu_device(a.clone()).await.map(|d| (d, a)),
                Err(why) => Err(why),
            };
            match started {
                Ok((device, adapter)) => {
                    let software = adapter
                        .software_reason()
                        .map(|why| format!(" ({why}, used because \"webgpu\" was asked)"))
                        .unwrap_or_default();
                    Ok(Backend {
                        device,
                        name: "webgpu",
                        reason: BackendReason::Requested,
                        info: format!("WebGPU: {}{software}", adapter.summary()),
                    })
                }
                Err(why) => Err(js_error(
                    &format!("WebGPU is not available: {why}; use backend \"cpu\" or \"auto\""),
                    Some("NotSupportedError"),
                )),
            }
        }
        BackendChoice::Auto => {
            let adapter = match adapter().await {
                Ok(a) => a,
                Err(why) => return Ok(cpu(BackendReason::NoWebGpu(why), None)),
            };
            if let Some(why) = adapter.software_reason() {
                return Ok(cpu(BackendReason::SoftwareAdapter(why), Some(&adapter)));
            }
            Ok(match webgpu_device(adapter.clone()).await {
                Ok(device) => Backend {
                    device,
                    name: "webgpu",
                    reason: BackendReason::HardwareAdapter,
                    info: format!("WebGPU: {}", adapter.summary()),
                },
                Err(why) => cpu(BackendReason::WebGpuFailed(why), None),
            })
        }
    }
}

/// Makes the backend's device compute in `precision` (before the model is loaded on it); the
/// type chosen is the device's from then on ([`precision_name`]). The device of a worker is shared by its models and burn fixes its
/// float type at the first tensor: `"auto"` then keeps the type already fixed, and an explicit
/// `"f32"` or `"f16"` that differs from it is an `InvalidStateError`. `"f16"` without an adapter
/// that has `shader-f16` (the CPU backend, SwiftShader) is a `NotSupportedError`.
pub fn set_precision(backend: &mut Backend, precision: Precision) -> Result<(), JsValue> {
    match sam_core::precision::set_precision(&mut backend.device, precision) {
        Ok(_) => {}
        Err(PrecisionError::AlreadyFixed { .. }) if precision == Precision::Auto => {}
        Err(PrecisionError::F16Unavailable) => {
            return Err(js_error(
                &format!(
                    "precision \"f16\" needs WebGPU on an adapter with shader-f16, and the model \
                     would run on {}; use precision \"auto\" (f16 where the adapter has it, f32 \
                     elsewhere) or \"f32\"",
                    backend.info
                ),
                Some("NotSupportedError"),
            ));
        }
        Err(PrecisionError::AlreadyFixed { current }) => {
            return Err(js_error(
                &format!(
                    "this worker's WebGPU device already computes in {} (fixed by the first model \
                     loaded on it): load with that precision, or create another client for the \
                     other one",
                    dtype_name(current)
                ),
                Some("InvalidStateError"),
            ));
        }
        Err(e) => return Err(js_error(&e.to_string(), Some("BackendError"))),
    }
    if precision_name(&backend.device) == "f16" {
        backend.info.push_str(", f16");
    }
    Ok(())
}

/// `"f16"` when `device` computes in f16, else `"f32"` (the only other type a device is set to).
pub fn precision_name(device: &Device) -> &'static str {
    dtype_name(sam_core::precision::current(device))
}

/// As [`precision_name`], for a float type.
fn dtype_name(dtype: FloatDType) -> &'static str {
    if dtype == FloatDType::F16 {
        "f16"
    } else {
        "f32"
    }
}

/// Whether `navigator.gpu` gives an adapter (of any kind) in this window or worker.
#[wasm_bindgen(js_name = webgpuAvailable)]
pub async fn webgpu_available() -> bool {
    probe_webgpu().await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(vendor: &str, architecture: &str, description: &str) -> AdapterDescription {
        AdapterDescription {
            vendor: vendor.into(),
            architecture: architecture.into(),
            description: description.into(),
            ..Default::default()
        }
    }

    #[test]
    fn swiftshader_in_headless_chromium_is_software() {
        // What Chromium 156 headless reports with --enable-unsafe-webgpu.
        let a = AdapterDescription {
            is_fallback_adapter: true,
            ..adapter("google", "swiftshader", "")
        };
        let why = a.software_reason().expect("SwiftShader is software");
        assert!(why.starts_with("SwiftShader"), "{why}");
        // Named in any field, any case, without the flag.
        let a = adapter("", "", "Google SwiftShader Device (Subzero)");
        assert!(a.software_reason().unwrap().starts_with("SwiftShader"));
    }

    #[test]
    fn mesa_cpu_drivers_are_software() {
        let llvmpipe = adapter("mesa", "", "llvmpipe (LLVM 15.0.6, 256 bits)");
        assert!(llvmpipe.software_reason().unwrap().starts_with("llvmpipe"));
        let lavapipe = AdapterDescription {
            device: "LavaPipe".into(),
            ..adapter("mesa", "", "")
        };
        assert!(lavapipe.software_reason().unwrap().starts_with("lavapipe"));
    }

    #[test]
    fn a_fallback_flag_alone_is_enough() {
        let a = AdapterDescription {
            is_fallback_adapter: true,
            ..adapter("", "", "")
        };
        assert!(a.software_reason().unwrap().contains("isFallbackAdapter"));
    }

    #[test]
    fn hardware_adapters_are_not_software() {
        for a in [
            adapter("nvidia", "ampere", ""),
            adapter("apple", "metal-3", "Apple M2"),
            adapter("intel", "gen-12lp", "Intel(R) Iris(R) Xe Graphics"),
            adapter("amd", "rdna-3", ""),
            adapter("qualcomm", "adreno-7xx", ""),
            // Browsers may hide every field.
            adapter("", "", ""),
        ] {
            assert_eq!(a.software_reason(), None, "{a:?}");
        }
    }

    #[test]
    fn summary_names_the_adapter() {
        let a = AdapterDescription {
            is_fallback_adapter: true,
            shader_f16: true,
            ..adapter("google", "swiftshader", "")
        };
        assert_eq!(a.summary(), "google, swiftshader, fallback, shader-f16");
        assert_eq!(adapter("", "", "").summary(), "an unnamed adapter");
    }

    #[test]
    fn short_reasons() {
        let why = adapter("google", "swiftshader", "")
            .software_reason()
            .unwrap();
        assert_eq!(
            BackendReason::SoftwareAdapter(why).short(),
            "the WebGPU adapter is SwiftShader, a software fallback"
        );
        assert_eq!(BackendReason::Requested.short(), "");
    }
}
