//! Image files for tests of `images:` (deliveries and chat replies).
#![allow(dead_code)]

/// A PNG of `width`×`height` as far as any reader of its header can tell (signature and
/// `IHDR`), padded so it looks like a file.
pub fn png(width: u32, height: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    b.extend_from_slice(&13u32.to_be_bytes());
    b.extend_from_slice(b"IHDR");
    b.extend_from_slice(&width.to_be_bytes());
    b.extend_from_slice(&height.to_be_bytes());
    b.extend_from_slice(&[8, 6, 0, 0, 0]);
    b.extend_from_slice(&[0x12, 0x34, 0x56, 0x78]);
    b.extend(std::iter::repeat_n(0u8, 64));
    b
}
