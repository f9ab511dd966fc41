//! Tests of `sam_core::io::npy` against files written by numpy 2.4.6
//! (`tests/fixtures/*.npy`, made by `tests/fixtures/gen_fixtures.py`).

use std::path::Path;

use sam_core::io::npy::{NpyArray, NpyError, read_npy_f32, write_npy_f32};

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A v1.0 file with the given raw header text (padded like numpy) and data.
fn with_header(header: &str, data: &[u8]) -> Vec<u8> {
    let hlen = header.len() + 1;
    let pad = 64 - (10 + hlen) % 64;
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&u16::try_from(hlen + pad).unwrap().to_le_bytes());
    b.extend_from_slice(header.as_bytes());
    b.extend(std::iter::repeat_n(b' ', pad));
    b.push(b'\n');
    b.extend_from_slice(data);
    b
}

fn f4_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn numpy_files_load_and_are_rewritten_byte_identically() {
    let a: Vec<f32> = (0..24).map(|i| (i as f32 - 7.5) * 0.25).collect();
    let cases: Vec<(&str, Vec<usize>, Vec<f32>)> = vec![
        ("f4_2x3x4.npy", vec![2, 3, 4], a),
        ("f4_scalar.npy", vec![], vec![3.5]),
        (
            "f4_1d.npy",
            vec![5],
            vec![1.0, -2.0, f32::INFINITY, f32::NEG_INFINITY, 1e-40],
        ),
        ("f4_empty_0x3.npy", vec![0, 3], vec![]),
    ];
    for (name, shape, data) in cases {
        let bytes = fixture(name);
        let arr = read_npy_f32(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(arr.shape, shape, "{name}");
        assert_eq!(f4_bytes(&arr.data), f4_bytes(&data), "{name}");
        assert_eq!(
            write_npy_f32(&shape, &data),
            bytes,
            "{name}: writer differs from np.save"
        );
    }
    // an embedding-like (1, 256, 2, 2) random array
    let bytes = fixture("f4_embed_1x256x2x2.npy");
    let arr = read_npy_f32(&bytes).unwrap();
    assert_eq!(arr.shape, vec![1, 256, 2, 2]);
    assert_eq!(arr.data.len(), 1024);
    assert_eq!(write_npy_f32(&arr.shape, &arr.data), bytes);
}

#[cfg(target_pointer_width = "64")]
#[test]
fn huge_first_dimension_with_no_elements() {
    // exercises numpy's growth padding (21 - len(repr(shape[0])) spaces)
    let bytes = fixture("f4_bigdim_empty.npy");
    let arr = read_npy_f32(&bytes).unwrap();
    assert_eq!(arr.shape, vec![12_345_678_901, 0]);
    assert!(arr.data.is_empty());
    assert_eq!(write_npy_f32(&arr.shape, &[]), bytes);
}

#[test]
fn versions_2_and_3_are_read() {
    for name in ["f4_v2_2x3.npy", "f4_v3_2x3.npy"] {
        let arr = read_npy_f32(&fixture(name)).unwrap();
        assert_eq!(
            arr,
            NpyArray {
                shape: vec![2, 3],
                data: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
            }
        );
    }
}

#[test]
fn f8_and_f2_are_converted() {
    let arr = read_npy_f32(&fixture("f8_2x3.npy")).unwrap();
    assert_eq!(arr.shape, vec![2, 3]);
    let want: Vec<f32> = (0..6).map(|i| (f64::from(i) / 3.0) as f32).collect();
    assert_eq!(arr.data, want);
    let arr = read_npy_f32(&fixture("f2_2x3.npy")).unwrap();
    assert_eq!(arr.shape, vec![2, 3]);
    let want = [0.0f32, -0.0, 1.5, 65504.0, 5.960_464_5e-8, -2.0];
    assert_eq!(f4_bytes(&arr.data), f4_bytes(&want));
    // f16 specials: inf, -inf, NaN, smallest subnormal, largest subnormal
    let halves: [u16; 5] = [0x7c00, 0xfc00, 0x7e00, 0x0001, 0x03ff];
    let data: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let b = with_header(
        "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }",
        &data,
    );
    let v = read_npy_f32(&b).unwrap().data;
    assert_eq!(v[0], f32::INFINITY);
    assert_eq!(v[1], f32::NEG_INFINITY);
    assert!(v[2].is_nan());
    assert_eq!(v[3], 2f32.powi(-24));
    assert_eq!(v[4], 1023.0 * 2f32.powi(-24));
}

#[test]
fn unsupported_files_are_rejected() {
    assert_eq!(
        read_npy_f32(&fixture("f4_fortran_2x3.npy")),
        Err(NpyError::FortranOrder)
    );
    assert_eq!(
        read_npy_f32(&fixture("f4_bigendian_2x3.npy")),
        Err(NpyError::UnsupportedDtype(">f4".into()))
    );
    assert_eq!(
        read_npy_f32(&fixture("i4_2x3.npy")),
        Err(NpyError::UnsupportedDtype("<i4".into()))
    );
    let structured = with_header(
        "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
        &[0; 4],
    );
    assert!(matches!(
        read_npy_f32(&structured),
        Err(NpyError::UnsupportedDtype(_))
    ));
}

#[test]
fn malformed_input_errors() {
    let good = fixture("f4_2x3x4.npy");
    assert_eq!(read_npy_f32(b""), Err(NpyError::BadMagic));
    assert_eq!(read_npy_f32(b"\x93NUMP"), Err(NpyError::BadMagic));
    assert_eq!(
        read_npy_f32(b"PK\x03\x04 not an npy"),
        Err(NpyError::BadMagic)
    );
    let mut v = good.clone();
    v[6] = 4;
    assert_eq!(read_npy_f32(&v), Err(NpyError::UnsupportedVersion(4, 0)));
    v[6] = 1;
    v[7] = 1;
    assert_eq!(read_npy_f32(&v), Err(NpyError::UnsupportedVersion(1, 1)));
    // every truncation is an error (never a panic)
    for n in 0..good.len() {
        assert!(
            read_npy_f32(&good[..n]).is_err(),
            "prefix of {n} bytes accepted"
        );
    }
    assert_eq!(
        read_npy_f32(&good[..good.len() - 1]),
        Err(NpyError::Truncated {
            expected: good.len(),
            found: good.len() - 1
        })
    );
    // header length pointing past the end
    let mut v = good.clone();
    v[8] = 0xff;
    v[9] = 0xff;
    assert_eq!(
        read_npy_f32(&v),
        Err(NpyError::Truncated {
            expected: 10 + 0xffff,
            found: good.len()
        })
    );
    // trailing data
    let mut v = good.clone();
    v.extend_from_slice(&[0; 4]);
    assert_eq!(
        read_npy_f32(&v),
        Err(NpyError::TrailingData {
            expected: 96,
            found: 100
        })
    );
    // garbage headers
    for h in [
        "garbage",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ",
        "{'descr': '<f4', 'fortran_order': False}",
        "{'descr': '<f4', 'shape': (6,)}",
        "{'fortran_order': False, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (6,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'x': 1}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,)} trailing",
        "{'descr: '<f4', 'fortran_order': False, 'shape': (6,)}",
        "{descr: '<f4'}",
        "",
    ] {
        let r = read_npy_f32(&with_header(h, &[0; 24]));
        assert!(matches!(r, Err(NpyError::BadHeader(_))), "{h:?} gave {r:?}");
    }
    // shape product overflow
    let h =
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }";
    assert!(matches!(
        read_npy_f32(&with_header(h, &[])),
        Err(NpyError::BadHeader(_))
    ));
    // header that is not valid UTF-8 in version 3.0
    let mut v3 = fixture("f4_v3_2x3.npy");
    v3[13] = 0xff;
    assert!(matches!(read_npy_f32(&v3), Err(NpyError::BadHeader(_))));
}

