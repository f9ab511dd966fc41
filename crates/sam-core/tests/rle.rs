//! COCO RLE: pycocotools fixtures, error cases and round-trip properties.

use proptest::prelude::*;
use sam_core::amg::utils::{batched_mask_to_box, box_xyxy_to_xywh};
use sam_core::io::rle::{Rle, RleError};

fn mask_from_bits(bits: &str) -> Vec<bool> {
    bits.bytes().map(|b| b == b'1').collect()
}

/// (mask bits, h, w, compressed string, area, bbox)
type Fixture = (&'static str, usize, usize, &'static str, u64, [f64; 4]);

/// Masks, strings, areas and boxes produced by pycocotools 2.0
/// (`mask.encode`, `mask.area`, `mask.toBbox`).
#[test]
fn pycocotools_fixtures() {
    let cases: [Fixture; 4] = [
        ("100000100000", 3, 4, "0160N", 2, [0.0, 0.0, 3.0, 2.0]),
        ("1", 1, 1, "01", 1, [0.0, 0.0, 1.0, 1.0]),
        ("0", 1, 1, "1", 0, [0.0; 4]),
        (
            "001011010100101111110110000110010000101100010000100010110001110",
            7,
            9,
            "141M11001O01N00O01201OM032N0ON4",
            28,
            [0.0, 0.0, 9.0, 7.0],
        ),
    ];
    for (bits, h, w, s, area, bbox) in cases {
        let mask = mask_from_bits(bits);
        let rle = Rle::encode(&mask, h, w);
        assert_eq!(rle.to_string_compressed(), s);
        assert_eq!(rle.area(), area);
        assert_eq!(rle.bbox_xywh(), bbox);
        let back = Rle::from_string_compressed(s, [h, w]).unwrap();
        assert_eq!(back, rle);
        assert_eq!(back.decode().unwrap(), mask);
    }
}

#[test]
fn pycocotools_large_fixtures() {
    // 300x500, rows 10..200 x cols 30..400 plus rows 250..260 x cols 5..7
    let (h, w) = (300, 500);
    let mut mask = vec![false; h * w];
    for y in 10..200 {
        for x in 30..400 {
            mask[y * w + x] = true;
        }
    }
    for y in 250..260 {
        for x in 5..7 {
            mask[y * w + x] = true;
        }
    }
    let expected = format!("ff1:R90T`6d5XZI{}VYm0", "0".repeat(737));
    let rle = Rle::encode(&mask, h, w);
    assert_eq!(rle.to_string_compressed(), expected);
    assert_eq!(rle.area(), 70320);
    assert_eq!(rle.bbox_xywh(), [5.0, 10.0, 395.0, 250.0]);
    assert_eq!(Rle::from_string_compressed(&expected, [h, w]).unwrap(), rle);

    // 1000x1000, two corner pixels: large counts need several characters
    let (h, w) = (1000, 1000);
    let mut mask = vec![false; h * w];
    mask[0] = true;
    mask[h * w - 1] = true;
    let rle = Rle::encode(&mask, h, w);
    assert_eq!(rle.counts, vec![0, 1, 999_998, 1]);
    assert_eq!(rle.to_string_compressed(), "01na`n00");
    assert_eq!(rle.bbox_xywh(), [0.0, 0.0, 1000.0, 1000.0]);
}

#[test]
fn empty_shapes() {
    // An empty mask with a huge other side (the fuzzer's `0 x 0xfc000000`, which encoded over
    // every empty column, 20 s each time) costs no more than any empty mask.
    for (h, w) in [(0, 5), (5, 0), (0, 0), (0, usize::MAX), (usize::MAX, 0)] {
        let rle = Rle::encode(&[], h, w);
        assert_eq!(rle.counts, vec![0]); // pycocotools gives counts [0]
        assert_eq!(rle.to_string_compressed(), "0");
        assert_eq!(rle.area(), 0);
        assert_eq!(rle.bbox_xywh(), [0.0; 4]);
        assert!(rle.decode().unwrap().is_empty());
        assert_eq!(Rle::from_string_compressed("0", [h, w]).unwrap(), rle);
    }
}

