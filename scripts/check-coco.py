#!/usr/bin/env python3
"""Reads a COCO instances file with pycocotools and checks it (not part of CI; run under the
bench venv, ~/.cache/sam-bench-venv/bin/python, with `pip install pycocotools` if missing).

    check-coco.py FILE.json [--min-iou X]

Every annotation must decode (annToMask) to a mask of its image's size with its `area`
(pycocotools' own area for RLE; for polygons within the stated IoU of the source). When an
annotation carries "source_rle" (crates/sam-core/examples/coco_polygons.rs) or the file sits
beside a "<name>.masks.json" (the e2e export: {"<annotation id>": "<RLE counts>"}), the mask
pycocotools makes of the polygons is compared with that source: IoU >= --min-iou (default 0.99 for
tolerance 0, whose polygons cover the pixels exactly; pycocotools rasterizes at 1/5 pixel).
Prints one line per file and exits non-zero on a failure.
"""
import argparse
import json
import os
import sys

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--min-iou", type=float, default=0.99)
    args = ap.parse_args()
    coco = COCO(args.file)
    side = os.path.splitext(args.file)[0] + ".masks.json"
    sources = json.load(open(side)) if os.path.exists(side) else {}
    ious, failures, holes = [], [], 0
    for ann in coco.loadAnns(coco.getAnnIds()):
        img = coco.imgs[ann["image_id"]]
        m = coco.annToMask(ann)
        if m.shape != (img["height"], img["width"]):
            failures.append(f"annotation {ann['id']}: mask {m.shape} for image {img['height']}x{img['width']}")
            continue
        src = ann.get("source_rle")
        if src is None and str(ann["id"]) in sources:
            src = {"size": [img["height"], img["width"]], "counts": sources[str(ann["id"])]}
        if src is not None:
            s = mask_utils.decode({"size": src["size"], "counts": src["counts"].encode()})
            inter = np.logical_and(s, m).sum()
            union = np.logical_or(s, m).sum()
            iou = 1.0 if union == 0 else inter / union
            ious.append(iou)
            holes += int(ann.get("holes", 0))
            if iou < args.min_iou:
                failures.append(f"annotation {ann['id']}: IoU {iou:.4f} < {args.min_iou} (area {s.sum()})")
        elif isinstance(ann["segmentation"], dict) and int(m.sum()) != int(ann["area"]):
            failures.append(f"annotation {ann['id']}: RLE area {m.sum()} != {ann['area']}")
    cats = {c["name"] for c in coco.loadCats(coco.getCatIds())}
    summary = f"{args.file}: {len(coco.imgs)} images, {len(coco.anns)} annotations, categories {sorted(cats)}"
    if ious:
        summary += f"; vs source masks: min IoU {min(ious):.4f}, mean {np.mean(ious):.4f} over {len(ious)} ({holes} holes)"
    print(summary)
    for f in failures[:20]:
        print("FAIL", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
