//! Writes a random-weight checkpoint in the official `.pth` format (see `sam_core::fixture`).
//!
//! ```text
//! cargo run -p sam-core --example write_checkpoint -- <vit_h|vit_l|vit_b|mobile_sam> <seed> <out.pth>
//! ```
//!
//! The archive inside is named after the output file (as `torch.save` does). ViT-H takes
//! 2.4 GB on disk; the tensors are written one at a time.

use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use sam_core::ModelType;
use sam_core::fixture::write_checkpoint;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, seed, out] = args.as_slice() else {
        eprintln!("usage: write_checkpoint <vit_h|vit_l|vit_b|mobile_sam> <seed> <out.pth>");
        return ExitCode::from(2);
    };
    let run = || -> Result<(), String> {
        let model: ModelType = model.parse().map_err(|e| format!("{e}"))?;
        let seed: u64 = seed.parse().map_err(|e| format!("seed {seed:?}: {e}"))?;
        let path = Path::new(out);
        let archive = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("archive");
        let file = std::fs::File::create(path).map_err(|e| format!("{out}: {e}"))?;
        write_checkpoint(BufWriter::new(file), archive, &model, seed)
            .map_err(|e| format!("{out}: {e}"))?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("write_checkpoint: {e}");
            ExitCode::FAILURE
        }
    }
}
