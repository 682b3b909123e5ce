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
//!
//! A file can also end properly but lack scans: a 350-byte progressive JPEG claiming
//! 14 573 × 4 353 pixels (found by fuzzing) holds one scan header and an end-of-image
//! marker, and "decoded" into 63 million blank pixels (0.9 s, 380 MB). Such a file cannot
//! hold its image: Huffman coding (every JPEG the decoder reads; it has no arithmetic
//! coding) spends at least one bit on each 8 × 8 block of each component, the DC
//! coefficient's code, in a complete image. So the data from the first scan to the
//! end-of-image marker must hold at least that many bits, counted from the frame header's
//! size and sampling factors. Real files are far above the bound (a uniform grey JPEG, the
//! most compressible, spends two bits a block: DC and end-of-block codes).

/// `Err` with the reason when `bytes` (a JPEG, starting with `FF D8`) end before the
/// end-of-image marker that closes its scans, or hold fewer bits between them than the
/// frame has blocks.
pub fn check_complete(bytes: &[u8]) -> Result<(), String> {
    let Some(header) = header(bytes) else {
        return Ok(());
    };
    let Some(end) = bytes[header.scan..]
        .windows(2)
        .position(|w| w == [0xFF, 0xD9])
    else {
        return Err(format!(
            "the JPEG data end after {} bytes, before its end-of-image marker: the file is \
             truncated (an interrupted copy or download?); copy it again or remove it",
            bytes.len()
        ));
    };
    if let Some(frame) = header.frame {
        let blocks = frame.blocks();
        let data_bits = 8 * end as u64;
        if data_bits < blocks {
            return Err(format!(
                "the JPEG claims {} x {} pixels ({blocks} blocks of 8 x 8, at least one bit \
                 each) but holds {end} bytes of scans: its image data are missing (a damaged \
                 or made-up file); export it again or remove it",
                frame.width, frame.height
            ));
        }
    }
    Ok(())
}

/// What the header before the first scan tells: where that scan starts and, when a
/// Huffman-coded frame header came before it, the frame.
struct Header {
    scan: usize,
    frame: Option<Frame>,
}

/// A frame header's size and each component's sampling factors (horizontal, vertical).
struct Frame {
    width: u32,
    height: u32,
    sampling: Vec<(u32, u32)>,
}

impl Frame {
    /// 8 × 8 blocks over all components, each component coded alone (an interleaved scan
    /// pads to whole MCUs, which only adds blocks): the fewest a complete image codes.
    fn blocks(&self) -> u64 {
        let h_max = self.sampling.iter().map(|s| s.0).max().unwrap_or(1);
        let v_max = self.sampling.iter().map(|s| s.1).max().unwrap_or(1);
        let side = |pixels: u32, factor: u32, max: u32| {
            u64::from(pixels)
                .saturating_mul(u64::from(factor))
                .div_ceil(u64::from(max))
                .div_ceil(8)
        };
        self.sampling
            .iter()
            .map(|&(h, v)| side(self.width, h, h_max) * side(self.height, v, v_max))
            .sum()
    }

    /// Reads a start-of-frame segment's payload (after its length); `None` when it is not
    /// one the bound holds for (a height of 0, told later by a DNL marker; a sampling
    /// factor of 0, which the decoder refuses; a payload cut short).
    fn parse(payload: &[u8]) -> Option<Frame> {
        let height = u32::from(u16::from_be_bytes([*payload.get(1)?, *payload.get(2)?]));
        let width = u32::from(u16::from_be_bytes([*payload.get(3)?, *payload.get(4)?]));
        let count = usize::from(*payload.get(5)?);
        let sampling = (0..count)
            .map(|c| {
                let hv = *payload.get(6 + 3 * c + 1)?;
                let (h, v) = (u32::from(hv >> 4), u32::from(hv & 0x0F));
                (h > 0 && v > 0).then_some((h, v))
            })
            .collect::<Option<Vec<_>>>()?;
        (width > 0 && height > 0 && !sampling.is_empty()).then_some(Frame {
            width,
            height,
            sampling,
        })
    }
}

