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

/// The JS `name` of a sam-core error: one per kind (an exhaustive match, so a new kind gets a
/// name), so that callers can branch on `err.name` instead of the message's wording. A cancelled
/// run is an `AbortError`, like a fetch aborted through an `AbortSignal`; a backend failure that
/// reads as an allocation failure is an `OutOfMemoryError`.
pub fn error_name(e: &SamError) -> &'static str {
    match e {
        SamError::Cancelled => "AbortError",
        SamError::Checkpoint(_) => "CheckpointError",
        SamError::Npy(_) => "NpyError",
        SamError::Rle(_) => "RleError",
        SamError::Sa1b(_) => "Sa1bError",
        SamError::Polygon(_) => "PolygonError",
        SamError::Image(_) => "ImageError",
        SamError::ModelType(_) => "ModelTypeError",
        SamError::Prompt(_) => "PromptError",
        SamError::Input(_) => "InputError",
        SamError::Backend(m) if looks_out_of_memory(m) => "OutOfMemoryError",
        SamError::Backend(_) => "BackendError",
    }
}

/// The JS error for a sam-core error, named by [`error_name`], with sam-core's message (which
/// names the file problem, the bad prompt field or the backend failure).
pub fn sam_error(e: SamError) -> JsValue {
    let name = error_name(&e);
    match e {
        SamError::Cancelled => js_error("cancelled", Some(name)),
        SamError::Checkpoint(e) => js_error(&format!("checkpoint: {e}"), Some(name)),
        SamError::Backend(_) if name == "OutOfMemoryError" => js_error(
            &format!(
                "out of memory: {e} (try a smaller model such as mobile_sam, or the CPU backend)"
            ),
            Some(name),
        ),
        other => js_error(&other.to_string(), Some(name)),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_its_own_readable_name() {
        let kinds = [
            SamError::Cancelled,
            SamError::Npy(sam_core::io::npy::NpyError::BadMagic),
            SamError::ModelType("m".into()),
            SamError::Prompt("p".into()),
            SamError::Input("i".into()),
            SamError::Backend("device lost".into()),
            SamError::Backend("can't allocate buffer".into()),
        ];
        let names: Vec<&str> = kinds.iter().map(error_name).collect();
        assert_eq!(
            names,
            [
                "AbortError",
                "NpyError",
                "ModelTypeError",
                "PromptError",
                "InputError",
                "BackendError",
                "OutOfMemoryError"
            ]
        );
    }
}
