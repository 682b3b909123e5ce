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

/// Files that are not experiment files at all, and absurd sizes: each is bad input at a
/// location, in well under a second, never a hang or the OS killing the process for memory.
#[test]
fn files_given_by_mistake_and_absurd_grids_are_bad_input_with_a_location() {
    let ws = Workspace::new();
    let write_bytes =
        |name: &str, bytes: &[u8]| std::fs::write(ws.path().join(name), bytes).unwrap();
    write_bytes("latin1.toml", b"name = \"x\"\n# caf\xe9 au lait\n");
    assert_bad_input(
        &ws.run(&["plan", "latin1.toml"]),
        &[
            "latin1.toml:2:6: byte 0xe9 at byte offset 16 is not UTF-8",
            "iconv",
        ],
    );
    write_bytes("binary.toml", b"\x7fELF\x02\x01\x01\x00\x00\x00");
    assert_bad_input(
        &ws.run(&["plan", "binary.toml"]),
        &["binary.toml:1:8: a NUL byte at byte offset 7: this is a binary file"],
    );
    write_bytes("huge.toml", &vec![b'#'; 100 << 20]);
    assert_bad_input(&ws.run(&["plan", "huge.toml"]), &["huge.toml: over 4 MiB"]);
    write_bytes("bad-registry.toml", b"[[dataset]]\nkey = \"m\xf6\"\n");
    ws.write("exp.toml", &tiny_experiment("e", &["stl"], &[0]));
    assert_bad_input(
        &ws.run(&["--registry", "bad-registry.toml", "plan", "exp.toml"]),
        &["bad-registry.toml:2:9: byte 0xf6 at byte offset 20 is not UTF-8; save the dataset registry as UTF-8"],
    );
    let rank =
        tiny_experiment("e", &["lorkd"], &[0]) + "\n[method.lorkd]\nkd = \"none\"\nrank = 100000\n";
    ws.write("rank.toml", &rank);
    assert_bad_input(
        &ws.run(&["plan", "rank.toml"]),
        &[
            "rank.toml:6:",
            "rank 100000",
            "widest layer, 8 channels",
            "rank ≤ 8",
        ],
    );
    let seeds: Vec<u64> = (0..30_000).collect();
    ws.write("seeds.toml", &tiny_experiment("e", &["mtl"], &seeds));
    assert_bad_input(
        &ws.run(&["plan", "seeds.toml"]),
        &["seeds.toml: the grid expands to more than 20000 runs (30000 seeds"],
    );
}
