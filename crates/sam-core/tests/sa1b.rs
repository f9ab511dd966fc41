//! SA-1B / AMG annotation JSON against the reference AMG outputs, plus
//! serialization and error handling.

mod common;

use std::collections::HashMap;

use sam_core::amg::utils::{batched_mask_to_box, box_xyxy_to_xywh};
use sam_core::io::rle::Rle;
use sam_core::io::sa1b::*;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// One AMG output file of the kit, as a manifest lists it.
struct AmgFile {
    /// `<tag>_<case>`, e.g. `tiny_seed0_nofilter`.
    case: String,
    /// The file name.
    name: String,
    text: String,
    /// The manifest's `num_masks` of the case.
    num_masks: usize,
}

/// Every `<mode>` file that the kit's manifests (`common::model_tags`, any seed) list in their
/// `amg_cases[].files`; each must exist.
fn files(mode: &str) -> Vec<AmgFile> {
    let mut out = Vec::new();
    for tag in common::model_tags() {
        let manifest = common::manifest(&tag);
        for case in manifest["amg_cases"].as_array().unwrap() {
            let Some(name) = case["files"][mode].as_str() else {
                continue;
            };
            let bytes = common::read(name);
            out.push(AmgFile {
                case: format!("{tag}_{}", case["name"].as_str().unwrap()),
                name: name.to_string(),
                text: String::from_utf8(bytes).unwrap(),
                num_masks: case["num_masks"].as_u64().unwrap() as usize,
            });
        }
    }
    out
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Decodes every annotation and checks re-encoding, area and bbox;
/// returns the re-encoded RLEs.
fn check_file(name: &str, file: &Sa1bFile) -> Vec<Rle> {
    let (h, w) = (file.image.height, file.image.width);
    let mut rles = Vec::new();
    for (i, a) in file.annotations.iter().enumerate() {
        assert_eq!(a.id, i as u64, "{name}");
        let rle = a.rle().unwrap();
        assert_eq!(rle.size, [h, w], "{name} #{i}");
        let mask = rle.decode().unwrap();
        let re = Rle::encode(&mask, h, w);
        match &a.segmentation {
            Segmentation::CocoRle { counts, .. } => {
                assert_eq!(&re.to_string_compressed(), counts, "{name} #{i}")
            }
            Segmentation::UncompressedRle { counts, .. } => {
                assert_eq!(&re.counts, counts, "{name} #{i}")
            }
            Segmentation::BinaryMask { .. } => unreachable!(),
        }
        let area = mask.iter().filter(|&&v| v).count() as u64;
        assert_eq!(area, a.area, "{name} #{i}");
        assert_eq!(rle.area(), a.area, "{name} #{i}");
        let bbox = box_xyxy_to_xywh(batched_mask_to_box(&mask, h, w)).map(f64::from);
        assert_eq!(bbox, a.bbox, "{name} #{i}");
        rles.push(re);
    }
    rles
}

type Key = String;

fn key(a: &Annotation) -> Key {
    format!("{:?}|{:?}", a.point_coords, a.crop_box)
}

fn groups(anns: &[Annotation]) -> HashMap<Key, Vec<usize>> {
    let mut g: HashMap<Key, Vec<usize>> = HashMap::new();
    for (i, a) in anns.iter().enumerate() {
        g.entry(key(a)).or_default().push(i);
    }
    g
}

#[test]
fn reference_files_exist() {
    // Each model has AMG outputs as coco and uncompressed RLE (read by `files`), and at least
    // one case as binary masks, with the manifest's annotation count.
    for mode in ["coco_rle", "uncompressed_rle", "binary_mask"] {
        let files = files(mode);
        assert!(files.len() >= 2, "{mode}: {} files", files.len());
        for f in files {
            let parsed = parse_sa1b(&f.text).unwrap();
            assert_eq!(parsed.annotations.len(), f.num_masks, "{}", f.name);
        }
    }
    assert_eq!(files("coco_rle").len(), files("uncompressed_rle").len());
}

#[test]
fn reference_rles_decode_reencode_and_agree_across_modes() {
    let coco: HashMap<String, String> = files("coco_rle")
        .into_iter()
        .map(|f| (f.case, f.text))
        .collect();
    let bin: HashMap<String, String> = files("binary_mask")
        .into_iter()
        .map(|f| (f.case, f.text))
        .collect();
    let mut n_bin = 0;
    let mut n = 0;
    // Every annotation of every file, as the manifests count them.
    let mut expected = 0;
    let mut expected_bin = 0;
    for f in files("uncompressed_rle") {
        let (case, name, text) = (f.case, f.name, f.text);
        expected += 2 * f.num_masks;
        if bin.contains_key(&case) {
            expected_bin += f.num_masks;
        }
        let unc = parse_sa1b(&text).unwrap();
        let coco = parse_sa1b(&coco[&case]).unwrap();
        assert_eq!(unc.output_mode.as_deref(), Some("uncompressed_rle"));
        assert_eq!(coco.output_mode.as_deref(), Some("coco_rle"));
        assert_eq!(unc.annotations.len(), coco.annotations.len(), "{case}");
        let (h, w) = (unc.image.height, unc.image.width);
        let unc_rles = check_file(&name, &unc);
        let coco_rles = check_file(&case, &coco);
        n += unc_rles.len() + coco_rles.len();
        let gu = groups(&unc.annotations);
        let gc = groups(&coco.annotations);
        assert_eq!(gu.len(), gc.len(), "{case}");
        for (k, iu) in &gu {
            let ic = &gc[k];
            // same multiset of masks (and metadata) for each point + crop box
            let mut mu: Vec<&Rle> = iu.iter().map(|&i| &unc_rles[i]).collect();
            let mut mc: Vec<&Rle> = ic.iter().map(|&i| &coco_rles[i]).collect();
            mu.sort_by(|a, b| a.counts.cmp(&b.counts));
            mc.sort_by(|a, b| a.counts.cmp(&b.counts));
            assert_eq!(mu, mc, "{case} {k}");
            for &i in iu {
                let a = &unc.annotations[i];
                let Segmentation::UncompressedRle { size, counts } = &a.segmentation else {
                    panic!("{case}: expected uncompressed RLE");
                };
                let rle = Rle {
                    size: *size,
                    counts: counts.clone(),
                };
                let s = rle.to_string_compressed();
                // the compressed form appears among the coco group
                assert!(ic.iter().any(|&j| matches!(
                    &coco.annotations[j].segmentation,
                    Segmentation::CocoRle { counts, .. } if *counts == s
                )));
            }
        }
        // binary masks: sum + sha256 of row-major 0/1 bytes
        if let Some(text) = bin.get(&case) {
            let b = parse_sa1b(text).unwrap();
            assert_eq!(b.annotations.len(), unc.annotations.len());
            let gb = groups(&b.annotations);
            for (k, ib) in &gb {
                let iu = &gu[k];
                let mut want: Vec<(u64, String)> = iu
                    .iter()
                    .map(|&i| {
                        let bytes = unc_rles[i].decode_u8().unwrap();
                        (unc.annotations[i].area, sha256_hex(&bytes))
                    })
                    .collect();
                let mut got: Vec<(u64, String)> = ib
                    .iter()
                    .map(|&i| match &b.annotations[i].segmentation {
                        Segmentation::BinaryMask {
                            shape, sum, sha256, ..
                        } => {
                            assert_eq!(*shape, [h, w]);
                            assert_eq!(*sum, b.annotations[i].area);
                            (*sum, sha256.clone())
                        }
                        other => panic!("{case}: expected binary mask, got {other:?}"),
                    })
                    .collect();
                want.sort();
                got.sort();
                assert_eq!(want, got, "{case} {k}");
                n_bin += ib.len();
            }
            assert!(matches!(
                b.annotations[0].rle(),
                Err(Sa1bError::NoPixelData)
            ));
        }
    }
    assert_eq!(n, expected, "annotations checked");
    assert_eq!(n_bin, expected_bin, "binary masks checked");
    assert!(n_bin > 0, "no binary masks checked");
}

#[test]
fn reference_files_reserialize_to_equivalent_json() {
    for mode in ["coco_rle", "uncompressed_rle", "binary_mask"] {
        for AmgFile { name, text, .. } in files(mode) {
            let file = parse_sa1b(&text).unwrap();
            let out = to_json(&file);
            let a: Value = serde_json::from_str(&text).unwrap();
            let b: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(a, b, "{name}");
            assert_eq!(parse_sa1b(&out).unwrap(), file, "{name}");
            // nulls for NaN stability survive
            let n_null = file
                .annotations
                .iter()
                .filter(|a| a.stability_score.is_none())
                .count();
            assert_eq!(out.matches("\"stability_score\":null").count(), n_null);
        }
    }
}

#[test]
fn annotation_lists_parse_too() {
    let text = &files("coco_rle")[0].text;
    let file = parse_sa1b(text).unwrap();
    let list = annotations_to_json(&file.annotations);
    assert_eq!(parse_annotations(&list).unwrap(), file.annotations);
    assert_eq!(parse_annotations(text).unwrap(), file.annotations);
    // official generate() output has no id
    let raw = r#"[{"segmentation": {"size": [2, 2], "counts": [1, 2, 1]},
        "area": 2, "bbox": [0, 0, 1, 1], "predicted_iou": 0.9,
        "point_coords": [[0.5, 0.5]], "stability_score": 0.75,
        "crop_box": [0, 0, 2, 2]}]"#;
    let anns = parse_annotations(raw).unwrap();
    assert_eq!(anns[0].id, 0);
    assert_eq!(
        anns[0].rle().unwrap().decode().unwrap(),
        vec![false, true, true, false]
    );
}

