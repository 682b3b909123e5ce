//! Loading pre-trained weights into a model's variables: safetensors files, and PyTorch
//! `.pth`/`.pt` state dicts through candle's pickle reader, with a declared key mapping
//! (prefix renames from the file's names to the model's).
//!
//! Loading is all or nothing: every model variable must be found with its exact shape and
//! every tensor of the file must be used, else the error lists the missing keys, the
//! unexpected keys and the shape mismatches, and says where to declare a key mapping.
//! PyTorch's `num_batches_tracked` counters have no counterpart here and are skipped.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::VarMap;

use crate::error::{Error, Result};

/// A prefix rename applied to the file's keys: `from` at the start of a key becomes `to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRename {
    pub from: String,
    pub to: String,
}

/// Every tensor of a weights file, by name, as f32 on `device`.
pub fn read_tensors(path: &Path, device: &Device) -> Result<BTreeMap<String, Tensor>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let named: Vec<(String, Tensor)> = match ext {
        "safetensors" => candle_core::safetensors::load(path, device)
            .map_err(|e| unreadable(path, e))?
            .into_iter()
            .collect(),
        // candle's pickle reader panics on some malformed files (fuzzing found three).
        "pth" | "pt" | "bin" => crate::util::no_panic::catch(|| candle_core::pickle::read_all(path))
            .map_err(|msg| {
                Error::input(format!(
                    "{}: cannot read weights: not a well-formed PyTorch pickle ({msg})",
                    path.display()
                ))
            })?
            .map_err(|e| unreadable(path, e))?,
        _ => {
            return Err(Error::input(format!(
                "{}: unknown weights format `.{ext}` (use .safetensors, or a PyTorch state dict saved as .pth/.pt)",
                path.display()
            )))
        }
    };
    named
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(candle_core::DType::F32)?.to_device(device)?)))
        .collect()
}

fn unreadable(path: &Path, e: candle_core::Error) -> Error {
    Error::input(format!("{}: cannot read weights: {e}", path.display()))
}

/// The file's key after the renames (the first matching rename applies).
fn renamed(key: &str, renames: &[KeyRename]) -> String {
    for r in renames {
        if let Some(rest) = key.strip_prefix(&r.from) {
            return format!("{}{rest}", r.to);
        }
    }
    key.to_string()
}

/// Copy the tensors of `path` into the variables of `map`. File tensors whose (renamed)
/// key starts with one of `ignore` are left unused (e.g. a classifier `fc.` the backbone
/// does not have).
pub fn load_into(
    map: &VarMap,
    path: &Path,
    renames: &[KeyRename],
    ignore: &[String],
) -> Result<usize> {
    let device = map
        .data()
        .lock()
        .expect("var map")
        .values()
        .next()
        .map(|v| v.device().clone())
        .unwrap_or(Device::Cpu);
    let file: BTreeMap<String, Tensor> = read_tensors(path, &device)?
        .into_iter()
        .filter(|(k, _)| !k.ends_with("num_batches_tracked"))
        .map(|(k, t)| (renamed(&k, renames), t))
        .filter(|(k, _)| !ignore.iter().any(|p| k.starts_with(p.as_str())))
        .collect();
    assign(map, &file, &path.display().to_string())
}

