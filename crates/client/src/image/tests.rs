//! Format detection on real files made here, every rejection path, base64 variants.

use ::base64::Engine as _;

use super::*;

fn pixels(w: u32, h: u32) -> Vec<u8> {
    (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect()
}

pub(crate) fn make_png(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().unwrap();
    writer.write_image_data(&pixels(w, h)).unwrap();
    writer.finish().unwrap();
    out
}

pub(crate) fn make_jpeg(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let enc = jpeg_encoder::Encoder::new(&mut out, 85);
    enc.encode(
        &pixels(u32::from(w), u32::from(h)),
        w,
        h,
        jpeg_encoder::ColorType::Rgb,
    )
    .unwrap();
    out
}

fn make_gif(w: u16, h: u16) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w, h, &[]).unwrap();
        let frame = gif::Frame::from_rgb(w, h, &pixels(u32::from(w), u32::from(h)));
        enc.write_frame(&frame).unwrap();
    }
    out
}

fn make_webp(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(&pixels(w, h), w, h, image_webp::ColorType::Rgb8)
        .unwrap();
    out
}

#[test]
fn real_files_are_recognised_with_their_dimensions() {
    let cases = [
        (make_jpeg(64, 48), ImageFormat::Jpeg, 64, 48),
        (make_png(33, 17), ImageFormat::Png, 33, 17),
        (make_gif(20, 10), ImageFormat::Gif, 20, 10),
        (make_webp(31, 9), ImageFormat::Webp, 31, 9),
    ];
    for (bytes, format, w, h) in cases {
        let image = Image::from_bytes(bytes, DEFAULT_IMAGE_LIMIT).unwrap();
        assert_eq!(
            image.probe(),
            Probe {
                format,
                width: w,
                height: h
            }
        );
    }
}

#[test]
fn lossy_and_extended_webp_headers_give_dimensions() {
    // VP8 (lossy): frame tag, start code, 14-bit width and height.
    let mut vp8 = b"RIFF\0\0\0\0WEBPVP8 \x0a\0\0\0\0\0\0\x9d\x01\x2a".to_vec();
    vp8.extend_from_slice(&640u16.to_le_bytes());
    vp8.extend_from_slice(&480u16.to_le_bytes());
    let len = (vp8.len() - 8) as u32;
    vp8[4..8].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        probe(&vp8).unwrap(),
        Probe {
            format: ImageFormat::Webp,
            width: 640,
            height: 480
        }
    );
    // VP8X: 24-bit width-1 and height-1.
    let mut vp8x = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
    vp8x.extend_from_slice(&[0x7f, 0x07, 0x00, 0x37, 0x04, 0x00]);
    let len = (vp8x.len() - 8) as u32;
    vp8x[4..8].copy_from_slice(&len.to_le_bytes());
    assert_eq!(
        probe(&vp8x).unwrap(),
        Probe {
            format: ImageFormat::Webp,
            width: 1920,
            height: 1080
        }
    );
}

#[test]
fn other_formats_and_text_are_named_in_the_error() {
    let cases: [(&[u8], &str); 8] = [
        (
            b"\0\0\0\x18ftypheic\0\0\0\0mif1heic",
            "HEIC/HEIF images are not supported",
        ),
        (
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
            "SVG images are not supported",
        ),
        (b"%PDF-1.7\n", "PDF images are not supported"),
        (b"BM6\0\0\0", "BMP images are not supported"),
        (b"hello, this is text", "not an image (text)"),
        (
            b"\x00\x01\x02\x03garbage",
            "not an image (unrecognised binary data)",
        ),
        (b"\0\0\0\x18ftypavif", "AVIF images are not supported"),
        (b"", "the image is empty"),
    ];
    for (bytes, expected) in cases {
        let err = Image::from_bytes(bytes.to_vec(), DEFAULT_IMAGE_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(err.contains(expected), "expected {expected:?} in {err:?}");
    }
}

#[test]
fn truncated_images_are_refused() {
    for (name, bytes) in [
        ("JPEG", make_jpeg(32, 32)),
        ("PNG", make_png(32, 32)),
        ("GIF", make_gif(32, 32)),
        ("WebP", make_webp(32, 32)),
    ] {
        let half = bytes[..bytes.len() / 2].to_vec();
        let err = Image::from_bytes(half, DEFAULT_IMAGE_LIMIT)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("the {name} image is truncated or corrupt")),
            "{name}: {err}"
        );
        for cut in [3, 10, 20, 30] {
            assert!(
                probe(&bytes[..cut.min(bytes.len())]).is_err(),
                "{name} cut at {cut}"
            );
        }
    }
}