#[test]
fn header_dict_is_parsed_robustly() {
    let data = f4_bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    for h in [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
        "{ \"shape\" : ( 2 , 3 , ) , \"descr\" : \"<f4\" , \"fortran_order\" : False , }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        "  {'fortran_order': False, 'shape': (2, 3), 'descr': '<f4'}\t",
    ] {
        let arr = read_npy_f32(&with_header(h, &data)).unwrap_or_else(|e| panic!("{h:?}: {e}"));
        assert_eq!(arr.shape, vec![2, 3], "{h:?}");
        assert_eq!(arr.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    }
    let arr = read_npy_f32(&with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (6,), }",
        &data,
    ))
    .unwrap();
    assert_eq!(arr.shape, vec![6]);
}

#[test]
fn round_trips() {
    let shapes: [&[usize]; 7] = [
        &[],
        &[0],
        &[7],
        &[3, 0, 2],
        &[1, 256, 64, 64],
        &[2, 3, 5, 7],
        &[1; 40],
    ];
    for shape in shapes {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n).map(|i| (i as f32).sin() * 1e3).collect();
        let bytes = write_npy_f32(shape, &data);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hl = usize::from(u16::from_le_bytes([bytes[8], bytes[9]]));
        assert_eq!((10 + hl) % 64, 0, "{shape:?}: data not 64-byte aligned");
        assert_eq!(bytes[10 + hl - 1], b'\n');
        assert_eq!(bytes.len(), 10 + hl + 4 * n);
        let arr = read_npy_f32(&bytes).unwrap();
        assert_eq!(arr.shape, shape);
        assert_eq!(f4_bytes(&arr.data), f4_bytes(&data));
    }
    // NaN payloads survive
    let nan = f32::from_bits(0x7fc0_1234);
    let arr = read_npy_f32(&write_npy_f32(&[1], &[nan])).unwrap();
    assert_eq!(arr.data[0].to_bits(), 0x7fc0_1234);
}

