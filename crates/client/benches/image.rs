//! Base64 image decoding throughput (target: 1 GB/s or more). Results go in
//! docs/benchmarks.md.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use base64::Engine as _;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tiktok_dm_client::image::Image;

/// A valid PNG of about `size` bytes: a real header and IEND around stored data.
fn big_png(size: usize) -> Vec<u8> {
    let mut png = Vec::with_capacity(size + 64);
    png.extend_from_slice(
        b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\x04\0\0\0\x04\0\x08\x02\0\0\0\0\0\0\0",
    );
    let mut x = 0x9e37_79b9u32;
    png.extend((0..size).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xae, 0x42, 0x60, 0x82]);
    png
}

fn bench(c: &mut Criterion) {
    let png = big_png(10 * 1024 * 1024);
    let standard = base64::engine::general_purpose::STANDARD.encode(&png);
    let wrapped: String = standard
        .as_bytes()
        .chunks(76)
        .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
        .collect();
    let mut group = c.benchmark_group("base64 image decode");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(standard.len() as u64));
    group.bench_function("10 MB, one line", |b| {
        b.iter(|| Image::from_text(black_box(&standard), 64 * 1024 * 1024).unwrap())
    });
    group.throughput(Throughput::Bytes(wrapped.len() as u64));
    group.bench_function("10 MB, 76-column lines", |b| {
        b.iter(|| Image::from_text(black_box(&wrapped), 64 * 1024 * 1024).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
