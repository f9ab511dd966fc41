//! sam-core's typed errors as JS `Error`s with readable messages.

use sam_core::SamError;
use wasm_bindgen::prelude::*;

/// A JS `Error` with `message` (and `name`, when given, e.g. `AbortError`).
pub fn js_error(message: &str, name: Option<&str>) -> JsValue {
    let err = js_sys::Error::new(message);
    if let Some(name) = name {
        err.set_name(name);
    }
    err.into()
}

/// The JS error for a sam-core error. A cancelled run is an `AbortError` named "cancelled",
/// like a fetch aborted through an `AbortSignal`; the other kinds keep sam-core's messages
/// (which name the file problem, the bad prompt field or the backend failure), named after
/// their kind where it has one (`CheckpointError`, `PromptError`, `RleError`, `Sa1bError`,
/// `ImageError`, `PolygonError`, `OutOfMemoryError`).
pub fn sam_error(e: SamError) -> JsValue {
    match e {
        SamError::Cancelled => js_error("cancelled", Some("AbortError")),
        SamError::Checkpoint(e) => js_error(&format!("checkpoint: {e}"), Some("CheckpointError")),
        SamError::Prompt(_) => js_error(&e.to_string(), Some("PromptError")),
        SamError::Rle(_) => js_error(&e.to_string(), Some("RleError")),
        SamError::Sa1b(_) => js_error(&e.to_string(), Some("Sa1bError")),
        SamError::Polygon(_) => js_error(&e.to_string(), Some("PolygonError")),
        SamError::Image(_) => js_error(&e.to_string(), Some("ImageError")),
        SamError::Backend(ref m) if looks_out_of_memory(m) => js_error(
            &format!(
                "out of memory: {e} (try a smaller model such as mobile_sam, or the CPU backend)"
            ),
            Some("OutOfMemoryError"),
        ),
        other => js_error(&other.to_string(), None),
    }
}

fn looks_out_of_memory(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("out of memory") || m.contains("can't allocate") || m.contains("allocation")
}

/// A `TypeError` for an argument of the wrong shape or type.
pub fn type_error(message: &str) -> JsValue {
    js_sys::TypeError::new(message).into()
}
