//! Whether a JPEG file holds all of its image: a truncated JPEG (an interrupted copy or
//! download) must be bad input, not training data.
//!
//! The decoder behind the `image` crate (zune-jpeg, in its lenient mode, which `image` does
//! not let us change) decodes a JPEG cut short without an error and fills the missing rows
//! with grey; a 538-byte file whose header claims 493 × 14 337 pixels (found by fuzzing)
//! "decoded" that way into 7 million grey pixels. PIL, which PyTorch data loaders use,
//! refuses such files ("image file is truncated"), and so do we. The test is structural:
//! the data must reach an end-of-image marker (`FF D9`) after the first start-of-scan
//! (`FF DA`). Entropy-coded data cannot contain `FF D9` (a data byte `FF` is stuffed as
//! `FF 00`), and the thumbnail an Exif segment may carry, with its own `FF D9`, lies in the
//! header, before the first scan, which is found by walking the header's segments by their
//! lengths. Bytes after the end-of-image marker (some cameras append data) are allowed. A
//! file in which no scan is found is left to the decoder, which then reports its own error.

/// `Err` with the reason when `bytes` (a JPEG, starting with `FF D8`) end before the
/// end-of-image marker that closes its scans.
pub fn check_complete(bytes: &[u8]) -> Result<(), String> {
    let Some(scan) = first_scan(bytes) else {
        return Ok(());
    };
    let closed = bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9]);
    if closed {
        Ok(())
    } else {
        Err(format!(
            "the JPEG data end after {} bytes, before its end-of-image marker: the file is \
             truncated (an interrupted copy or download?); copy it again or remove it",
            bytes.len()
        ))
    }
}

/// Offset of the first start-of-scan marker, found by walking the header's segments;
/// `None` when there is none to find (not a JPEG, or the data end first).
fn first_scan(bytes: &[u8]) -> Option<usize> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut at = 2;
    loop {
        // Bytes where a marker should start are skipped up to the next FF, as the decoder
        // does (it warns and decodes on).
        while *bytes.get(at)? != 0xFF {
            at += 1;
        }
        // Any number of fill bytes (FF) may precede a marker.
        while *bytes.get(at + 1)? == 0xFF {
            at += 1;
        }
        match bytes[at + 1] {
            0xDA => return Some(at),
            // An end of image before any scan: nothing to check, the decoder refuses it.
            0xD9 => return None,
            // Markers without a length: TEM, restart markers, a repeated start of image.
            0x01 | 0xD0..=0xD8 => at += 2,
            _ => {
                let len = u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]);
                at += 2 + usize::from(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real JPEG, as the `image` crate's encoder writes it.
    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    #[test]
    fn a_whole_jpeg_passes_and_trailing_bytes_are_allowed() {
        let mut bytes = jpeg(40, 30);
        assert_eq!(bytes[bytes.len() - 2..], [0xFF, 0xD9]);
        assert_eq!(check_complete(&bytes), Ok(()));
        bytes.extend_from_slice(b"appended by a camera");
        assert_eq!(check_complete(&bytes), Ok(()));
    }

    #[test]
    fn every_cut_inside_the_scan_is_refused() {
        let bytes = jpeg(40, 30);
        let scan = first_scan(&bytes).expect("the encoder writes a scan");
        // From the first cut that leaves the start-of-scan marker whole (before it, the
        // file has no scan, which the decoder refuses).
        for len in scan + 2..bytes.len() {
            let err = check_complete(&bytes[..len]).unwrap_err();
            assert!(err.contains(&format!("after {len} bytes")), "{err}");
        }
    }

    #[test]
    fn a_thumbnail_end_marker_in_the_header_does_not_count() {
        let whole = jpeg(40, 30);
        // An APP1 segment holding a whole small JPEG (as an Exif thumbnail does), then the
        // main image cut inside its scan.
        let thumb = jpeg(4, 4);
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xE1];
        bytes.extend_from_slice(&((thumb.len() + 2) as u16).to_be_bytes());
        bytes.extend_from_slice(&thumb);
        bytes.extend_from_slice(&whole[2..]);
        assert_eq!(check_complete(&bytes), Ok(()));
        let cut = bytes.len() - 20;
        assert!(check_complete(&bytes[..cut]).is_err());
    }

    #[test]
    fn files_without_a_scan_are_left_to_the_decoder() {
        assert_eq!(check_complete(b"not a jpeg"), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8]), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8, 0x12, 0x34]), Ok(()));
    }
}