#[test]
fn full_and_empty_masks_start_with_zero_run() {
    let full = Rle::encode(&[true; 6], 2, 3);
    assert_eq!(full.counts, vec![0, 6]);
    let empty = Rle::encode_u8(&[0; 6], 2, 3);
    assert_eq!(empty.counts, vec![6]);
    assert_eq!(full.iou(&empty).unwrap(), 0.0);
    assert_eq!(empty.iou(&empty).unwrap(), 0.0);
    assert_eq!(full.iou(&full).unwrap(), 1.0);
}

#[test]
fn encode_u8_treats_nonzero_as_true() {
    let a = Rle::encode_u8(&[0, 2, 255, 0, 1, 0], 2, 3);
    let b = Rle::encode(&[false, true, true, false, true, false], 2, 3);
    assert_eq!(a, b);
}

#[test]
fn json_shape_of_uncompressed_and_coco() {
    let rle = Rle::encode(&[false, true, true, false], 2, 2);
    assert_eq!(
        serde_json::to_string(&rle).unwrap(),
        r#"{"size":[2,2],"counts":[1,2,1]}"#
    );
    assert_eq!(
        serde_json::to_string(&rle.to_coco()).unwrap(),
        r#"{"size":[2,2],"counts":"121"}"#
    );
}

#[test]
fn errors_are_reported() {
    let e = Rle::from_string_compressed("0 1", [1, 1]).unwrap_err();
    assert!(matches!(e, RleError::BadChar { ch: ' ', pos: 1 }), "{e}");
    let e = Rle::from_string_compressed("0é", [1, 1]).unwrap_err();
    assert!(matches!(e, RleError::BadChar { ch: 'é', pos: 1 }), "{e}");
    // 'p' (112) is just outside the alphabet
    assert!(matches!(
        Rle::from_string_compressed("p", [1, 1]),
        Err(RleError::BadChar { .. })
    ));
    // continuation bit set on the last character
    assert_eq!(
        Rle::from_string_compressed("0P", [1, 1]).unwrap_err(),
        RleError::Truncated
    );
    assert!(matches!(
        Rle::from_string_compressed("PPPPPPPPPPPPPPP0", [1, 1]),
        Err(RleError::ValueTooLong { .. })
    ));
    // "N" alone is -2: a negative count
    assert!(matches!(
        Rle::from_string_compressed("N", [1, 1]),
        Err(RleError::CountOutOfRange { .. })
    ));
    let e = Rle::from_string_compressed("2", [1, 1]).unwrap_err();
    assert!(matches!(e, RleError::CountsSumMismatch { sum: 2, .. }));
    assert!(e.to_string().contains("sum to 2"), "{e}");
    let bad = Rle {
        size: [2, 2],
        counts: vec![1, 1],
    };
    assert!(bad.decode().is_err());
    let other = Rle::encode(&[true], 1, 1);
    assert!(matches!(
        other.iou(&bad),
        Err(RleError::SizeMismatch { .. })
    ));
}

#[test]
fn decode_is_row_major() {
    // 2x3 mask, column-major runs: col0 = [0,1], col1 = [1,1], col2 = [0,0]
    let rle = Rle {
        size: [2, 3],
        counts: vec![1, 3, 2],
    };
    assert_eq!(
        rle.decode().unwrap(),
        vec![false, true, false, true, true, false]
    );
    assert_eq!(rle.decode_u8().unwrap(), vec![0, 1, 0, 1, 1, 0]);
}

fn arb_mask() -> impl Strategy<Value = (usize, usize, Vec<bool>)> {
    (0usize..24, 0usize..24, 0.0f64..1.0).prop_flat_map(|(h, w, p)| {
        let n = h * w;
        (
            Just(h),
            Just(w),
            proptest::collection::vec(proptest::bool::weighted(p.clamp(0.0, 1.0)), n),
        )
    })
}