/// The first start-of-scan marker's offset and the frame header before it, found by
/// walking the header's segments; `None` when there is no scan to find (not a JPEG, or the
/// data end first).
fn header(bytes: &[u8]) -> Option<Header> {
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return None;
    }
    let mut frame = None;
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
            0xDA => return Some(Header { scan: at, frame }),
            // An end of image before any scan: nothing to check, the decoder refuses it.
            0xD9 => return None,
            // Markers without a length: TEM, restart markers, a repeated start of image.
            0x01 | 0xD0..=0xD8 => at += 2,
            marker => {
                let len = u16::from_be_bytes([*bytes.get(at + 2)?, *bytes.get(at + 3)?]);
                // Huffman-coded frames: baseline, extended, progressive, lossless (which
                // codes every pixel, more than a bit a block).
                if (0xC0..=0xC3).contains(&marker) {
                    let end = (at + 2 + usize::from(len)).min(bytes.len());
                    frame = bytes.get(at + 4..end).and_then(Frame::parse);
                }
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
        let scan = header(&bytes).expect("the encoder writes a scan").scan;
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

    /// Sets the frame header's height and width, as a made-up header would claim them.
    fn claim(bytes: &mut [u8], w: u16, h: u16) {
        let sof = bytes
            .windows(2)
            .position(|m| m == [0xFF, 0xC0])
            .expect("a baseline frame header");
        bytes[sof + 5..sof + 7].copy_from_slice(&h.to_be_bytes());
        bytes[sof + 7..sof + 9].copy_from_slice(&w.to_be_bytes());
    }

    #[test]
    fn a_frame_claiming_more_blocks_than_its_data_have_bits_is_refused() {
        let mut bytes = jpeg(16, 16);
        claim(&mut bytes, 14_573, 4_353);
        let err = check_complete(&bytes).unwrap_err();
        assert!(err.contains("claims 14573 x 4353 pixels"), "{err}");
        assert!(err.contains("image data are missing"), "{err}");
    }

    #[test]
    fn the_most_compressible_real_jpegs_pass_with_room() {
        // One grey level: DC and end-of-block codes only, two bits a block per component
        // (Pillow's optimised baseline and progressive files of one grey, 512 to 4000 px,
        // measured 2.0-2.4 bits a block).
        for (w, h) in [(1, 1), (7, 9), (640, 480), (1024, 1024)] {
            let img = image::RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
            let mut out = std::io::Cursor::new(Vec::new());
            img.write_to(&mut out, image::ImageFormat::Jpeg).unwrap();
            let bytes = out.into_inner();
            assert_eq!(check_complete(&bytes), Ok(()), "{w} x {h}");
            let found = header(&bytes).unwrap();
            let blocks = found.frame.as_ref().unwrap().blocks();
            let data = bytes.len() - found.scan;
            assert!(
                8 * data as u64 >= 2 * blocks,
                "{w} x {h}: {data} B, {blocks} blocks"
            );
        }
    }

    #[test]
    fn blocks_count_each_component_at_its_own_sampling() {
        // 4:2:0: luma at full size, both chroma planes at half each way, sides rounded up.
        let frame = Frame {
            width: 17,
            height: 9,
            sampling: vec![(2, 2), (1, 1), (1, 1)],
        };
        assert_eq!(frame.blocks(), 3 * 2 + 2 * 2);
        // A DNL-sized frame (height 0) and a zero sampling factor are left to the decoder.
        assert!(Frame::parse(&[8, 0, 0, 0, 16, 1, 1, 0x11, 0]).is_none());
        assert!(Frame::parse(&[8, 0, 16, 0, 16, 1, 1, 0x10, 0]).is_none());
        assert!(Frame::parse(&[8, 0, 16, 0, 16, 1, 1, 0x11, 0]).is_some());
    }

    #[test]
    fn files_without_a_scan_are_left_to_the_decoder() {
        assert_eq!(check_complete(b"not a jpeg"), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8]), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8, 0xFF, 0xE0, 0x00]), Ok(()));
        assert_eq!(check_complete(&[0xFF, 0xD8, 0x12, 0x34]), Ok(()));
    }
}
