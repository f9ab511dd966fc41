"""Exports a random-weight checkpoint of the reference kit (mobile_sam, or vit_b as
scripts/bench_torch.py makes it) to ONNX for the ONNX Runtime Web peer benchmark
(scripts/bench-ort.sh): the image encoder (1x3x1024x1024 normalised input -> 1x256x64x64) and
the official SamOnnxModel (prompt encoder + mask decoder + upscaling to the image size, three
masks), as the official demo and transformers.js run them. Same weights as our benchmarks.

Usage: ~/.cache/sam-bench-venv/bin/python scripts/export_onnx.py [--model mobile_sam|vit_b] [--checkpoint PTH] OUT_DIR
(--checkpoint: another checkpoint of that model, e.g. one from scripts/sharpen_attention.py.)
Needs torch, segment_anything / mobile_sam and onnx (pip install onnx) in the bench venv.
"""
import argparse
import os
import sys

import torch


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobile_sam", choices=["mobile_sam", "vit_b"])
    ap.add_argument("--checkpoint", help="this checkpoint instead of the bench's seed-0 one")
    ap.add_argument("out")
    args = ap.parse_args()
    here = os.path.dirname(os.path.abspath(__file__))
    ref_dir = os.environ.get("SAM_REFERENCE_DIR") or os.path.join(here, "..", "..", "shared", "reference")
    sys.path.insert(0, ref_dir)
    sys.path.insert(0, here)
    import make_reference as mr
    from bench_torch import checkpoint_path

    pth = args.checkpoint or checkpoint_path(mr, args.model, ref_dir, os.path.expanduser("~/.cache/sam-bench"))
    model = mr.build_model(args.model, checkpoint=pth).eval()
    _, SamOnnxModel, _ = mr.sam_namespace(args.model)
    os.makedirs(args.out, exist_ok=True)
    with torch.no_grad():
        x = torch.randn(1, 3, 1024, 1024)
        torch.onnx.export(model.image_encoder, (x,), os.path.join(args.out, f"{args.model}_encoder.onnx"),
                          input_names=["image"], output_names=["embedding"], opset_version=17, dynamo=False)
        dec = SamOnnxModel(model, return_single_mask=False)
        inputs = (
            torch.randn(1, 256, 64, 64),
            torch.randint(0, 1024, (1, 2, 2)).float(),
            torch.randint(0, 4, (1, 2)).float(),
            torch.randn(1, 1, 256, 256),
            torch.tensor([1.0]),
            torch.tensor([480.0, 640.0]),
        )
        names = ["image_embeddings", "point_coords", "point_labels", "mask_input", "has_mask_input", "orig_im_size"]
        torch.onnx.export(dec, inputs, os.path.join(args.out, f"{args.model}_decoder.onnx"),
                          input_names=names, output_names=["masks", "iou_predictions", "low_res_masks"],
                          dynamic_axes={"point_coords": {1: "n"}, "point_labels": {1: "n"}},
                          opset_version=17, dynamo=False)
    print(f"wrote {args.out}/{args.model}_encoder.onnx and _decoder.onnx from {pth}")


if __name__ == "__main__":
    main()
