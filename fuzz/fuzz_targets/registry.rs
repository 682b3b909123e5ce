//! Dataset registry parser: bytes -> `text_file::decode` -> `Registry::from_str`, and on
//! success the public renderers and look-ups.
#![no_main]
use std::path::Path;

use kdbench::data::registry::Registry;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("datasets.toml");
    let text = match kdbench::util::text_file::decode(data.to_vec(), path, "dataset registry") {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match Registry::from_str(&text, path) {
        Ok(reg) => {
            let _ = kdbench::data::registry_render::render_markdown(&reg);
            let keys: Vec<String> = reg.keys().iter().map(|k| k.to_string()).collect();
            for k in &keys {
                let ds = reg.require(k).expect("a listed key is present");
                for t in &ds.tasks {
                    assert!(ds.task(&t.key).is_some());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
