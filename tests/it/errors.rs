//! Bad experiment files and flags: each gives one clear message naming the file, line and
//! column (or flag) and exits with 2, without panicking.

use crate::common::{assert_bad_input, tiny_experiment, Workspace};

#[test]
fn malformed_toml_names_file_line_and_column() {
    let ws = Workspace::new();
    ws.write(
        "exp.toml",
        "name = \"x\"\nseeds = [0\nstages = [\"decompose\"]\n",
    );
    let o = ws.run(&["plan", "exp.toml"]);
    // The parser notices the missing `]` where the next line starts.
    assert_bad_input(&o, &["exp.toml:3:1:", "missing comma"]);
}

#[test]
fn unknown_key_is_reported_with_its_location() {
    let ws = Workspace::new();
    let text = tiny_experiment("e", &["stl"], &[0]).replace("epochs = 2", "epochs = 2\nepoch = 3");
    ws.write("exp.toml", &text);
    let o = ws.run(&["plan", "exp.toml"]);
    assert_bad_input(&o, &["exp.toml:", "unknown field `epoch`"]);
}

#[test]
fn unknown_method_lists_known_methods() {
    let ws = Workspace::new();
    ws.write("exp.toml", &tiny_experiment("e", &["stl", "mtll"], &[0]));
    let o = ws.run(&["plan", "exp.toml"]);
    assert_bad_input(&o, &["exp.toml:6:", "unknown method `mtll`", "lorkd"]);
}

#[test]
fn unknown_dataset_lists_known_sets() {
    let ws = Workspace::new();
    let text = tiny_experiment("e", &["stl"], &[0])
        .replace("pretrain = [\"medmnist\"]", "pretrain = [\"medmnistt\"]");
    ws.write("exp.toml", &text);
    let o = ws.run(&["plan", "exp.toml"]);
    assert_bad_input(
        &o,
        &["exp.toml:7:", "unknown data set `medmnistt`", "radimagenet"],
    );
}

#[test]
fn out_of_range_value_is_rejected() {
    let ws = Workspace::new();
    let text = tiny_experiment("e", &["stl"], &[0]).replace("difficulty = 0.5", "difficulty = 1.5");
    ws.write("exp.toml", &text);
    let o = ws.run(&["run", "exp.toml"]);
    assert_bad_input(
        &o,
        &["exp.toml:", "profile.smoke.difficulty must be within 0..=1"],
    );
}

#[test]
fn missing_data_dir_points_to_smoke_profile() {
    let ws = Workspace::new();
    let text = tiny_experiment("e", &["stl"], &[0])
        .replace("data = \"synthetic\"", "data = \"real\"")
        .replace("difficulty = 0.5\n", "");
    ws.write("exp.toml", &text);
    let o = ws.run(&["run", "exp.toml", "--data-dir", "no-such-dir"]);
    assert_bad_input(
        &o,
        &[
            "no-such-dir/medmnist/pathmnist.npz",
            "inputs are missing",
            "--profile smoke",
        ],
    );
    assert!(
        !ws.path().join("results").exists(),
        "nothing may be written on bad input"
    );
}

#[test]
fn missing_experiment_file_and_unknown_profile() {
    let ws = Workspace::new();
    assert_bad_input(&ws.run(&["plan", "nope.toml"]), &["nope.toml", "not found"]);
    ws.write("exp.toml", &tiny_experiment("e", &["stl"], &[0]));
    assert_bad_input(
        &ws.run(&["plan", "exp.toml", "--profile", "paper"]),
        &["no profile `paper`"],
    );
}

#[test]
fn unknown_subcommand_flag_exits_2() {
    let ws = Workspace::new();
    let o = ws.run(&["run", "--frobnicate"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unknown_normalisation_is_rejected() {
    let ws = Workspace::new();
    let text = tiny_experiment("e", &["stl"], &[0]).replace(
        "difficulty = 0.5",
        "difficulty = 0.5\nnormalize = \"zscore\"",
    );
    ws.write("exp.toml", &text);
    assert_bad_input(
        &ws.run(&["plan", "exp.toml"]),
        &["exp.toml:", "profile.smoke.normalize", "per_image"],
    );
}