fn sample() -> Sa1bFile {
    let rle = Rle::encode(&[false, true, true, true], 2, 2);
    Sa1bFile {
        image: ImageInfo {
            image_id: 7,
            width: 2,
            height: 2,
            file_name: "x.jpg".into(),
        },
        generator: None,
        output_mode: None,
        notes: None,
        settings: None,
        annotations: vec![Annotation {
            id: 3,
            segmentation: rle.to_coco().into(),
            bbox: [0.0, 0.0, 1.0, 1.0],
            area: 3,
            predicted_iou: f64::NAN,
            stability_score: Some(f64::NAN),
            crop_box: [0.0, 0.0, 2.0, 2.5],
            point_coords: vec![[1.0, 0.25]],
        }],
    }
}

#[test]
fn nan_scores_serialize_as_null() {
    let json = to_json(&sample());
    assert_eq!(
        json,
        r#"{"image":{"image_id":7,"width":2,"height":2,"file_name":"x.jpg"},"annotations":[{"id":3,"segmentation":{"size":[2,2],"counts":"13"},"bbox":[0,0,1,1],"area":3,"predicted_iou":null,"stability_score":null,"crop_box":[0,0,2,2.5],"point_coords":[[1.0,0.25]]}]}"#
    );
    let back = parse_sa1b(&json).unwrap();
    assert!(back.annotations[0].predicted_iou.is_nan());
    assert_eq!(back.annotations[0].stability_score, None);
    assert!(back.annotations[0].stability_score_or_nan().is_nan());
    let mut a = back.annotations[0].clone();
    a.set_stability_score(0.5);
    assert_eq!(a.stability_score, Some(0.5));
    a.set_stability_score(f64::NAN);
    assert_eq!(a.stability_score, None);
}