/// Set every variable of `map` from `tensors` (by name), all or nothing: a missing,
/// unexpected or wrongly shaped tensor is a bad-input error listing them (`source` names
/// where the tensors came from).
pub fn assign(map: &VarMap, file: &BTreeMap<String, Tensor>, source: &str) -> Result<usize> {
    let vars = map.data().lock().expect("var map");
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for (name, var) in vars.iter() {
        match file.get(name) {
            None => missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => mismatched.push(format!(
                "{name}: file {:?}, model {:?}",
                t.dims(),
                var.dims()
            )),
            Some(_) => {}
        }
    }
    let unexpected: Vec<&String> = file.keys().filter(|k| !vars.contains_key(*k)).collect();
    if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
        let mut msg = format!("{source}: the weights do not fit the model");
        let mut list = |title: &str, items: Vec<String>| {
            if !items.is_empty() {
                msg.push_str(&format!(
                    "\n  {title} ({}): {}",
                    items.len(),
                    items.join(", ")
                ));
            }
        };
        list(
            "missing keys (the model has them, the file does not)",
            missing,
        );
        list(
            "unexpected keys (the file has them, the model does not)",
            unexpected.into_iter().cloned().collect(),
        );
        list("shape mismatches", mismatched);
        msg.push_str("\n  declare prefix renames from the file's names to the model's where only the names differ (rename = [{ from = \"module.\", to = \"\" }]), and ignore = [\"fc.\"] for file tensors the model does not use");
        return Err(Error::input(msg));
    }
    for (name, var) in vars.iter() {
        var.set(&file[name])?;
    }
    Ok(vars.len())
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use candle_core::Device;

    use super::*;
    use crate::model::init::SeededInit;
    use crate::model::layers::batch_norm::batch_norm2d;
    use crate::model::layers::conv::conv2d_no_bias;

    /// A conv + batch norm model's variables.
    fn model() -> VarMap {
        let map = VarMap::new();
        let vb = SeededInit::var_builder(&map, 0, &Device::Cpu);
        conv2d_no_bias(2, 3, 3, 1, 1, vb.pp("conv1")).unwrap();
        batch_norm2d(3, vb.pp("bn1")).unwrap();
        map
    }

    fn binunicode(out: &mut Vec<u8>, s: &str) {
        out.push(b'X');
        out.extend((s.len() as u32).to_le_bytes());
        out.extend(s.as_bytes());
    }

    fn binint(out: &mut Vec<u8>, v: i32) {
        out.push(b'J');
        out.extend(v.to_le_bytes());
    }

    /// A PyTorch state dict as `torch.save` writes it (zip of a protocol-2 pickle whose
    /// tensors are `torch._utils._rebuild_tensor_v2` of persistent storages, plus one raw
    /// little-endian storage file per tensor), written here so the test needs no Python.
    fn write_pth(path: &Path, tensors: &[(&str, Vec<usize>, Vec<f32>)]) {
        let mut pkl = vec![0x80, 2, b'}', b'('];
        for (i, (name, shape, _)) in tensors.iter().enumerate() {
            binunicode(&mut pkl, name);
            pkl.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            pkl.push(b'(');
            binunicode(&mut pkl, "storage");
            pkl.extend(b"ctorch\nFloatStorage\n");
            binunicode(&mut pkl, &i.to_string());
            binunicode(&mut pkl, "cpu");
            binint(&mut pkl, shape.iter().product::<usize>() as i32);
            pkl.extend(b"tQ");
            binint(&mut pkl, 0);
            pkl.push(b'(');
            for &d in shape {
                binint(&mut pkl, d as i32);
            }
            pkl.extend(b"t(");
            let mut stride = 1;
            let mut strides = vec![0; shape.len()];
            for (s, &d) in strides.iter_mut().zip(shape).rev() {
                *s = stride;
                stride *= d;
            }
            for s in strides {
                binint(&mut pkl, s as i32);
            }
            pkl.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
        }
        pkl.extend(b"u.");
        let file = std::fs::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        zip.start_file("archive/data.pkl", opts).unwrap();
        zip.write_all(&pkl).unwrap();
        for (i, (_, _, values)) in tensors.iter().enumerate() {
            zip.start_file(format!("archive/data/{i}"), opts).unwrap();
            for v in values {
                zip.write_all(&v.to_le_bytes()).unwrap();
            }
        }
        zip.finish().unwrap();
    }

    /// The model's state with PyTorch's names and a `num_batches_tracked` counter.
    fn state(prefix: &str, conv_name: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let ramp = |n: usize| (0..n).map(|i| i as f32 * 0.25 - 1.0).collect::<Vec<f32>>();
        vec![
            (
                format!("{prefix}{conv_name}.weight"),
                vec![3, 2, 3, 3],
                ramp(54),
            ),
            (format!("{prefix}bn1.weight"), vec![3], ramp(3)),
            (format!("{prefix}bn1.bias"), vec![3], ramp(3)),
            (format!("{prefix}bn1.running_mean"), vec![3], ramp(3)),
            (
                format!("{prefix}bn1.running_var"),
                vec![3],
                vec![1.0, 2.0, 3.0],
            ),
        ]
    }

    fn write_state(path: &Path, st: &[(String, Vec<usize>, Vec<f32>)]) {
        let refs: Vec<(&str, Vec<usize>, Vec<f32>)> = st
            .iter()
            .map(|(n, s, v)| (n.as_str(), s.clone(), v.clone()))
            .collect();
        write_pth(path, &refs);
    }

    #[test]
    fn pth_with_a_key_mapping_loads_every_value() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teacher.pth");
        write_state(&path, &state("module.", "conv1"));
        let map = model();
        let renames = [KeyRename {
            from: "module.".into(),
            to: String::new(),
        }];
        assert_eq!(load_into(&map, &path, &renames, &[]).unwrap(), 5);
        let vars = map.data().lock().unwrap();
        let w: Vec<f32> = vars["conv1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(w[..3], [-1.0, -0.75, -0.5]);
        let rv: Vec<f32> = vars["bn1.running_var"].as_tensor().to_vec1().unwrap();
        assert_eq!(rv, vec![1.0, 2.0, 3.0]);
    }

    /// Wrong names are listed both ways, with the fix; nothing is loaded.
    #[test]
    fn pth_with_wrong_key_names_lists_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("teacher.pth");
        write_state(&path, &state("", "features.0"));
        let map = model();
        let before: Vec<f32> = map.data().lock().unwrap()["conv1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let err = load_into(&map, &path, &[], &[]).unwrap_err().to_string();
        assert!(err.contains("teacher.pth"), "{err}");
        assert!(
            err.contains("missing keys") && err.contains("conv1.weight"),
            "{err}"
        );
        assert!(
            err.contains("unexpected keys") && err.contains("features.0.weight"),
            "{err}"
        );
        assert!(err.contains("prefix renames"), "{err}");
        let after: Vec<f32> = map.data().lock().unwrap()["conv1.weight"]
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(before, after);
    }

    #[test]
    fn shape_mismatches_and_unknown_formats_are_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let mut st: std::collections::HashMap<String, Tensor> = std::collections::HashMap::new();
        for (name, shape, values) in state("", "conv1") {
            let shape = if name == "bn1.bias" { vec![4] } else { shape };
            let values = if name == "bn1.bias" {
                vec![0.0; 4]
            } else {
                values
            };
            st.insert(name, Tensor::from_vec(values, shape, &Device::Cpu).unwrap());
        }
        candle_core::safetensors::save(&st, &path).unwrap();
        let err = load_into(&model(), &path, &[], &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("shape mismatches (1): bn1.bias: file [4], model [3]"),
            "{err}"
        );
        let other = dir.path().join("w.ckpt");
        std::fs::write(&other, b"x").unwrap();
        let err = load_into(&model(), &other, &[], &[]).unwrap_err();
        assert!(
            matches!(err, Error::BadInput(_)) && err.to_string().contains("unknown weights format")
        );
    }
}

#[cfg(test)]
mod fuzz_regressions {
    /// The inputs on which `cargo fuzz run weights` found candle's pickle reader panicking
    /// (fuzz/regressions/weights/): each is now bad input with the file named.
    #[test]
    fn malformed_pickles_are_bad_input_not_panics() {
        let inputs = crate::util::fuzz_regressions::inputs("weights", |_| true);
        for path in &inputs {
            let r = super::read_tensors(path, &candle_core::Device::Cpu);
            match r {
                Err(crate::error::Error::BadInput(msg)) => {
                    assert!(msg.contains(&path.display().to_string()), "{msg}")
                }
                Err(other) => panic!("{}: {other}", path.display()),
                Ok(t) => panic!("{}: read {} tensors from garbage", path.display(), t.len()),
            }
        }
        assert_eq!(inputs.len(), 9);
    }
}
