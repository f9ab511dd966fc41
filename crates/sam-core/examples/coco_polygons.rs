//! Writes a COCO instances file whose annotations are the polygons (`sam_core::io::polygon`) of the
//! masks of SA-1B / AMG `coco_rle` files, each with its source RLE beside it (`"source_rle"`), for
//! `scripts/check-coco.py` to compare with what pycocotools makes of the polygons.
//!
//! `cargo run -p sam-core --example coco_polygons -- OUT.json TOLERANCE FILE.json...`

use sam_core::io::polygon::{PolygonOptions, mask_to_polygons};
use sam_core::io::sa1b;
use serde_json::json;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [out, tolerance, files @ ..] = args.as_slice() else {
        return Err("usage: coco_polygons OUT.json TOLERANCE FILE.json...".into());
    };
    let options = PolygonOptions {
        tolerance: tolerance.parse()?,
        ..PolygonOptions::default()
    };
    let (mut images, mut annotations) = (Vec::new(), Vec::new());
    for (i, file) in files.iter().enumerate() {
        let parsed = sa1b::parse_sa1b(&std::fs::read_to_string(file)?)?;
        let image_id = i + 1;
        let (h, w) = (parsed.image.height, parsed.image.width);
        images.push(json!({"id": image_id, "file_name": file, "width": w, "height": h}));
        for a in &parsed.annotations {
            let rle = a.rle()?;
            let mask = rle.decode_u8()?;
            let polygons = mask_to_polygons(&mask, h, w, &options)?;
            if polygons.is_empty() {
                continue;
            }
            let segmentation: Vec<Vec<f64>> = polygons.iter().map(|p| p.to_coco()).collect();
            annotations.push(json!({
                "id": annotations.len() + 1,
                "image_id": image_id,
                "category_id": 1,
                "segmentation": segmentation,
                "area": rle.area(),
                "bbox": rle.bbox_xywh(),
                "iscrowd": 0,
                "holes": polygons.iter().map(|p| p.holes.len()).sum::<usize>(),
                "source_rle": rle.to_coco(),
            }));
        }
    }
    let dataset = json!({
        "images": images,
        "annotations": annotations,
        "categories": [{"id": 1, "name": "object", "supercategory": "object"}],
    });
    std::fs::write(out, serde_json::to_string(&dataset)?)?;
    println!(
        "{out}: {} annotations",
        dataset["annotations"].as_array().map_or(0, Vec::len)
    );
    Ok(())
}
