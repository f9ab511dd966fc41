#!/usr/bin/env python3
"""Times the official PyTorch SAM on CPU, for the side-by-side figures of BENCHMARKS.md.

The same steps as `cargo run --release -p sam-core --example bench`: checkpoint load,
`SamPredictor.set_image` and one click (`SamPredictor.predict`, three masks, boolean masks at
the image's size) on a 1024x768 image, optionally "segment everything" with the official
defaults (32x32 points). Prints one JSON object (milliseconds, median / min / max).

Checkpoints: `mobile_sam` uses the reference kit's `mobile_sam_seed0.pth`; `vit_b|vit_l|vit_h`
are made once with the kit's own `make_reference.py` functions (official builder, its
deterministic random weights, `torch.save(state_dict)`) into `--cache` and reused, so that the
Rust bench can load the very same file (`--checkpoint`).

    python scripts/bench_torch.py --model vit_b --threads 2 --runs 3 [--amg] [--device cuda]

`--device cuda` times the same steps on a GPU (each set_image waits for the GPU; a click's
masks come back to the host as numpy arrays), for the WebGPU comparison of BENCHMARKS.md. If
the kit's `mobile_sam`/`tiny` file is not at hand, it is made like the vit_* ones.

Needs CPU torch, segment-anything, mobilesam-mirror (scripts/bench.sh installs them in a venv).
"""

import argparse
import json
import os
import resource
import statistics
import sys
import time


def stats(v):
    return dict(median_ms=round(statistics.median(v) * 1e3, 2), first_ms=round(v[0] * 1e3, 2),
                min_ms=round(min(v) * 1e3, 2),
                max_ms=round(max(v) * 1e3, 2), runs=len(v))


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def checkpoint_path(mr, config, ref_dir, cache):
    if config in ("mobile_sam", "tiny") and os.path.exists(os.path.join(ref_dir, f"{config}_seed0.pth")):
        return os.path.join(ref_dir, f"{config}_seed0.pth")
    path = os.path.join(cache, f"{config}_seed0.pth")
    if not os.path.exists(path):
        import torch
        os.makedirs(cache, exist_ok=True)
        model = mr.build_model(config)
        mr.randomize_(model, 0)
        torch.save(model.state_dict(), path + ".part")
        os.replace(path + ".part", path)
        print(f"made {path} with make_reference.py's random weights", file=sys.stderr)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobile_sam", choices=["tiny", "mobile_sam", "vit_b", "vit_l", "vit_h"])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda (timings then wait for the GPU)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clicks", type=int, default=10)
    ap.add_argument("--amg", action="store_true", help="also time SamAutomaticMaskGenerator (32x32 points)")
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--height", type=int, default=768)
    ap.add_argument("--cache", default=os.path.expanduser("~/.cache/sam-bench"))
    args = ap.parse_args()

    ref_dir = os.environ.get("SAM_REFERENCE_DIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "reference")
    sys.path.insert(0, ref_dir)
    import make_reference as mr  # the kit's generator: builders, random init, synthetic images
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    pth = checkpoint_path(mr, args.model, ref_dir, args.cache)
    out = dict(impl="official-pytorch", model=args.model, checkpoint=os.path.abspath(pth),
               checkpoint_mib=round(os.path.getsize(pth) / 2**20, 1), threads=torch.get_num_threads(),
               torch=torch.__version__, image=[args.width, args.height])

    rss0 = peak_rss_mib()
    t = time.perf_counter()
    model = mr.build_model(args.model, checkpoint=pth)
    model.to(args.device)
    sync = torch.cuda.synchronize if args.device.startswith("cuda") else (lambda: None)
    sync()
    out["load"] = stats([time.perf_counter() - t])
    out["device"] = args.device
    if args.device.startswith("cuda"):
        out["gpu"] = torch.cuda.get_device_name()
    out["peak_rss_mib_after_load"] = round(peak_rss_mib(), 1)
    out["peak_rss_mib_before_load"] = round(rss0, 1)
    ns, _, _ = mr.sam_namespace(args.model)

    image = mr.synth_image(args.height, args.width, 11)
    predictor = ns.SamPredictor(model)
    with torch.no_grad():
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            predictor.set_image(image)
            sync()
            times.append(time.perf_counter() - t)
        out["set_image"] = stats(times)
        # One click: three boolean masks at the image's size (what a person sees).
        times = []
        for i in range(args.clicks):
            t = time.perf_counter()
            masks, scores, low = predictor.predict(point_coords=np.array([[500.0 + i, 400.0]]),
                                                   point_labels=np.array([1]), multimask_output=True)
            times.append(time.perf_counter() - t)
        assert masks.shape == (3, args.height, args.width)
        out["click_full_res"] = stats(times)
        out["peak_rss_mib"] = round(peak_rss_mib(), 1)
        if args.amg:
            gen = ns.SamAutomaticMaskGenerator(model, points_per_side=32)
            t = time.perf_counter()
            try:
                anns = gen.generate(image)
            except Exception as e:  # the official code raises when no mask survives
                anns = []
                out["amg_note"] = f"official generate() raised {type(e).__name__} (no mask kept)"
            out["amg_32x32"] = stats([time.perf_counter() - t])
            out["amg_masks"] = len(anns)
            out["peak_rss_mib"] = round(peak_rss_mib(), 1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