#[test]
fn very_long_header_uses_version_2_and_is_refused_by_the_reader() {
    // numpy falls back to format 2.0 when the header exceeds 65535 bytes
    let shape = vec![1usize; 30_000];
    let bytes = write_npy_f32(&shape, &[2.5]);
    assert_eq!(&bytes[..8], b"\x93NUMPY\x02\x00");
    let hl = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize;
    assert_eq!((12 + hl) % 64, 0);
    // The reader bounds what it takes from a file: a header this long (30,000 dimensions) is
    // over `MAX_HEADER_BYTES` / `MAX_DIMS` and refused with a typed error, not parsed
    // (version-2 headers of ordinary length are read: `versions_2_and_3_are_read`).
    assert!(hl > sam_core::io::npy::MAX_HEADER_BYTES);
    match read_npy_f32(&bytes) {
        Err(NpyError::BadHeader(msg)) => assert!(msg.contains("limit"), "{msg}"),
        other => panic!("expected a header over the limit, got {other:?}"),
    }
}

#[test]
fn corrupted_files_never_panic() {
    let good = fixture("f4_embed_1x256x2x2.npy");
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..3000 {
        let mut v = good.clone();
        let flips = 1 + (next() % 4) as usize;
        for _ in 0..flips {
            // mostly in the 128-byte header
            let i = (next() % 140) as usize;
            v[i] = next() as u8;
        }
        if next() % 4 == 0 {
            let cut = (next() as usize) % v.len();
            v.truncate(cut);
        }
        let _ = read_npy_f32(&v);
    }
}

#[test]
#[should_panic(expected = "does not match the shape")]
fn writer_rejects_mismatched_length() {
    let _ = write_npy_f32(&[2, 2], &[1.0; 3]);
}
