//! Static constructors run once per instance, not at every call from JS.
//!
//! Some dependencies register values with constructors (`inventory`: cubecl's IR dialects,
//! part of the WebGPU backend). wasm-ld gathers them in a synthetic `__wasm_call_ctors`, and
//! when no code calls that function it treats the module as a "command": it wraps **every
//! exported function** (`<name>.command_export`) so that each call from JS runs all the
//! constructors first. wasm-bindgen's glue calls exports constantly (`__externref_table_alloc`
//! and `__externref_table_dealloc` for every JS object that crosses into Rust), so a `predict`
//! ran the constructors ~80 times and `Segmenter.create` thousands of times (each read of the
//! checkpoint from its `Uint8Array` makes a `subarray`): a profile of the page's module showed
//! this as the whole of the binding's overhead over sam-core (BENCHMARKS.md).
//!
//! Calling `__wasm_call_ctors` explicitly makes wasm-ld leave the exports alone (see the
//! `inventory` crate's documentation on WebAssembly); [`run_once`] calls it once, from the
//! module's start function and, for builds where that does not run (the `wasm-bindgen-test`
//! runner), from `Segmenter.create`.

/// Runs the module's static constructors the first time it is called; later calls do nothing.
pub fn run_once() {
    #[cfg(target_family = "wasm")]
    {
        static DONE: std::sync::Once = std::sync::Once::new();
        unsafe extern "C" {
            /// Synthesised by wasm-ld: calls every constructor of the module.
            fn __wasm_call_ctors();
        }
        // SAFETY: the linker's own function, run exactly once per instance (`Once`), before
        // anything reads what the constructors register.
        DONE.call_once(|| unsafe { __wasm_call_ctors() });
    }
}
