//! Experiment-file parser + validator: bytes -> `text_file::decode` -> `spec::validate::parse`
//! against the repository's datasets.toml and the real method catalogue.
#![no_main]
use std::path::Path;
use std::sync::OnceLock;

use kdbench::data::registry::Registry;
use libfuzzer_sys::fuzz_target;

fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(|| {
        Registry::from_str(include_str!("../../datasets.toml"), Path::new("datasets.toml"))
            .expect("the repository's datasets.toml parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = Path::new("experiments/fuzz.toml");
    let decoded = kdbench::util::text_file::decode(data.to_vec(), path, "experiment file");
    // Oracle: decode accepts exactly the UTF-8 inputs without NUL bytes.
    let expect_ok = std::str::from_utf8(data).is_ok() && !data.contains(&0);
    assert_eq!(decoded.is_ok(), expect_ok, "text_file::decode disagrees with from_utf8");
    let text = match decoded {
        Ok(t) => t,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    match kdbench::spec::validate::parse(&text, path, registry(), &kdbench::method::CATALOG) {
        Ok(exp) => {
            let _ = format!("{exp:?}");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
