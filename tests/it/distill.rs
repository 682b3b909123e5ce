//! The foundation stage, the distilling methods and expert export through the binary: a
//! teacher is trained (or loaded from weights), STL-KD, MTL-KD (logit KD) and LoRKD learn
//! from it, a LoRKD expert is exported, checked and run by `harness predict`; weights with
//! the wrong key names and inconsistent KD settings are refused with their fix.

use std::path::Path;

use kdbench::data::numpy::{write_npz, NpyArray, NpyData};

use crate::common::{
    assert_bad_input, distill_experiment, stderr, stdout, tiny_experiment, Workspace,
};

/// Run id of the only run whose spec has `method`.
fn run_of(ws: &Workspace, method: &str) -> String {
    let mut found = Vec::new();
    for e in std::fs::read_dir(ws.path().join("results"))
        .unwrap()
        .flatten()
    {
        let spec = e.path().join("spec.json");
        if let Ok(text) = std::fs::read_to_string(&spec) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            if v["method"] == method {
                found.push(e.file_name().to_string_lossy().to_string());
            }
        }
    }
    assert_eq!(found.len(), 1, "runs of {method}: {found:?}");
    found.remove(0)
}

fn write_images(path: &Path, n: usize, side: usize) {
    let pixels: Vec<u8> = (0..n * side * side * 3)
        .map(|i| (i * 37 % 251) as u8)
        .collect();
    write_npz(
        path,
        &[(
            "test_images",
            NpyArray::new(vec![n, side, side, 3], NpyData::U8(pixels)).unwrap(),
        )],
    )
    .unwrap();
}

