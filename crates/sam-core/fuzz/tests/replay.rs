//! Replays every committed fuzz input (`seeds/<target>/` and `regressions/<target>/`) through
//! the harness function of its target, on stable: the fuzz targets' CI check. A harness panics
//! on a reader panic or a broken invariant, which fails this test naming the file.

use std::path::{Path, PathBuf};

type Harness = fn(&[u8]);

const TARGETS: [(&str, Harness); 6] = [
    ("checkpoint_pth", sam_core_fuzz::checkpoint_pth),
    (
        "checkpoint_safetensors",
        sam_core_fuzz::checkpoint_safetensors,
    ),
    ("npy", sam_core_fuzz::npy),
    ("rle_string", sam_core_fuzz::rle_string),
    ("rle_json", sam_core_fuzz::rle_json),
    ("sa1b", sam_core_fuzz::sa1b),
];

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("readable directory entry").path())
        .filter(|p| p.is_file())
        .collect();
    out.sort();
    out
}

#[test]
fn replay_seeds_and_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (target, harness) in TARGETS {
        let seeds = files(&root.join("seeds").join(target));
        assert!(!seeds.is_empty(), "no seeds committed for {target}");
        let regressions = files(&root.join("regressions").join(target));
        for path in seeds.iter().chain(&regressions) {
            let data = std::fs::read(path).expect("readable input");
            let outcome = std::panic::catch_unwind(|| harness(&data));
            assert!(outcome.is_ok(), "{target}: {} panicked", path.display());
        }
    }
}