#[test]
fn malformed_input_gives_clear_errors() {
    let good = to_json(&sample());
    // not JSON
    let e = parse_sa1b("{\"image\": ").unwrap_err();
    assert!(matches!(e, Sa1bError::Json(_)));
    assert!(e.to_string().contains("line 1"), "{e}");
    // missing field
    let e = parse_sa1b(r#"{"annotations": []}"#).unwrap_err();
    assert!(e.to_string().contains("image"), "{e}");
    // bad compressed string character
    let bad = good.replace(r#""counts":"13""#, r#""counts":"0 3""#);
    let e = parse_sa1b(&bad).unwrap_err();
    assert!(
        matches!(
            e,
            Sa1bError::Rle {
                index: 0,
                id: 3,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("invalid character"), "{e}");
    // counts that do not cover the mask
    let bad = good.replace(r#""counts":"13""#, r#""counts":[1,2]"#);
    let e = parse_sa1b(&bad).unwrap_err();
    assert!(e.to_string().contains("sum to 3"), "{e}");
    // negative counts in an uncompressed list
    let bad = good.replace(r#""counts":"13""#, r#""counts":[1,-2,1]"#);
    assert!(matches!(parse_sa1b(&bad), Err(Sa1bError::Json(_))));
    // counts of the wrong type
    let bad = good.replace(r#""counts":"13""#, r#""counts":{"a":1}"#);
    let e = parse_sa1b(&bad).unwrap_err();
    assert!(e.to_string().contains("RLE counts"), "{e}");
    // segmentation without counts / of no known kind
    let bad = good.replace(r#","counts":"13""#, "");
    let e = parse_sa1b(&bad).unwrap_err();
    assert!(e.to_string().contains("counts"), "{e}");
    let bad = good.replace(r#"{"size":[2,2],"counts":"13"}"#, r#"{"foo":1}"#);
    let e = parse_sa1b(&bad).unwrap_err();
    assert!(e.to_string().contains("segmentation needs"), "{e}");
    // a bare list is not an SA-1B file, but is an annotation list
    assert!(parse_sa1b("[]").is_err());
    assert!(parse_annotations("[]").unwrap().is_empty());
    assert!(parse_annotations("").is_err());
    assert!(parse_annotations("42").is_err());
}
