//! Image decoder: `data::image_folder::decode_bytes`, the function every image-folder file
//! goes through (format told by content, PNG or JPEG, grey expanded to RGB, resampled). The
//! output size varies with the input length so both down- and up-sampling run. Folder
//! indexing is plain path handling and is covered by the integration tests instead.
#![no_main]
use std::path::Path;

use kdbench::data::image_folder::decode_bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let size = 1 + data.len() % 48;
    if let Ok(pixels) = decode_bytes(data, size, Path::new("fuzz.png")) {
        assert_eq!(pixels.len(), 3 * size * size, "one decoded image of 3 x size x size");
    }
});
