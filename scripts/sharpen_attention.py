"""Makes a checkpoint with sharp image-encoder attention from a random-weight ViT (vit_b/l/h) one,
for the benchmarks (BENCHMARKS.md, issue 17 session 10): the q and k rows (and biases) of every
`image_encoder.blocks.*.attn.qkv` are multiplied by SCALE (the ViT's qkv is [q | k | v]; TinyViT's
is split per head, so MobileSAM is refused), so every attention logit is SCALE^2 times
the original's. The kit's random weights give mild attention; trained checkpoints attend sharply,
and sharp attention is where subnormal probabilities used to slow the softmax's product down.
Same format as the input (torch.save of the state dict).

Usage: ~/.cache/sam-bench-venv/bin/python scripts/sharpen_attention.py SRC.pth DST.pth SCALE
Then: scripts/export_onnx.py --model vit_b --checkpoint DST.pth OUT_DIR (ORT-web, with
SAM_ORT_DIR pointing at a copy of ~/.cache/sam-ort-bench whose models/ is OUT_DIR), and
SAM_BENCH_CHECKPOINT=DST.pth scripts/bench-threads.sh (ours).
"""
import sys

import torch


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    src, dst, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    state = torch.load(src, map_location="cpu")
    scaled = 0
    for key, value in state.items():
        if key.startswith("image_encoder.blocks.") and (key.endswith("attn.qkv.weight") or key.endswith("attn.qkv.bias")):
            dim = value.shape[0] // 3
            value[: 2 * dim] *= scale
            scaled += 1
    if scaled == 0:
        sys.exit(f"{src}: no image_encoder.blocks.*.attn.qkv tensors (not a ViT checkpoint)")
    torch.save(state, dst)
    print(f"{dst}: {scaled} qkv tensors, q and k scaled by {scale}")


if __name__ == "__main__":
    main()