#[test]
fn teacher_distillation_export_and_predict() {
    let ws = Workspace::new();
    ws.write(
        "exp.toml",
        &distill_experiment(
            "distil",
            &["stlkd", "mtlkd", "lorkd"],
            "[\"foundation\", \"decompose\"]",
            "\n[method.mtlkd]\nkd = \"logit\"\n\n[method.lorkd]\nrank = 2\n\n[profile.smoke.method.lorkd]\nlora_alpha = 4.0\nkd_weight = 0.5\n",
        ),
    );
    let o = ws.run(&["run", "exp.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // 1 foundation + 10 STL-KD + MTL-KD + LoRKD.
    assert!(stderr(&o).contains("13 trained"), "{}", stderr(&o));
    let again = ws.run(&["run", "exp.toml"]);
    assert!(
        stderr(&again).contains("0 trained, 13 cached"),
        "{}",
        stderr(&again)
    );

    let lorkd = run_of(&ws, "lorkd");
    // The settings of [method.lorkd], then [profile.smoke.method.lorkd], are in the spec.
    let spec: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("results").join(&lorkd).join("spec.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        spec["options"]["low_rank"],
        serde_json::json!({"rank": 2, "alpha": 4.0})
    );
    assert_eq!(
        spec["options"]["kd"],
        serde_json::json!({"kind": "feature", "weight": 0.5, "temperature": 10.0})
    );
    let mtlkd = run_of(&ws, "mtlkd");
    let spec =
        std::fs::read_to_string(ws.path().join("results").join(&mtlkd).join("spec.json")).unwrap();
    assert!(spec.contains("\"kind\": \"logit\""), "{spec}");
    let o = ws.run(&[
        "export",
        &lorkd[..8],
        "--task",
        "colon",
        "--out",
        "colon.safetensors",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}{}", out, stderr(&o));
    for needle in [
        "LoRKD expert for task `colon`",
        "SYNTHETIC",
        "merge check: max relative logit difference",
        "no extra parameters",
        "foundation `teacher` + head",
    ] {
        assert!(
            out.contains(needle),
            "export output lacks `{needle}`:\n{out}"
        );
    }

    write_images(&ws.path().join("imgs.npz"), 3, 20);
    let o = ws.run(&["predict", "colon.safetensors", "imgs.npz"]);
    let csv = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("SYNTHETIC"), "{}", stderr(&o));
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 4, "{csv}");
    // Colon has 9 classes: p0..p8, probabilities that sum to 1.
    assert!(lines[0].starts_with("input,class,probability,p0") && lines[0].ends_with(",p8"));
    let probs: f64 = lines[1]
        .split(',')
        .skip(3)
        .map(|v| v.parse::<f64>().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-4, "{}", lines[1]);

    let o = ws.run(&["export", &lorkd, "--out", "x.safetensors"]);
    assert_bad_input(&o, &["10 tasks", "--task"]);
    assert_bad_input(&ws.run(&["export", "ffffffff"]), &["no run `ffffffff`"]);
    assert_bad_input(
        &ws.run(&["predict", "exp.toml", "imgs.npz"]),
        &["not a kdbench expert file"],
    );
}

#[test]
fn foundation_loads_weights_with_a_key_mapping() {
    let ws = Workspace::new();
    // A teacher trained here, exported: `backbone.*` and `head.*` keys.
    ws.write(
        "teach.toml",
        &distill_experiment("teach", &["stl"], "[\"foundation\"]", ""),
    );
    let o = ws.run(&["run", "teach.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = run_of(&ws, "foundation");
    let o = ws.run(&[
        "export",
        &id,
        "--task",
        "chest",
        "--out",
        "teacher.safetensors",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let loaded = |name: &str, mapping: &str| {
        distill_experiment(name, &["lorkd"], "[\"foundation\", \"decompose\"]", "")
            .replace(
                "[profile.smoke.foundation.teacher.model]",
                &format!("[profile.smoke.foundation.teacher]\nweights = \"teacher.safetensors\"\nepochs = 1\n{mapping}\n\n[profile.smoke.foundation.teacher.model]"),
            )
    };
    ws.write(
        "good.toml",
        &loaded(
            "good",
            "rename = [{ from = \"backbone.\", to = \"\" }]\nignore = [\"head.\"]",
        ),
    );
    let o = ws.run(&["run", "good.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 trained"), "{}", stderr(&o));

    // Without the mapping the keys do not match: the run fails listing them, and the
    // distilling run that needs it is skipped.
    ws.write("bad.toml", &loaded("bad", ""));
    let o = ws.run(&["run", "bad.toml"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    for needle in [
        "teacher.safetensors: the weights do not fit the model",
        "missing keys",
        "conv1.weight",
        "unexpected keys",
        "backbone.conv1.weight",
        "rename",
        "skipped",
    ] {
        assert!(err.contains(needle), "stderr lacks `{needle}`:\n{err}");
    }
    // The skipped run is recorded as such, with the reason, for `status` and `regress`.
    let o = ws.run(&["status"]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let skipped = out
        .lines()
        .find(|l| l.contains("skipped"))
        .unwrap_or_else(|| panic!("no skipped run in:\n{out}"));
    assert!(
        skipped.contains("lorkd") && skipped.contains("did not succeed"),
        "{skipped}"
    );
}

#[test]
fn inconsistent_distillation_settings_are_bad_input() {
    let ws = Workspace::new();
    let decompose = "[\"decompose\"]";
    ws.write(
        "a.toml",
        &distill_experiment(
            "a",
            &["stl"],
            decompose,
            "\n[method.stl]\nkd = \"feature\"\n",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "a.toml"]),
        &["a.toml:", "stl has no KD settings"],
    );
    ws.write("b.toml", &tiny_experiment("b", &["lorkd"], &[0]));
    assert_bad_input(
        &ws.run(&["run", "b.toml"]),
        &[
            "b.toml:",
            "distils from a foundation model",
            "grid.foundation",
        ],
    );
    ws.write(
        "c.toml",
        &distill_experiment(
            "c",
            &["mtlkd"],
            decompose,
            "\n[method.mtlkd]\nkd = \"soft\"\n",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "c.toml"]),
        &["c.toml:", "method.mtlkd.kd: unknown variant `soft`"],
    );
    ws.write(
        "d.toml",
        &distill_experiment("d", &["mtl"], decompose, "\n[method.mtl]\nrank = 2\n"),
    );
    assert_bad_input(
        &ws.run(&["run", "d.toml"]),
        &["mtl has no low-rank expert settings (`rank` applies to lorkd)"],
    );
    ws.write(
        "e.toml",
        &distill_experiment("e", &["mtlkd"], decompose, "").replace(
            "foundation = [\"teacher\"]",
            "foundation = [\"biomedclip\"]",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "e.toml"]),
        &["`biomedclip` is not defined for profile `smoke`"],
    );
    ws.write(
        "f.toml",
        &distill_experiment("f", &["mtlkd"], decompose, "").replace(
            "[profile.smoke.foundation.teacher.model]",
            "[profile.smoke.foundation.teacher]\nweights = \"nowhere.pth\"\n\n[profile.smoke.foundation.teacher.model]",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "f.toml"]),
        &["nowhere.pth", "does not exist"],
    );
}

#[test]
fn a_vit_tower_teaches_and_vit_layouts_are_checked() {
    let ws = Workspace::new();
    let vit = |name: &str, model: &str| {
        distill_experiment(name, &["mtlkd"], "[\"foundation\", \"decompose\"]", "").replace(
            "arch = \"resnet_bottleneck\"\nwidths = [4, 8]\ndepths = [1, 1]",
            model,
        )
    };
    ws.write(
        "vit.toml",
        &vit(
            "vit",
            "arch = \"vit\"\nwidths = [8]\ndepths = [1]\npatch_size = 4\nheads = 2",
        ),
    );
    let o = ws.run(&["run", "vit.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 trained"), "{}", stderr(&o));

    ws.write(
        "nohead.toml",
        &vit(
            "nohead",
            "arch = \"vit\"\nwidths = [8]\ndepths = [1]\npatch_size = 4",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "nohead.toml"]),
        &[
            "nohead.toml:",
            "foundation.teacher.model: a vit needs patch_size and heads",
        ],
    );
    ws.write(
        "patch.toml",
        &vit(
            "patch",
            "arch = \"vit\"\nwidths = [8]\ndepths = [1]\npatch_size = 5\nheads = 2",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "patch.toml"]),
        &["patch_size 5 must divide"],
    );
    ws.write(
        "student.toml",
        &distill_experiment("student", &["lorkd"], "[\"decompose\"]", "").replacen(
            "arch = \"resnet\"\nwidths = [4, 8]\ndepths = [1, 1]",
            "arch = \"vit\"\nwidths = [8]\ndepths = [1]\npatch_size = 4\nheads = 2",
            1,
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "student.toml"]),
        &["low-rank experts on convolutions", "vit"],
    );
}

#[test]
fn kf_trains_and_exports_its_two_network_expert() {
    let ws = Workspace::new();
    ws.write(
        "kf.toml",
        &distill_experiment("kf", &["kf"], "[\"foundation\", \"decompose\"]", ""),
    );
    let o = ws.run(&["run", "kf.toml"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("2 trained"), "{}", stderr(&o));
    let kf = run_of(&ws, "kf");
    // InfoMax matches both stages of teacher and student (fewer than the default 3), each
    // through its own projection; the settings are part of the run's spec.
    let dir = ws.path().join("results").join(&kf);
    let spec = std::fs::read_to_string(dir.join("spec.json")).unwrap();
    assert!(spec.contains("\"infomax_stages\": 3"), "{spec}");
    let ckpt = candle_core::safetensors::load(
        dir.join("checkpoint.safetensors"),
        &candle_core::Device::Cpu,
    )
    .unwrap();
    let mut projections: Vec<&str> = ckpt
        .keys()
        .filter_map(|k| k.strip_prefix("kf_teacher_proj."))
        .filter_map(|k| k.split('.').next())
        .collect();
    projections.sort();
    projections.dedup();
    assert_eq!(projections, ["0", "1"]);
    // teacher stage 2 (8 × 4 bottleneck channels) → student stage 2 (8 channels)
    assert_eq!(ckpt["kf_teacher_proj.1.fc1.weight"].dims(), [8, 32]);
    let o = ws.run(&[
        "export",
        &kf,
        "--task",
        "chest",
        "--out",
        "chest.safetensors",
    ]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    for needle in [
        "KF expert for task `chest`",
        "merge check",
        "the task-specific network is extra",
    ] {
        assert!(out.contains(needle), "{out}");
    }
    write_images(&ws.path().join("imgs.npz"), 2, 16);
    let o = ws.run(&["predict", "chest.safetensors", "imgs.npz"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 3);

    ws.write(
        "feature.toml",
        &distill_experiment(
            "feature",
            &["kf"],
            "[\"decompose\"]",
            "\n[method.kf]\nkd = \"feature\"\n",
        ),
    );
    assert_bad_input(
        &ws.run(&["run", "feature.toml"]),
        &["feature.toml:", "KF distils the teacher's logits"],
    );
    for (extra, needles) in [
        (
            "\n[method.kf]\ninfomax_stages = 0\n",
            ["method.kf.infomax_stages", "kf.toml:"],
        ),
        (
            "\n[method.kf]\nlabel_smoothing = 1.0\n",
            ["method.kf.label_smoothing must be in [0, 1)", "kf.toml:"],
        ),
        (
            "\n[method.kf]\ninfomin_weight = -1.0\n",
            ["method.kf.infomin_weight", "kf.toml:"],
        ),
    ] {
        ws.write(
            "kf.toml",
            &distill_experiment("kf", &["kf"], "[\"decompose\"]", extra),
        );
        assert_bad_input(&ws.run(&["run", "kf.toml"]), &needles);
    }
    ws.write(
        "mtl.toml",
        &(tiny_experiment("m", &["mtl"], &[0]) + "\n[method.mtl]\naux_weight = 1.0\n"),
    );
    assert_bad_input(
        &ws.run(&["run", "mtl.toml"]),
        &[
            "mtl.toml:",
            "aux_weight: mtl has no KF settings (`aux_weight` applies to kf)",
        ],
    );
}