/// pycocotools toBbox computed directly from the mask.
fn coco_bbox(mask: &[bool], h: usize, w: usize) -> [f64; 4] {
    let b = batched_mask_to_box(mask, h, w);
    if mask.iter().any(|&v| v) {
        [
            b[0] as f64,
            b[1] as f64,
            (b[2] - b[0]) as f64 + 1.0,
            (b[3] - b[1]) as f64 + 1.0,
        ]
    } else {
        [0.0; 4]
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn roundtrip((h, w, mask) in arb_mask()) {
        let rle = Rle::encode(&mask, h, w);
        prop_assert_eq!(rle.size, [h, w]);
        prop_assert!(rle.validate().is_ok());
        // runs alternate: every count after the first is nonzero
        prop_assert!(rle.counts.iter().skip(1).all(|&c| c > 0));
        prop_assert_eq!(&rle.decode().unwrap(), &mask);
        let s = rle.to_string_compressed();
        prop_assert!(s.bytes().all(|b| (48..=111).contains(&b)));
        let back = Rle::from_string_compressed(&s, [h, w]).unwrap();
        prop_assert_eq!(&back, &rle);
        let area = mask.iter().filter(|&&v| v).count() as u64;
        prop_assert_eq!(rle.area(), area);
        prop_assert_eq!(rle.bbox_xywh(), coco_bbox(&mask, h, w));
        // the AMG box (no +1) agrees with the same extent
        let amg = box_xyxy_to_xywh(batched_mask_to_box(&mask, h, w));
        if area > 0 {
            prop_assert_eq!(amg[2] as f64 + 1.0, rle.bbox_xywh()[2]);
            prop_assert_eq!(amg[3] as f64 + 1.0, rle.bbox_xywh()[3]);
        } else {
            prop_assert_eq!(amg, [0.0; 4]);
        }
        let u8mask: Vec<u8> = mask.iter().map(|&v| u8::from(v) * 7).collect();
        prop_assert_eq!(Rle::encode_u8(&u8mask, h, w), rle);
    }

    #[test]
    fn iou_matches_brute_force((h, w, a) in arb_mask(), seed in any::<u64>()) {
        // second mask: pseudo-random from the seed, same size
        let mut s = seed | 1;
        let b: Vec<bool> = (0..h * w).map(|_| { s ^= s << 13; s ^= s >> 7; s ^= s << 17; s % 3 == 0 }).collect();
        let ra = Rle::encode(&a, h, w);
        let rb = Rle::encode(&b, h, w);
        let inter = a.iter().zip(&b).filter(|(x, y)| **x && **y).count();
        let union = a.iter().zip(&b).filter(|(x, y)| **x || **y).count();
        let expected = if union == 0 { 0.0 } else { inter as f64 / union as f64 };
        prop_assert_eq!(ra.iou(&rb).unwrap(), expected);
        prop_assert_eq!(rb.iou(&ra).unwrap(), expected);
    }

    #[test]
    fn compressed_decoder_never_panics(s in "[0-o]{0,40}", h in 0usize..50, w in 0usize..50) {
        if let Ok(rle) = Rle::from_string_compressed(&s, [h, w]) {
            prop_assert_eq!(rle.to_string_compressed().len() <= s.len() + 2, true);
            let mask = rle.decode().unwrap();
            prop_assert_eq!(mask.len(), h * w);
        }
    }

    #[test]
    fn large_counts_roundtrip(
        counts in proptest::collection::vec(1u32..(sam_core::io::rle::MAX_MASK_PIXELS / 11) as u32, 1..12),
        extra in 1u32..1 << 20,
    ) {
        // string coding only (mask not materialized): zero-run 0 first; up to 11 runs of up
        // to MAX_MASK_PIXELS / 11 stay within the mask size limit
        let mut c = vec![0u32];
        c.extend(counts);
        let total: u64 = c.iter().map(|&v| u64::from(v)).sum();
        let rle = Rle { size: [1, total as usize], counts: c.clone() };
        let s = rle.to_string_compressed();
        prop_assert_eq!(Rle::from_string_compressed(&s, rle.size).unwrap(), rle);
        // the same counts for a mask past the limit are refused before any allocation
        let over = sam_core::io::rle::MAX_MASK_PIXELS as u64 + u64::from(extra);
        let last = c.last_mut().unwrap();
        *last += (over - total) as u32;
        let big = Rle { size: [1, over as usize], counts: c };
        let s = big.to_string_compressed();
        prop_assert!(Rle::from_string_compressed(&s, big.size).is_err());
    }
}