#[test]
fn the_size_limit_applies_to_bytes_and_to_base64_before_decoding() {
    let png = make_png(64, 64);
    let err = Image::from_bytes(png.clone(), 100).unwrap_err();
    assert!(
        matches!(err, ImageProblem::TooLarge { limit: 100, .. }),
        "{err:?}"
    );
    // 4 MB of "A" would decode to 3 MB: refused against a 1 MB limit without decoding.
    let big = "A".repeat(4_000_000);
    let err = Image::from_text(&big, 1_000_000).unwrap_err();
    assert_eq!(
        err,
        ImageProblem::TooLarge {
            size: 3_000_000,
            limit: 1_000_000
        }
    );
}

#[test]
fn base64_variants_and_data_uris_decode_to_the_same_image() {
    let png = make_png(16, 16);
    let std_b64 = ::base64::engine::general_purpose::STANDARD.encode(&png);
    let url_b64 = ::base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&png);
    let wrapped: String = std_b64
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\r\n", std::str::from_utf8(c).unwrap()))
        .collect();
    for text in [
        std_b64.clone(),
        std_b64.trim_end_matches('=').to_owned(),
        url_b64.clone(),
        wrapped,
        format!("  data:image/png;base64,{std_b64}\n"),
        format!("DATA:image/png;charset=utf-8;base64,{url_b64}"),
        format!("data:;base64,{std_b64}"),
    ] {
        let image = Image::from_text(&text, DEFAULT_IMAGE_LIMIT).unwrap();
        assert_eq!(image.bytes(), &png[..]);
    }
}

#[test]
fn bad_base64_says_where_it_went_wrong() {
    let png = make_png(8, 8);
    let mut text = ::base64::engine::general_purpose::STANDARD.encode(&png);
    text.insert_str(10, "\n  ");
    text.replace_range(20..21, "*");
    let err = Image::from_text(&text, DEFAULT_IMAGE_LIMIT).unwrap_err();
    assert_eq!(
        err,
        ImageProblem::Base64 {
            position: 20,
            reason: "'*' is not a base64 character".into()
        }
    );
    let mixed = format!("{}+{}-", "A".repeat(8), "A".repeat(6));
    assert!(
        Image::from_text(&mixed, DEFAULT_IMAGE_LIMIT)
            .unwrap_err()
            .to_string()
            .contains("mixes the standard")
    );
    let lone = format!("{}A", "AAAA".repeat(3));
    assert!(
        Image::from_text(&lone, DEFAULT_IMAGE_LIMIT)
            .unwrap_err()
            .to_string()
            .contains("lone character")
    );
    let uri = Image::from_text("data:image/png,%89PNG", DEFAULT_IMAGE_LIMIT).unwrap_err();
    assert!(uri.to_string().contains("only base64 data URIs"), "{uri}");
    let not_image =
        Image::from_text("data:text/plain;base64,aGk=", DEFAULT_IMAGE_LIMIT).unwrap_err();
    assert!(not_image.to_string().contains("not an image type"));
    let text_payload = Image::from_text("aGVsbG8gd29ybGQ=", DEFAULT_IMAGE_LIMIT).unwrap_err();
    assert!(text_payload.to_string().contains("not an image (text)"));
    assert_eq!(
        Image::from_text(" \n", DEFAULT_IMAGE_LIMIT).unwrap_err(),
        ImageProblem::Format(FormatProblem::Empty)
    );
}

#[test]
fn md5_is_lowercase_hex_of_the_bytes() {
    let image = Image::from_bytes(make_gif(4, 4), DEFAULT_IMAGE_LIMIT).unwrap();
    let md5 = image.md5_hex();
    assert_eq!(md5.len(), 32);
    assert!(
        md5.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
    );
}
