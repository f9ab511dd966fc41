"""Writes the fuzz targets' seed inputs (seeds/<target>/). Needs torch for the .pth seeds
(any 2.x); the others use the standard library. Usage: python gen_seeds.py"""
import io, json, os, struct, zipfile

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# Keys model detection looks at, with small shapes (detection must reject or accept them
# without panicking), and a few dtypes/views the reader handles.
def small_state(torch):
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    base = r(4, 6)
    return {
        "image_encoder.patch_embed.proj.weight": r(8, 3, 2, 2),
        "image_encoder.patch_embed.proj.bias": r(8),
        "image_encoder.pos_embed": r(1, 4, 4, 8),
        "image_encoder.blocks.0.mlp.lin1.weight": r(32, 8),
        "image_encoder.neck.0.weight": r(4, 8, 1, 1),
        "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix": r(2, 2),
        "mask_decoder.iou_token.weight": r(1, 4),
        "half": r(3).half(),
        "bf16": r(3).bfloat16(),
        "f64": r(2).double(),
        "idx": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "flag": torch.tensor([True, False]),
        "transposed": base.t(),
        "view": base[1:3, 2:5],
        "shared": base,
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 3),
    }


def pth_seeds():
    import torch

    def save(obj):
        buf = io.BytesIO()
        torch.save(obj, buf)
        return buf.getvalue()

    state = small_state(torch)
    put("checkpoint_pth", "state_dict.pth", save(state))
    put("checkpoint_pth", "nested_model_key.pth", save({"model": {"a.weight": torch.ones(2, 2)}}))
    put("checkpoint_pth", "tiny_keys_only.pth", save({k: v for k, v in list(state.items())[:3]}))
    # The same archive with DEFLATE entries.
    raw = save(state)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(raw)) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, zin.read(info.filename))
    put("checkpoint_pth", "deflated.pth", out.getvalue())


def safetensors(tensors, metadata=None):
    header, data = {}, b""
    for name, (dtype, shape, payload) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(payload)]}
        data += payload
    if metadata:
        header["__metadata__"] = metadata
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(*v):
    return struct.pack(f"<{len(v)}f", *v)


def st_seeds():
    put("checkpoint_safetensors", "small.safetensors", safetensors({
        "image_encoder.patch_embed.proj.weight": ("F32", [2, 3, 1, 1], f32(*range(6))),
        "image_encoder.pos_embed": ("F32", [1, 1, 1, 2], f32(0.5, -0.5)),
        "mask_decoder.iou_token.weight": ("F16", [1, 2], struct.pack("<2e", 1.0, 2.0)),
        "idx": ("I64", [2], struct.pack("<2q", 3, 4)),
        "b": ("BF16", [1], b"\x80\x3f"),
        "d": ("F64", [1], struct.pack("<d", 2.0)),
        "s": ("F32", [], f32(7.0)),
        "e": ("F32", [0, 4], b""),
    }, {"format": "pt"}))
    put("checkpoint_safetensors", "empty.safetensors", safetensors({}))


def npy(descr, shape, payload, fortran=False, version=1):
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (
        descr, fortran, "(" + "".join(f"{d}, " if len(shape) == 1 else f"{d}, " for d in shape).rstrip(", ") + ("," if len(shape) == 1 else "") + ")")
    pre = 10 if version == 1 else 12
    pad = -(pre + len(header) + 1) % 64
    header = header + " " * pad + "\n"
    if version == 1:
        head = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header))
    else:
        head = bytes([0x93]) + b"NUMPY" + bytes([version, 0]) + struct.pack("<I", len(header))
    return head + header.encode("latin1") + payload


def npy_seeds():
    put("npy", "f4_2x3.npy", npy("<f4", [2, 3], f32(*range(6))))
    put("npy", "f2_3.npy", npy("<f2", [3], struct.pack("<3e", 1, 2, 3)))
    put("npy", "f8_2x1.npy", npy("<f8", [2, 1], struct.pack("<2d", 1, 2)))
    put("npy", "f4_scalar.npy", npy("<f4", [], f32(3.0)))
    put("npy", "f4_v2.npy", npy("<f4", [2], f32(1, 2), version=2))
    put("npy", "f4_v3.npy", npy("<f4", [2], f32(1, 2), version=3))
    put("npy", "f4_fortran.npy", npy("<f4", [1, 2], f32(1, 2), fortran=True))
    put("npy", "f4_empty.npy", npy("<f4", [0, 3], b""))
    put("npy", "be_f4.npy", npy(">f4", [1], struct.pack(">f", 1.0)))
    # A header of the embedding's shape without the 4 MiB of data (the reader must refuse it).
    put("npy", "embedding_truncated.npy", npy("<f4", [1, 256, 64, 64], f32(0, 1)))


def rle_seeds():
    def hdr(h, w, s):
        return struct.pack("<II", h, w) + s.encode()
    put("rle_string", "empty_0x0", hdr(0, 0, ""))
    put("rle_string", "2x3", hdr(2, 3, "12"))
    put("rle_string", "4x4_runs", hdr(4, 4, "1112"))
    put("rle_string", "multi_char", hdr(40, 40, "R`0?o1Zd0"))
    put("rle_string", "big_size", hdr(40000, 40000, "0"))
    put("rle_json", "list.json", '{"size": [3, 4], "counts": [2, 3, 1, 6]}')
    put("rle_json", "string.json", '{"size": [4, 4], "counts": "1112"}')
    put("rle_json", "bomb.json", '{"size": [40000, 40000], "counts": [1600000000]}')
    put("rle_json", "empty.json", '{"size": [0, 5], "counts": [0]}')


def sa1b_seeds():
    ann = {"id": 1, "segmentation": {"size": [3, 4], "counts": [2, 3, 1, 6]}, "bbox": [0, 0, 2, 3],
           "area": 4, "predicted_iou": 0.9, "stability_score": 0.95, "crop_box": [0, 0, 4, 3],
           "point_coords": [[1.5, 2.0]]}
    coco = dict(ann, id=2, segmentation={"size": [4, 4], "counts": "1112"}, stability_score=None,
                predicted_iou=None)
    put("sa1b", "file.json", json.dumps({"image": {"image_id": 7, "width": 4, "height": 3, "file_name": "a.jpg"},
                                         "annotations": [ann]}))
    put("sa1b", "list.json", json.dumps([ann, coco]))
    put("sa1b", "binary_mask.json", json.dumps([dict(ann, segmentation={
        "shape": [3, 4], "sum": 4, "sha256": "00" * 32})]))
    put("sa1b", "empty_list.json", "[]")


if __name__ == "__main__":
    st_seeds(); npy_seeds(); rle_seeds(); sa1b_seeds(); pth_seeds()
