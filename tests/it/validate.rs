//! Unit tests of the experiment-file validator (`kdbench::spec::validate`) through its
//! public [`parse`]:
//! one test (at least) per place that returns an error, asserting the kind (bad input,
//! exit code 2), the `exp.toml:LINE:COL:` location where the validator gives one and the
//! message's key phrase; and positive tests of what valid files resolve to. They pin the
//! current behaviour so that refactors of the validator can show they changed nothing.

use std::path::Path;
use std::sync::OnceLock;

use kdbench::data::registry::Registry;
use kdbench::data::settings::Normalize;
use kdbench::data::DataKind;
use kdbench::error::Error;
use kdbench::method::CATALOG;
use kdbench::spec::options::{
    KdConfig, KfConfig, LambdaUpdate, LowRankConfig, MocoConfig, StepDecay,
};
use kdbench::spec::run::{Arch, OptimizerKind, Schedule, Stage, Stem};
use kdbench::spec::validate::{load, parse, Experiment};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The repository's dataset registry (read once).
fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        Registry::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml"))
            .expect("datasets.toml loads")
    })
}

/// A valid experiment with one method (STL), one profile and no foundation model.
const MINIMAL: &str = r#"name = "vtest"
description = "validator tests"
seeds = [0, 1]
stages = ["decompose"]

[grid]
method = ["stl"]
pretrain = ["medmnist"]

[profile.smoke]
data = "synthetic"
image_size = 28
epochs = 2
batch_size = 8

[profile.smoke.model]
arch = "resnet"
widths = [8, 16]
depths = [1, 1]

[profile.smoke.optim]
name = "sgd"
lr = 0.1
"#;

/// The grid line of [`base`]: every method of the paper.
const ALL_METHODS: &str =
    r#"method = ["stl", "mtl", "mocomtl", "alignedmtl", "stlkd", "mtlkd", "kf", "lorkd"]"#;

/// The student's model table of [`MINIMAL`] (to replace it whole).
const STUDENT: &str =
    "[profile.smoke.model]\narch = \"resnet\"\nwidths = [8, 16]\ndepths = [1, 1]\n";

/// The foundation model table [`base`] appends.
const TEACHER_HEADER: &str = "[profile.smoke.foundation.teacher.model]";

/// A valid experiment with all eight methods, the foundation, decompose and transfer
/// stages, a downstream set and a foundation model `teacher`.
fn base() -> String {
    let src = edit(
        MINIMAL,
        r#"stages = ["decompose"]"#,
        r#"stages = ["foundation", "decompose", "transfer"]"#,
    );
    let src = edit(&src, r#"method = ["stl"]"#, ALL_METHODS);
    let src = edit(
        &src,
        "pretrain = [\"medmnist\"]\n",
        "pretrain = [\"medmnist\"]\ndownstream = [\"covid\"]\nfoundation = [\"teacher\"]\n",
    );
    format!(
        "{src}\n{TEACHER_HEADER}\narch = \"resnet_bottleneck\"\nwidths = [8, 16]\ndepths = [1, 1]\n"
    )
}

/// `src` with the only occurrence of `from` replaced by `to`.
#[track_caller]
fn edit(src: &str, from: &str, to: &str) -> String {
    assert_eq!(
        src.matches(from).count(),
        1,
        "`{from}` must occur exactly once in:\n{src}"
    );
    src.replacen(from, to, 1)
}

/// `src` with `extra` (tables) appended.
fn append(src: &str, extra: &str) -> String {
    format!("{src}\n{extra}")
}

/// [`MINIMAL`] with a different student model table.
fn with_student(model: &str) -> String {
    edit(MINIMAL, STUDENT, model)
}

#[track_caller]
fn parse_ok(src: &str) -> Experiment {
    match parse(src, Path::new("exp.toml"), registry(), &CATALOG) {
        Ok(e) => e,
        Err(e) => panic!("expected the file to parse, got: {e}\n---\n{src}"),
    }
}

/// The message of the bad-input error that `src` must give.
#[track_caller]
fn parse_err(src: &str) -> String {
    match parse(src, Path::new("exp.toml"), registry(), &CATALOG) {
        Ok(_) => panic!("expected an error, the file parsed:\n{src}"),
        Err(e) => {
            assert_eq!(e.exit_code(), 2, "bad input exits with 2: {e}");
            match e {
                Error::BadInput(m) => m,
                other => panic!("expected Error::BadInput, got {other:?}"),
            }
        }
    }
}

/// `exp.toml:LINE:COL: ` of the first character of `token` in the only occurrence of
/// `marker` in `src`.
#[track_caller]
fn loc(src: &str, marker: &str, token: &str) -> String {
    assert_eq!(
        src.matches(marker).count(),
        1,
        "marker `{marker}` must occur exactly once in:\n{src}"
    );
    let offset = marker
        .find(token)
        .unwrap_or_else(|| panic!("`{token}` is not inside the marker `{marker}`"));
    let start = src.find(marker).expect("marker") + offset;
    let before = &src[..start];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    format!("exp.toml:{line}:{col}: ")
}

/// `src` fails at `token` (inside the unique `marker`) with a message containing `phrase`.
#[track_caller]
fn assert_err_at(src: &str, marker: &str, token: &str, phrase: &str) {
    let msg = parse_err(src);
    let want = loc(src, marker, token);
    assert!(
        msg.starts_with(&want),
        "expected the error at `{want}`, got: {msg}"
    );
    assert!(msg.contains(phrase), "expected `{phrase}` in: {msg}");
}

/// `src` fails at the start of the unique `marker` with a message containing `phrase`.
#[track_caller]
fn assert_err(src: &str, marker: &str, phrase: &str) {
    assert_err_at(src, marker, marker, phrase)
}

/// `src` fails with a message that names the file but no line (`exp.toml: ...`).
#[track_caller]
fn assert_err_unlocated(src: &str, phrase: &str) {
    let msg = parse_err(src);
    assert!(
        msg.starts_with("exp.toml: "),
        "expected a message without line and column, got: {msg}"
    );
    assert!(msg.contains(phrase), "expected `{phrase}` in: {msg}");
}

// ---------------------------------------------------------------------------------------
// Valid files
// ---------------------------------------------------------------------------------------

#[test]
fn minimal_experiment_parses_with_the_documented_defaults() {
    let e = parse_ok(MINIMAL);
    assert_eq!(e.path, Path::new("exp.toml"));
    assert_eq!(e.name, "vtest");
    assert_eq!(e.description, "validator tests");
    assert_eq!(e.seeds, vec![0, 1]);
    assert_eq!(e.stages, vec![Stage::Decompose]);
    assert_eq!(e.methods, vec!["stl"]);
    assert_eq!(e.pretrain, vec!["medmnist"]);
    assert!(e.downstream.is_empty());
    assert!(e.foundation.is_empty());
    assert_eq!(e.default_profile, None);
    assert_eq!(e.profiles.keys().collect::<Vec<_>>(), vec!["smoke"]);
    let p = &e.profiles["smoke"];
    assert_eq!(p.data, DataKind::Synthetic);
    assert_eq!(p.image_size, 28);
    assert_eq!(p.epochs, 2);
    assert_eq!(p.batch_size, 8);
    assert_eq!(p.eval_batch_size, 256);
    assert_eq!((p.caps.train, p.caps.val, p.caps.test), (None, None, None));
    assert_eq!(p.difficulty, 0.5);
    assert_eq!(p.normalize, Normalize::PerImage);
    assert_eq!(p.model.arch, Arch::Resnet);
    assert_eq!(p.model.widths, vec![8, 16]);
    assert_eq!(p.model.depths, vec![1, 1]);
    assert_eq!(p.model.stem, Stem::Cifar);
    assert_eq!(
        (p.model.patch_size, p.model.heads, p.model.image_size),
        (None, None, None)
    );
    assert_eq!(p.optim.name, OptimizerKind::Sgd);
    assert_eq!(p.optim.lr, 0.1);
    assert_eq!(p.optim.momentum, 0.9);
    assert_eq!(p.optim.weight_decay, 0.0);
    assert_eq!(p.optim.schedule, Schedule::Cosine);
    assert_eq!(p.optim.warmup_epochs, 0);
    assert!(p.foundations.is_empty());
    assert!(p.method_overrides.is_empty());
    assert_eq!(p.method_options.keys().collect::<Vec<_>>(), vec!["stl"]);
    assert!(p.method_options["stl"].is_empty());
}

#[test]
fn base_experiment_parses_with_every_method_and_their_defaults() {
    let e = parse_ok(&base());
    assert_eq!(
        e.stages,
        vec![Stage::Foundation, Stage::Decompose, Stage::Transfer]
    );
    assert_eq!(
        e.methods,
        vec![
            "stl",
            "mtl",
            "mocomtl",
            "alignedmtl",
            "stlkd",
            "mtlkd",
            "kf",
            "lorkd"
        ]
    );
    assert_eq!(e.downstream, vec!["covid"]);
    assert_eq!(e.foundation, vec!["teacher"]);
    let p = &e.profiles["smoke"];
    let t = &p.foundations["teacher"];
    assert_eq!(t.model.arch, Arch::ResnetBottleneck);
    assert_eq!((t.epochs, t.lr, t.weights.as_deref()), (None, None, None));
    assert!(t.rename.is_empty() && t.ignore.is_empty());

    let o = &p.method_options;
    assert_eq!(o.len(), 8);
    for key in ["stl", "mtl", "alignedmtl"] {
        assert!(o[key].is_empty(), "{key}: {:?}", o[key]);
    }
    let feature = Some(KdConfig::Feature {
        weight: 1.0,
        temperature: 10.0,
    });
    for key in ["stlkd", "mtlkd"] {
        assert_eq!(o[key].kd, feature, "{key}");
        assert_eq!(
            (o[key].low_rank, o[key].moco, o[key].kf),
            (None, None, None)
        );
    }
    assert_eq!(o["lorkd"].kd, feature);
    assert_eq!(
        o["lorkd"].low_rank,
        Some(LowRankConfig {
            rank: 4,
            alpha: 16.0
        })
    );
    assert_eq!(o["mocomtl"].moco, Some(MocoConfig::DEFAULT));
    assert_eq!(o["mocomtl"].kd, None);
    assert_eq!(o["kf"].kf, Some(KfConfig::DEFAULT));
    assert_eq!(
        o["kf"].kd,
        Some(KdConfig::Logit {
            temperature: 10.0,
            alpha: 0.1
        })
    );
}

#[test]
fn quickstart_experiment_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/quickstart.toml");
    let e = load(&path, registry(), &CATALOG).expect("quickstart.toml is valid");
    assert_eq!(e.name, "quickstart");
    assert_eq!(e.methods, vec!["stl", "mtl", "stlkd", "mtlkd", "lorkd"]);
    assert_eq!(e.default_profile.as_deref(), Some("smoke"));
    let smoke = &e.profiles["smoke"];
    assert_eq!(
        smoke.method_options["lorkd"].low_rank,
        Some(LowRankConfig {
            rank: 4,
            alpha: 4.0
        })
    );
    assert_eq!(
        e.profiles["paper"].method_options["lorkd"].low_rank,
        Some(LowRankConfig {
            rank: 4,
            alpha: 16.0
        })
    );
    assert_eq!(smoke.foundations["resnet50"].epochs, Some(16));
    assert_eq!(e.profiles["paper"].data, DataKind::Real);
    assert_eq!(e.profiles["paper"].normalize, Normalize::Fixed);
}

#[test]
fn decomposition_experiment_parses() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/decomposition_medmnist.toml");
    let src = std::fs::read_to_string(&path).expect("decomposition_medmnist.toml reads");
    let e = parse(&src, &path, registry(), &CATALOG).expect("decomposition_medmnist.toml is valid");
    assert_eq!(e.name, "decomposition_medmnist");
    assert_eq!(e.seeds, vec![0, 1, 2]);
    assert_eq!(e.methods.len(), 8);
    let paper = &e.profiles["paper"];
    assert_eq!(paper.model.arch, Arch::ShuffleNetV2);
    assert_eq!(paper.model.stem, Stem::Imagenet);
    assert_eq!(paper.image_size, 224);
}

/// Every experiment file of the repository is valid, and the paper-table files carry the
/// supplement's values.
#[test]
fn every_experiment_file_parses() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "toml") {
            let src = std::fs::read_to_string(&path).unwrap();
            let exp = parse(&src, &path, registry(), &CATALOG)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(exp.profiles.contains_key("smoke"), "{}", path.display());
            names.push(exp.name.clone());
            if let Some(r) = &exp.reference {
                assert_eq!(r.rows.len(), 4, "{}", path.display());
            }
        }
    }
    names.sort();
    for want in [
        "decomposition_medmnist",
        "decomposition_medmt",
        "decomposition_radimagenet",
        "nightly",
        "table3",
        "table4",
        "transfer_medmnist",
        "transfer_medmt",
        "transfer_radimagenet",
    ] {
        assert!(names.iter().any(|n| n == want), "no {want} in {names:?}");
    }
}

// ---------------------------------------------------------------------------------------
// parse: TOML syntax and schema errors (serde, `deny_unknown_fields`)
// ---------------------------------------------------------------------------------------

#[test]
fn toml_syntax_error_is_located() {
    let src = edit(MINIMAL, "name = \"vtest\"", "name = vtest");
    assert_err_at(&src, "name = vtest", "vtest", "must be quoted");
}

#[test]
fn unknown_top_level_key_is_refused_by_the_schema() {
    let src = edit(MINIMAL, "seeds = [0, 1]\n", "seeds = [0, 1]\ncolour = 1\n");
    assert_err(&src, "colour = 1", "unknown field `colour`");
}

#[test]
fn unknown_key_in_a_table_is_refused_by_the_schema() {
    let src = edit(MINIMAL, "[grid]\n", "[grid]\nbogus = 1\n");
    assert_err(&src, "bogus = 1", "unknown field `bogus`");
    let src = append(MINIMAL, "[method.stl]\nrnak = 4\n");
    assert_err_at(
        &src,
        "rnak = 4",
        "4",
        "[method.stl] rnak: unknown setting (the settings of stl: lr, weight_decay, epochs)",
    );
    let src = append(MINIMAL, "[profile.smoke.method.stl]\nrnak = 4\n");
    assert_err_at(
        &src,
        "rnak = 4",
        "4",
        "[profile.smoke.method.stl] rnak: unknown setting",
    );
}

#[test]
fn missing_required_field_is_reported_at_the_start_of_the_file() {
    let src = edit(MINIMAL, "name = \"vtest\"\n", "");
    let msg = parse_err(&src);
    assert!(msg.starts_with("exp.toml:1:1: "), "{msg}");
    assert!(msg.contains("missing field `name`"), "{msg}");
}

#[test]
fn missing_required_table_field_is_reported_at_its_table() {
    let src = edit(
        MINIMAL,
        "[profile.smoke.optim]\nname = \"sgd\"\nlr = 0.1\n",
        "",
    );
    assert_err(&src, "[profile.smoke]", "missing field `optim`");
}

#[test]
fn value_of_the_wrong_type_is_reported_at_the_value() {
    let src = edit(MINIMAL, "epochs = 2", "epochs = -2");
    assert_err_at(&src, "epochs = -2", "-2", "expected u32");
    let src = edit(MINIMAL, "epochs = 2", "epochs = \"two\"");
    assert_err_at(&src, "epochs = \"two\"", "\"two\"", "invalid type");
}

#[test]
fn duplicate_key_is_reported_at_the_second_one() {
    let src = edit(MINIMAL, "lr = 0.1\n", "lr = 0.1\nlr = 0.2\n");
    assert_err(&src, "lr = 0.2", "duplicate key");
}

// ---------------------------------------------------------------------------------------
// experiment: name, seeds, stages, profiles, default_profile
// ---------------------------------------------------------------------------------------

#[test]
fn name_with_characters_outside_letters_digits_dash_underscore_is_refused() {
    let src = edit(MINIMAL, "name = \"vtest\"", "name = \"my exp\"");
    assert_err_at(
        &src,
        "name = \"my exp\"",
        "\"my exp\"",
        "`name` must be non-empty and use only letters, digits, `-` and `_`",
    );
    let src = edit(MINIMAL, "name = \"vtest\"", "name = \"a/b\"");
    assert_err_at(
        &src,
        "name = \"a/b\"",
        "\"a/b\"",
        "`name` must be non-empty",
    );
}

#[test]
fn blank_name_is_refused() {
    let src = edit(MINIMAL, "name = \"vtest\"", "name = \"  \"");
    assert_err_at(&src, "name = \"  \"", "\"  \"", "`name` must be non-empty");
}

#[test]
fn name_is_trimmed() {
    let src = edit(MINIMAL, "name = \"vtest\"", "name = \" vtest-2_b \"");
    assert_eq!(parse_ok(&src).name, "vtest-2_b");
}

#[test]
fn empty_seeds_are_refused() {
    let src = edit(MINIMAL, "seeds = [0, 1]", "seeds = []");
    assert_err_at(
        &src,
        "seeds = []",
        "[]",
        "`seeds` must list at least one seed",
    );
}

#[test]
fn seed_listed_twice_is_refused_at_the_list() {
    let src = edit(MINIMAL, "seeds = [0, 1]", "seeds = [3, 1, 3]");
    assert_err_at(&src, "seeds = [3, 1, 3]", "[3", "seed 3 is listed twice");
}

#[test]
fn stage_listed_twice_is_refused_at_the_second() {
    let src = edit(
        MINIMAL,
        r#"stages = ["decompose"]"#,
        r#"stages = ["decompose", "decompose"]"#,
    );
    assert_err_at(
        &src,
        r#", "decompose"]"#,
        r#""decompose""#,
        "stage `decompose` is listed twice",
    );
}

#[test]
fn unknown_stage_names_the_available_stages() {
    let src = edit(
        MINIMAL,
        r#"stages = ["decompose"]"#,
        r#"stages = ["decompose", "cka"]"#,
    );
    assert_err(
        &src,
        r#""cka""#,
        "stages: unknown variant `cka`, expected one of `foundation`, `decompose`, `transfer`, `analysis`",
    );
}

#[test]
fn the_transfer_stage_needs_downstream_sets() {
    let src = edit(
        MINIMAL,
        r#"stages = ["decompose"]"#,
        r#"stages = ["decompose", "transfer"]"#,
    );
    assert_err(
        &src,
        r#""transfer""#,
        "the transfer stage needs downstream sets: add grid.downstream = [...] (known: covid, btc, ad, mura_shoulder, auitd, ham10000, det10)",
    );
}

#[test]
fn downstream_sets_without_the_transfer_stage_are_refused() {
    let src = edit(
        MINIMAL,
        "pretrain = [\"medmnist\"]\n",
        "pretrain = [\"medmnist\"]\ndownstream = [\"covid\"]\n",
    );
    assert_err(
        &src,
        r#""covid""#,
        "grid.downstream applies to the transfer stage; add \"transfer\" to `stages` or remove it",
    );
}

#[test]
fn empty_stages_are_refused() {
    let src = edit(MINIMAL, r#"stages = ["decompose"]"#, "stages = []");
    assert_err_unlocated(&src, "`stages` is empty; add stages = [\"decompose\"]");
}

#[test]
fn experiment_without_profiles_is_refused() {
    let head = MINIMAL.split("[profile.smoke]\n").next().expect("head");
    let src = edit(head, "[grid]\n", "profile = {}\n\n[grid]\n");
    assert_err_unlocated(&src, "no profiles; add at least [profile.smoke]");
}

#[test]
fn undefined_default_profile_names_the_defined_ones() {
    let src = edit(
        MINIMAL,
        "stages = [\"decompose\"]\n",
        "stages = [\"decompose\"]\ndefault_profile = \"paper\"\n",
    );
    assert_err_at(
        &src,
        "default_profile = \"paper\"",
        "\"paper\"",
        "default_profile `paper` is not defined (defined: smoke)",
    );
}

// ---------------------------------------------------------------------------------------
// grid: methods, data sets, foundation names
// ---------------------------------------------------------------------------------------

#[test]
fn empty_method_grid_names_the_known_methods() {
    let src = edit(MINIMAL, r#"method = ["stl"]"#, "method = []");
    assert_err_unlocated(
        &src,
        "grid.method is empty; name at least one method (stl, mtl, mocomtl, alignedmtl, stlkd, mtlkd, kf, lorkd)",
    );
}

#[test]
fn unknown_method_names_the_known_methods() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["stl", "lora"]"#,
    );
    assert_err(
        &src,
        r#""lora""#,
        "unknown method `lora` (known: stl, mtl, mocomtl, alignedmtl, stlkd, mtlkd, kf, lorkd)",
    );
}

#[test]
fn method_names_are_matched_by_canonical_key() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["STL", "MoCo-MTL", "aligned_mtl"]"#,
    );
    assert_eq!(parse_ok(&src).methods, vec!["stl", "mocomtl", "alignedmtl"]);
}

#[test]
fn method_listed_twice_under_two_spellings_is_refused() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["MoCo-MTL", "moco_mtl"]"#,
    );
    assert_err(&src, r#""moco_mtl""#, "method `moco_mtl` is listed twice");
}

#[test]
fn pretrain_set_listed_twice_is_refused() {
    let src = edit(
        MINIMAL,
        r#"pretrain = ["medmnist"]"#,
        r#"pretrain = ["medmnist", "medmnist"]"#,
    );
    assert_err_at(
        &src,
        r#", "medmnist"]"#,
        r#""medmnist""#,
        "grid.pretrain: `medmnist` is listed twice",
    );
}

#[test]
fn unknown_pretrain_set_names_the_pretraining_sets() {
    let src = edit(
        MINIMAL,
        r#"pretrain = ["medmnist"]"#,
        r#"pretrain = ["medmnist", "imagenet"]"#,
    );
    assert_err(
        &src,
        r#""imagenet""#,
        "grid.pretrain: unknown data set `imagenet` (known: radimagenet, medmnist, medmnist-pneumonia, medmt; see ",
    );
}

#[test]
fn downstream_set_as_pretrain_set_is_refused() {
    let src = edit(
        MINIMAL,
        r#"pretrain = ["medmnist"]"#,
        r#"pretrain = ["downstream"]"#,
    );
    assert_err(
        &src,
        r#""downstream""#,
        "grid.pretrain: unknown data set `downstream` (known: radimagenet, medmnist",
    );
}

#[test]
fn empty_pretrain_grid_is_refused() {
    let src = edit(MINIMAL, r#"pretrain = ["medmnist"]"#, "pretrain = []");
    assert_err_unlocated(
        &src,
        "grid.pretrain is empty; name at least one pre-training set (radimagenet, medmnist",
    );
}

#[test]
fn downstream_set_listed_twice_is_refused() {
    let src = edit(
        MINIMAL,
        "pretrain = [\"medmnist\"]\n",
        "pretrain = [\"medmnist\"]\ndownstream = [\"covid\", \"covid\"]\n",
    );
    assert_err_at(
        &src,
        r#", "covid"]"#,
        r#""covid""#,
        "grid.downstream: `covid` is listed twice",
    );
}

#[test]
fn unknown_downstream_set_names_the_downstream_tasks() {
    let src = edit(
        MINIMAL,
        "pretrain = [\"medmnist\"]\n",
        "pretrain = [\"medmnist\"]\ndownstream = [\"covid\", \"colon\"]\n",
    );
    assert_err(
        &src,
        r#""colon""#,
        "grid.downstream: unknown downstream set `colon` (known: covid, btc, ad, mura_shoulder",
    );
}

#[test]
fn foundation_listed_twice_is_refused() {
    let src = edit(
        &base(),
        r#"foundation = ["teacher"]"#,
        r#"foundation = ["teacher", "teacher"]"#,
    );
    assert_err_at(
        &src,
        r#", "teacher"]"#,
        r#""teacher""#,
        "grid.foundation: `teacher` is listed twice",
    );
}

// ---------------------------------------------------------------------------------------
// foundation_checks: teachers and low-rank experts
// ---------------------------------------------------------------------------------------

#[test]
fn distilling_method_without_a_foundation_model_is_refused() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["stl", "stlkd"]"#,
    );
    assert_err(
        &src,
        r#""stlkd""#,
        "method `stlkd` distils from a foundation model (profile `smoke`): name one in grid.foundation",
    );
}

#[test]
fn kd_none_needs_no_foundation_model() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["stlkd", "lorkd", "kf"]"#,
    );
    let src = append(
        &src,
        "[method.stlkd]\nkd = \"none\"\n\n[method.lorkd]\nkd = \"none\"\n\n[method.kf]\nkd = \"none\"\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options;
    assert_eq!(o["stlkd"].kd, None);
    assert_eq!(o["kf"].kd, None);
    assert_eq!(o["kf"].kf, Some(KfConfig::DEFAULT));
    assert_eq!(o["lorkd"].kd, None);
    assert_eq!(
        o["lorkd"].low_rank,
        Some(LowRankConfig {
            rank: 4,
            alpha: 16.0
        })
    );
}

#[test]
fn kd_none_in_one_profile_only_still_needs_a_foundation_model_for_the_others() {
    let src = edit(MINIMAL, r#"method = ["stl"]"#, r#"method = ["stlkd"]"#);
    let profile = &MINIMAL[MINIMAL.find("[profile.smoke]").expect("profile")..];
    let src = format!(
        "{src}\n{}\n[profile.smoke.method.stlkd]\nkd = \"none\"\n",
        profile.replace("profile.smoke", "profile.paper")
    );
    assert_err(
        &src,
        r#""stlkd""#,
        "method `stlkd` distils from a foundation model (profile `paper`)",
    );
}

#[test]
fn low_rank_experts_on_a_vit_student_are_refused() {
    let src = edit(
        &base(),
        STUDENT,
        "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [1]\npatch_size = 4\nheads = 2\n",
    );
    assert_err(
        &src,
        r#""lorkd""#,
        "method `lorkd` puts low-rank experts on convolutions; profile.smoke.model.arch `vit` has none (use one of resnet, resnet_bottleneck, shufflenetv2)",
    );
}

#[test]
fn undefined_foundation_model_is_refused_per_profile() {
    let src = edit(
        &base(),
        r#"foundation = ["teacher"]"#,
        r#"foundation = ["teacher", "other"]"#,
    );
    assert_err(
        &src,
        r#""other""#,
        "grid.foundation: `other` is not defined for profile `smoke`; add a [profile.smoke.foundation.other] table",
    );
}

#[test]
fn foundation_stage_without_foundation_models_is_refused() {
    let src = edit(
        MINIMAL,
        r#"stages = ["decompose"]"#,
        r#"stages = ["foundation", "decompose"]"#,
    );
    assert_err_unlocated(
        &src,
        "the foundation stage is listed but grid.foundation is empty",
    );
}

// ---------------------------------------------------------------------------------------
// method_tables: [method.NAME] and [profile.P.method.NAME]
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_method_table_is_refused_at_its_header() {
    let src = append(MINIMAL, "[method.bogus]\nlr = 0.1\n");
    assert_err(
        &src,
        "[method.bogus]",
        "[method.bogus]: unknown method `bogus` (known: stl, mtl, mocomtl, alignedmtl, stlkd, mtlkd, kf, lorkd)",
    );
}

#[test]
fn unknown_profile_method_table_is_refused_at_its_header() {
    let src = append(MINIMAL, "[profile.smoke.method.bogus]\nlr = 0.1\n");
    assert_err(
        &src,
        "[profile.smoke.method.bogus]",
        "[profile.smoke.method.bogus]: unknown method",
    );
}

#[test]
fn method_lr_must_be_positive() {
    let src = append(MINIMAL, "[method.stl]\nlr = 0.0\n");
    assert_err_at(
        &src,
        "lr = 0.0",
        "0.0",
        "method.stl.lr must be a positive number (got 0)",
    );
    let src = append(MINIMAL, "[profile.smoke.method.stl]\nlr = inf\n");
    assert_err_at(
        &src,
        "lr = inf",
        "inf",
        "profile.smoke.method.stl.lr must be a positive number (got inf)",
    );
}

#[test]
fn method_weight_decay_must_not_be_negative() {
    let src = append(MINIMAL, "[method.stl]\nweight_decay = -0.5\n");
    assert_err_at(
        &src,
        "weight_decay = -0.5",
        "-0.5",
        "method.stl.weight_decay must be zero or positive (got -0.5)",
    );
}

#[test]
fn method_epochs_must_be_positive() {
    let src = append(MINIMAL, "[method.stl]\nepochs = 0\n");
    assert_err_at(
        &src,
        "epochs = 0",
        "0",
        "method.stl.epochs must be positive (got 0)",
    );
}

#[test]
fn kf_with_feature_kd_fails_its_option_check() {
    let src = append(&base(), "[method.kf]\nkd = \"feature\"\n");
    assert_err(
        &src,
        "[method.kf]",
        "[method.kf]: KF distils the teacher's logits: use kd = \"logit\"",
    );
}

#[test]
fn kf_with_feature_kd_in_a_profile_table_fails_its_option_check_at_that_table() {
    let src = append(&base(), "[profile.smoke.method.kf]\nkd = \"feature\"\n");
    assert_err(
        &src,
        "[profile.smoke.method.kf]",
        "[profile.smoke.method.kf]: KF distils the teacher's logits",
    );
}

#[test]
fn method_table_of_a_method_outside_the_grid_is_checked_too() {
    // Its options are not kept (no run uses them), but a bad value is still an error.
    let src = append(
        MINIMAL,
        "[method.mocomtl]\nlambda_update = \"simplex\"\nlr = 0.5\n",
    );
    let e = parse_ok(&src);
    let p = &e.profiles["smoke"];
    assert!(!p.method_options.contains_key("mocomtl"));
    assert_eq!(p.method_overrides["mocomtl"].lr, Some(0.5));
    let src = append(MINIMAL, "[method.mocomtl]\nlambda_update = \"bogus\"\n");
    assert_err_at(
        &src,
        "lambda_update = \"bogus\"",
        "\"bogus\"",
        "method.mocomtl.lambda_update: unknown variant `bogus`",
    );
    let src = append(MINIMAL, "[method.mocomtl]\nlr = -1.0\n");
    assert_err_at(
        &src,
        "lr = -1.0",
        "-1.0",
        "method.mocomtl.lr must be a positive number",
    );
}

#[test]
fn two_tables_for_one_method_are_refused() {
    let src = append(
        MINIMAL,
        "[method.stl]\nlr = 0.1\n\n[method.STL]\nlr = 0.2\n",
    );
    assert_err(
        &src,
        "[method.stl]",
        "[method.stl] names the same method as [method.STL]; merge the two tables",
    );
}

// ---------------------------------------------------------------------------------------
// method_options: settings that do not apply (refuse) and their ranges
// ---------------------------------------------------------------------------------------

#[test]
fn kd_settings_on_a_method_that_does_not_distil_are_refused() {
    for (line, token) in [
        ("kd_weight = 1.0", "kd_weight"),
        ("kd_temperature = 4.0", "kd_temperature"),
        ("kd_alpha = 0.5", "kd_alpha"),
        ("kd = \"feature\"", "kd"),
        ("kd = \"none\"", "kd"),
    ] {
        let src = append(MINIMAL, &format!("[method.stl]\n{line}\n"));
        let (_, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!("[method.stl] {token}: stl has no KD settings (`{token}` applies to stlkd, mtlkd, kf, lorkd); remove it"),
        );
    }
}

#[test]
fn refused_settings_are_reported_in_file_order() {
    let src = append(
        MINIMAL,
        "[method.stl]\nkd_temperature = 2.0\nkd = \"logit\"\nkd_alpha = 0.5\n",
    );
    assert_err_at(
        &src,
        "kd_temperature = 2.0",
        "2.0",
        "[method.stl] kd_temperature: stl has no KD settings",
    );
}

#[test]
fn low_rank_settings_on_a_method_other_than_lorkd_are_refused() {
    for (line, token) in [("rank = 8", "rank"), ("lora_alpha = 8.0", "lora_alpha")] {
        let src = append(&base(), &format!("[method.stlkd]\n{line}\n"));
        let (_, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!("[method.stlkd] {token}: stlkd has no low-rank expert settings (`{token}` applies to lorkd); remove it"),
        );
    }
}

#[test]
fn kd_temperature_must_be_positive() {
    let src = append(&base(), "[method.stlkd]\nkd_temperature = 0.0\n");
    assert_err_at(
        &src,
        "kd_temperature = 0.0",
        "0.0",
        "method.stlkd.kd_temperature must be a positive number (got 0)",
    );
}

#[test]
fn unknown_kd_kind_is_refused() {
    let src = append(&base(), "[method.stlkd]\nkd = \"hinton\"\n");
    assert_err_at(
        &src,
        "kd = \"hinton\"",
        "\"hinton\"",
        "method.stlkd.kd: unknown variant `hinton`, expected one of `feature`, `logit`, `none`",
    );
}

#[test]
fn kd_settings_with_kd_none_are_refused() {
    for line in ["kd_weight = 1.0", "kd_temperature = 4.0", "kd_alpha = 0.5"] {
        let src = append(&base(), &format!("[method.lorkd]\nkd = \"none\"\n{line}\n"));
        let (key, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!("method.lorkd.{key}: KD is off (kd = \"none\"); remove it"),
        );
    }
}

#[test]
fn kd_settings_under_a_kd_none_inherited_from_the_top_level_are_refused() {
    let src = append(
        &base(),
        "[method.lorkd]\nkd = \"none\"\n\n[profile.smoke.method.lorkd]\nkd_weight = 0.5\n",
    );
    assert_err_at(
        &src,
        "kd_weight = 0.5",
        "0.5",
        "method.lorkd.kd_weight: KD is off (kd = \"none\"); remove it",
    );
}

#[test]
fn kd_alpha_with_feature_kd_is_refused() {
    let src = append(&base(), "[method.stlkd]\nkd_alpha = 0.5\n");
    assert_err_at(
        &src,
        "kd_alpha = 0.5",
        "0.5",
        "method.stlkd.kd_alpha: kd_alpha belongs to logit KD; remove it",
    );
}

#[test]
fn feature_kd_weight_must_not_be_negative() {
    let src = append(&base(), "[method.lorkd]\nkd_weight = -1.0\n");
    assert_err_at(
        &src,
        "kd_weight = -1.0",
        "-1.0",
        "method.lorkd.kd_weight must be zero or positive (got -1)",
    );
}

#[test]
fn kd_weight_with_logit_kd_is_refused() {
    let src = append(&base(), "[method.mtlkd]\nkd = \"logit\"\nkd_weight = 0.5\n");
    assert_err_at(
        &src,
        "kd_weight = 0.5",
        "0.5",
        "method.mtlkd.kd_weight: logit KD weighs its terms with kd_alpha; remove it",
    );
    // KF distils logits by default.
    let src = append(&base(), "[method.kf]\nkd_weight = 0.5\n");
    assert_err_at(
        &src,
        "kd_weight = 0.5",
        "0.5",
        "method.kf.kd_weight: logit KD weighs its terms with kd_alpha; remove it",
    );
}

#[test]
fn kd_alpha_must_be_within_zero_and_one() {
    for v in ["1.5", "-0.1", "nan"] {
        let line = format!("kd_alpha = {v}");
        let src = append(
            &base(),
            &format!("[method.mtlkd]\nkd = \"logit\"\n{line}\n"),
        );
        assert_err_at(
            &src,
            &line,
            v,
            "method.mtlkd.kd_alpha must be within [0, 1]",
        );
    }
}

#[test]
fn unknown_moco_lambda_update_is_refused() {
    let src = append(
        &base(),
        "[method.mocomtl]\nlambda_update = \"projection\"\n",
    );
    assert_err_at(
        &src,
        "lambda_update = \"projection\"",
        "\"projection\"",
        "method.mocomtl.lambda_update: unknown variant `projection`, expected `softmax` or `simplex`",
    );
}

#[test]
fn unknown_moco_step_decay_is_refused() {
    let src = append(&base(), "[method.mocomtl]\nstep_decay = \"batch\"\n");
    assert_err_at(
        &src,
        "step_decay = \"batch\"",
        "\"batch\"",
        "method.mocomtl.step_decay: unknown variant `batch`, expected `iteration` or `epoch`",
    );
}

#[test]
fn moco_settings_on_another_method_are_refused() {
    for (line, token) in [
        ("lambda_update = \"simplex\"", "lambda_update"),
        ("step_decay = \"epoch\"", "step_decay"),
    ] {
        let src = append(&base(), &format!("[method.alignedmtl]\n{line}\n"));
        let (_, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!("[method.alignedmtl] {token}: alignedmtl has no MoCo-MTL settings (`{token}` applies to mocomtl); remove it"),
        );
    }
}

#[test]
fn kf_label_smoothing_must_not_be_negative() {
    let src = append(&base(), "[method.kf]\nlabel_smoothing = -0.1\n");
    assert_err_at(
        &src,
        "label_smoothing = -0.1",
        "-0.1",
        "method.kf.label_smoothing must be zero or positive (got -0.1)",
    );
}

#[test]
fn kf_label_smoothing_must_be_below_one() {
    let src = append(&base(), "[method.kf]\nlabel_smoothing = 1.0\n");
    assert_err_at(
        &src,
        "label_smoothing = 1.0",
        "1.0",
        "method.kf.label_smoothing must be in [0, 1)",
    );
}

#[test]
fn kf_loss_weights_must_not_be_negative() {
    for key in ["infomax_weight", "infomin_weight", "aux_weight"] {
        let line = format!("{key} = -2.0");
        let src = append(&base(), &format!("[method.kf]\n{line}\n"));
        assert_err_at(
            &src,
            &line,
            "-2.0",
            &format!("method.kf.{key} must be zero or positive (got -2)"),
        );
    }
}

#[test]
fn kf_infomax_stages_must_be_positive() {
    let src = append(&base(), "[method.kf]\ninfomax_stages = 0\n");
    assert_err_at(
        &src,
        "infomax_stages = 0",
        "0",
        "method.kf.infomax_stages must be positive (got 0)",
    );
}

#[test]
fn kf_settings_on_another_method_are_refused() {
    for line in [
        "label_smoothing = 0.1",
        "infomax_weight = 1.0",
        "infomax_stages = 2",
        "infomin_weight = 0.001",
        "aux_weight = 1.0",
    ] {
        let src = append(&base(), &format!("[method.mtl]\n{line}\n"));
        let (key, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!(
                "[method.mtl] {key}: mtl has no KF settings (`{key}` applies to kf); remove it"
            ),
        );
    }
}

#[test]
fn lorkd_rank_must_be_positive() {
    let src = append(&base(), "[method.lorkd]\nrank = 0\n");
    assert_err_at(
        &src,
        "rank = 0",
        "0",
        "method.lorkd.rank must be positive (got 0)",
    );
}

#[test]
fn lorkd_lora_alpha_must_be_positive() {
    let src = append(&base(), "[profile.smoke.method.lorkd]\nlora_alpha = -4.0\n");
    assert_err_at(
        &src,
        "lora_alpha = -4.0",
        "-4.0",
        "method.lorkd.lora_alpha must be a positive number (got -4)",
    );
}

// ---------------------------------------------------------------------------------------
// Method option resolution
// ---------------------------------------------------------------------------------------

#[test]
fn lorkd_rank_is_set_by_its_method_table() {
    let src = append(&base(), "[method.lorkd]\nrank = 8\n");
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options["lorkd"];
    assert_eq!(
        o.low_rank,
        Some(LowRankConfig {
            rank: 8,
            alpha: 16.0
        })
    );
    assert_eq!(
        o.kd,
        Some(KdConfig::Feature {
            weight: 1.0,
            temperature: 10.0
        })
    );
}

#[test]
fn method_table_names_are_matched_by_canonical_key() {
    let src = append(
        &base(),
        "[method.LoRKD]\nrank = 2\n\n[method.MoCo-MTL]\nlambda_update = \"simplex\"\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options;
    assert_eq!(o["lorkd"].low_rank.map(|l| l.rank), Some(2));
    assert_eq!(
        o["mocomtl"].moco.map(|m| m.lambda_update),
        Some(LambdaUpdate::Simplex)
    );
}

#[test]
fn profile_method_table_overrides_the_top_level_one() {
    let src = append(
        &base(),
        "[method.lorkd]\nrank = 8\nlora_alpha = 8.0\nkd_weight = 0.0\n\n[profile.smoke.method.lorkd]\nlora_alpha = 2.0\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options["lorkd"];
    assert_eq!(
        o.low_rank,
        Some(LowRankConfig {
            rank: 8,
            alpha: 2.0
        })
    );
    assert_eq!(
        o.kd,
        Some(KdConfig::Feature {
            weight: 0.0,
            temperature: 10.0
        })
    );
}

#[test]
fn profile_method_table_applies_to_its_profile_only() {
    let profile = &MINIMAL[MINIMAL.find("[profile.smoke]").expect("profile")..];
    let src = edit(MINIMAL, r#"method = ["stl"]"#, r#"method = ["mocomtl"]"#);
    let src = format!(
        "{src}\n{}\n[method.mocomtl]\nstep_decay = \"epoch\"\n\n[profile.paper.method.mocomtl]\nlambda_update = \"simplex\"\nepochs = 7\n",
        profile.replace("profile.smoke", "profile.paper")
    );
    let e = parse_ok(&src);
    let smoke = e.profiles["smoke"].method_options["mocomtl"]
        .moco
        .expect("moco");
    let paper = e.profiles["paper"].method_options["mocomtl"]
        .moco
        .expect("moco");
    assert_eq!(
        (smoke.lambda_update, smoke.decay),
        (LambdaUpdate::Softmax, StepDecay::Epoch)
    );
    assert_eq!(
        (paper.lambda_update, paper.decay),
        (LambdaUpdate::Simplex, StepDecay::Epoch)
    );
    assert_eq!(
        e.profiles["paper"].method_overrides["mocomtl"].epochs,
        Some(7)
    );
    // The top-level table's (empty) overrides reach every profile.
    assert_eq!(e.profiles["smoke"].method_overrides["mocomtl"].epochs, None);
}

#[test]
fn training_overrides_merge_top_level_and_profile_tables() {
    let src = append(
        MINIMAL,
        "[method.stl]\nlr = 0.01\nepochs = 3\n\n[profile.smoke.method.stl]\nepochs = 5\nweight_decay = 0.0\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_overrides["stl"];
    assert_eq!(
        (o.lr, o.weight_decay, o.epochs),
        (Some(0.01), Some(0.0), Some(5))
    );
}

#[test]
fn moco_lambda_update_and_step_decay_resolve() {
    let src = append(
        &base(),
        "[method.mocomtl]\nlambda_update = \"simplex\"\nstep_decay = \"epoch\"\n",
    );
    let e = parse_ok(&src);
    let moco = e.profiles["smoke"].method_options["mocomtl"]
        .moco
        .expect("moco");
    assert_eq!(
        moco,
        MocoConfig {
            lambda_update: LambdaUpdate::Simplex,
            decay: StepDecay::Epoch,
            ..MocoConfig::DEFAULT
        }
    );
}

#[test]
fn kf_settings_resolve() {
    let src = append(
        &base(),
        "[method.kf]\nlabel_smoothing = 0.2\ninfomax_weight = 0.5\ninfomax_stages = 2\ninfomin_weight = 0.0\naux_weight = 2.0\nkd_alpha = 0.3\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options["kf"];
    assert_eq!(
        o.kf,
        Some(KfConfig {
            label_smoothing: 0.2,
            infomax_weight: 0.5,
            infomax_stages: 2,
            infomin_weight: 0.0,
            aux_weight: 2.0,
        })
    );
    assert_eq!(
        o.kd,
        Some(KdConfig::Logit {
            temperature: 10.0,
            alpha: 0.3
        })
    );
}

#[test]
fn logit_kd_defaults_to_alpha_point_nine_and_temperature_four() {
    let src = append(
        &base(),
        "[method.stlkd]\nkd = \"logit\"\n\n[method.mtlkd]\nkd = \"logit\"\nkd_temperature = 2.0\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options;
    assert_eq!(
        o["stlkd"].kd,
        Some(KdConfig::Logit {
            temperature: 4.0,
            alpha: 0.9
        })
    );
    assert_eq!(
        o["mtlkd"].kd,
        Some(KdConfig::Logit {
            temperature: 2.0,
            alpha: 0.9
        })
    );
}

#[test]
fn profile_table_keeps_the_kd_kind_and_settings_of_the_top_level_table() {
    let src = append(
        &base(),
        "[method.stlkd]\nkd = \"logit\"\nkd_alpha = 0.5\n\n[profile.smoke.method.stlkd]\nkd_temperature = 2.0\n\n[method.mtlkd]\nkd = \"logit\"\nkd_alpha = 0.5\n\n[profile.smoke.method.mtlkd]\nkd = \"feature\"\n",
    );
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options;
    assert_eq!(
        o["stlkd"].kd,
        Some(KdConfig::Logit {
            temperature: 2.0,
            alpha: 0.5
        })
    );
    // Switching kind starts from that kind's defaults.
    assert_eq!(
        o["mtlkd"].kd,
        Some(KdConfig::Feature {
            weight: 1.0,
            temperature: 10.0
        })
    );
}

#[test]
fn kd_none_turns_distillation_off() {
    let src = append(&base(), "[method.mtlkd]\nkd = \"none\"\n");
    let e = parse_ok(&src);
    let o = &e.profiles["smoke"].method_options["mtlkd"];
    assert_eq!(o.kd, None);
    assert!(o.is_empty());
}

// ---------------------------------------------------------------------------------------
// profile
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_data_source_is_refused() {
    let src = edit(MINIMAL, "data = \"synthetic\"", "data = \"fake\"");
    assert_err_at(
        &src,
        "data = \"fake\"",
        "\"fake\"",
        "profile.smoke.data: unknown variant `fake`, expected `real` or `synthetic`",
    );
}

#[test]
fn real_data_defaults_to_fixed_normalisation() {
    let src = edit(MINIMAL, "data = \"synthetic\"", "data = \"real\"");
    let p = &parse_ok(&src).profiles["smoke"];
    assert_eq!(p.data, DataKind::Real);
    assert_eq!(p.normalize, Normalize::Fixed);
}

#[test]
fn image_size_must_be_positive() {
    let src = edit(MINIMAL, "image_size = 28", "image_size = 0");
    assert_err_at(
        &src,
        "image_size = 0",
        "0",
        "profile.smoke.image_size must be positive (got 0)",
    );
}

#[test]
fn image_size_must_be_within_8_and_1024() {
    for v in ["4", "2048"] {
        let line = format!("image_size = {v}");
        let src = edit(MINIMAL, "image_size = 28", &line);
        assert_err_at(
            &src,
            &line,
            v,
            "profile.smoke.image_size must be within 8..=1024",
        );
    }
    for v in ["8", "1024"] {
        let src = edit(MINIMAL, "image_size = 28", &format!("image_size = {v}"));
        parse_ok(&src);
    }
}

#[test]
fn profile_epochs_must_be_positive() {
    let src = edit(MINIMAL, "epochs = 2", "epochs = 0");
    assert_err_at(
        &src,
        "epochs = 0",
        "0",
        "profile.smoke.epochs must be positive (got 0)",
    );
}

#[test]
fn batch_size_must_be_positive() {
    let src = edit(MINIMAL, "batch_size = 8", "batch_size = 0");
    assert_err_at(
        &src,
        "batch_size = 0",
        "0",
        "profile.smoke.batch_size must be positive (got 0)",
    );
}

#[test]
fn batch_size_must_be_at_least_two_for_batch_norm() {
    let src = edit(MINIMAL, "batch_size = 8", "batch_size = 1");
    assert_err_at(
        &src,
        "batch_size = 1",
        "1",
        "profile.smoke.batch_size must be at least 2 (batch norm needs two samples)",
    );
}

#[test]
fn eval_batch_size_must_be_positive() {
    let src = edit(
        MINIMAL,
        "batch_size = 8\n",
        "batch_size = 8\neval_batch_size = 0\n",
    );
    assert_err_at(
        &src,
        "eval_batch_size = 0",
        "0",
        "profile.smoke.eval_batch_size must be positive (got 0)",
    );
}

#[test]
fn split_caps_must_be_positive() {
    for key in [
        "max_train_per_task",
        "max_val_per_task",
        "max_test_per_task",
    ] {
        let line = format!("{key} = 0");
        let src = edit(
            MINIMAL,
            "batch_size = 8\n",
            &format!("batch_size = 8\n{line}\n"),
        );
        assert_err_at(
            &src,
            &line,
            "0",
            &format!("profile.smoke.{key} must be positive (got 0)"),
        );
    }
}

#[test]
fn profile_settings_resolve() {
    let src = edit(
        MINIMAL,
        "batch_size = 8\n",
        "batch_size = 8\neval_batch_size = 64\nmax_train_per_task = 100\nmax_val_per_task = 10\nmax_test_per_task = 20\ndifficulty = 1.0\nnormalize = \"fixed\"\n",
    );
    let p = &parse_ok(&src).profiles["smoke"];
    assert_eq!(p.eval_batch_size, 64);
    assert_eq!(
        (p.caps.train, p.caps.val, p.caps.test),
        (Some(100), Some(10), Some(20))
    );
    assert_eq!(p.difficulty, 1.0);
    assert_eq!(p.normalize, Normalize::Fixed);
}

#[test]
fn difficulty_with_real_data_is_refused() {
    let src = edit(
        MINIMAL,
        "data = \"synthetic\"\n",
        "data = \"real\"\ndifficulty = 0.5\n",
    );
    assert_err_at(
        &src,
        "difficulty = 0.5",
        "0.5",
        "profile.smoke.difficulty only applies to synthetic data; remove it",
    );
}

#[test]
fn difficulty_must_be_within_zero_and_one() {
    let src = edit(
        MINIMAL,
        "data = \"synthetic\"\n",
        "data = \"synthetic\"\ndifficulty = 1.5\n",
    );
    assert_err_at(
        &src,
        "difficulty = 1.5",
        "1.5",
        "profile.smoke.difficulty must be within 0..=1 (got 1.5)",
    );
}

#[test]
fn unknown_normalisation_is_refused() {
    let src = edit(
        MINIMAL,
        "data = \"synthetic\"\n",
        "data = \"synthetic\"\nnormalize = \"zscore\"\n",
    );
    assert_err_at(
        &src,
        "normalize = \"zscore\"",
        "\"zscore\"",
        "profile.smoke.normalize: unknown variant `zscore`, expected `fixed` or `per_image`",
    );
}

// ---------------------------------------------------------------------------------------
// foundation models
// ---------------------------------------------------------------------------------------

/// [`base`] with `lines` in a `[profile.smoke.foundation.teacher]` table.
fn with_teacher_settings(lines: &str) -> String {
    edit(
        &base(),
        TEACHER_HEADER,
        &format!("[profile.smoke.foundation.teacher]\n{lines}\n\n{TEACHER_HEADER}"),
    )
}

#[test]
fn foundation_epochs_must_be_positive() {
    let src = with_teacher_settings("epochs = 0");
    assert_err_at(
        &src,
        "epochs = 0",
        "0",
        "profile.smoke.foundation.teacher.epochs must be positive (got 0)",
    );
}

#[test]
fn foundation_lr_must_be_positive() {
    let src = with_teacher_settings("lr = -1.0");
    assert_err_at(
        &src,
        "lr = -1.0",
        "-1.0",
        "profile.smoke.foundation.teacher.lr must be a positive number (got -1)",
    );
}

#[test]
fn rename_and_ignore_without_weights_are_refused_at_the_model_table() {
    for lines in [
        "ignore = [\"fc.\"]",
        "rename = [{ from = \"module.\", to = \"\" }]",
    ] {
        let src = with_teacher_settings(lines);
        assert_err(
            &src,
            TEACHER_HEADER,
            "profile.smoke.foundation.teacher: `rename` and `ignore` only apply with `weights`",
        );
    }
}

#[test]
fn foundation_settings_resolve() {
    let src = with_teacher_settings(
        "epochs = 4\nlr = 0.5\nweights = \"w/resnet.pth\"\nrename = [{ from = \"module.\", to = \"\" }]\nignore = [\"fc.\"]",
    );
    let e = parse_ok(&src);
    let t = &e.profiles["smoke"].foundations["teacher"];
    assert_eq!(t.epochs, Some(4));
    assert_eq!(t.lr, Some(0.5));
    assert_eq!(t.weights.as_deref(), Some("w/resnet.pth"));
    assert_eq!(t.rename, vec![("module.".to_string(), String::new())]);
    assert_eq!(t.ignore, vec!["fc.".to_string()]);
}

#[test]
fn foundation_model_errors_name_the_foundation_table() {
    let src = edit(
        &base(),
        &format!("{TEACHER_HEADER}\narch = \"resnet_bottleneck\""),
        &format!("{TEACHER_HEADER}\narch = \"resnet51\""),
    );
    assert_err_at(
        &src,
        "arch = \"resnet51\"",
        "\"resnet51\"",
        "profile.smoke.foundation.teacher.model.arch: unknown variant `resnet51`",
    );
}

// ---------------------------------------------------------------------------------------
// model
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_architecture_names_the_known_ones() {
    let src = edit(MINIMAL, "arch = \"resnet\"", "arch = \"resnet18\"");
    assert_err_at(
        &src,
        "arch = \"resnet18\"",
        "\"resnet18\"",
        "profile.smoke.model.arch: unknown variant `resnet18`, expected one of `resnet`, `resnet_bottleneck`, `shufflenetv2`, `vit`",
    );
}

#[test]
fn widths_must_be_a_non_empty_list_of_positive_numbers() {
    for v in ["[]", "[8, 0]"] {
        let line = format!("widths = {v}");
        let src = edit(MINIMAL, "widths = [8, 16]", &line);
        assert_err_at(
            &src,
            &line,
            v,
            "profile.smoke.model.widths must be a non-empty list of positive numbers",
        );
    }
}

#[test]
fn vit_settings_on_a_convolutional_network_are_refused() {
    for (line, key) in [("patch_size = 4", "patch_size"), ("heads = 2", "heads")] {
        let src = edit(
            MINIMAL,
            "depths = [1, 1]\n",
            &format!("depths = [1, 1]\n{line}\n"),
        );
        let (_, value) = line.split_once(" = ").expect("key = value");
        assert_err_at(
            &src,
            line,
            value,
            &format!("profile.smoke.model.{key} only applies to arch = \"vit\"; remove it"),
        );
    }
}

#[test]
fn depths_must_list_one_positive_count_per_stage() {
    for v in ["[1]", "[1, 0]", "[1, 1, 1]"] {
        let line = format!("depths = {v}");
        let src = edit(MINIMAL, "depths = [1, 1]", &line);
        assert_err_at(
            &src,
            &line,
            v,
            "profile.smoke.model.depths must list one positive block count per stage (2 widths given; resnet: one width per stage)",
        );
    }
}

#[test]
fn shufflenet_depths_follow_its_width_layout() {
    let src = with_student(
        "[profile.smoke.model]\narch = \"shufflenetv2\"\nwidths = [8, 16, 32, 64]\ndepths = [1, 1, 1]\n",
    );
    assert_err_at(
        &src,
        "depths = [1, 1, 1]",
        "[1, 1, 1]",
        "(4 widths given; shufflenetv2: widths = [stem, one per stage…, final]",
    );
}

#[test]
fn shufflenet_stage_widths_must_be_even() {
    let src = with_student(
        "[profile.smoke.model]\narch = \"shufflenetv2\"\nwidths = [9, 16, 33, 65]\ndepths = [1, 1]\n",
    );
    assert_err_at(
        &src,
        "widths = [9, 16, 33, 65]",
        "[9",
        "profile.smoke.model.widths: ShuffleNetV2 stage width 33 must be even (each unit splits it in halves)",
    );
    // The stem and final widths may be odd.
    let src = with_student(
        "[profile.smoke.model]\narch = \"shufflenetv2\"\nwidths = [9, 16, 32, 65]\ndepths = [1, 1]\n",
    );
    parse_ok(&src);
}

#[test]
fn unknown_stem_is_refused() {
    let src = edit(
        MINIMAL,
        "depths = [1, 1]\n",
        "depths = [1, 1]\nstem = \"resnet\"\n",
    );
    assert_err_at(
        &src,
        "stem = \"resnet\"",
        "\"resnet\"",
        "profile.smoke.model.stem: unknown variant `resnet`, expected `cifar` or `imagenet`",
    );
}

#[test]
fn imagenet_stem_resolves() {
    let src = edit(
        MINIMAL,
        "depths = [1, 1]\n",
        "depths = [1, 1]\nstem = \"imagenet\"\n",
    );
    assert_eq!(parse_ok(&src).profiles["smoke"].model.stem, Stem::Imagenet);
}

#[test]
fn vit_without_patch_size_or_heads_is_refused_at_its_arch() {
    for extra in ["heads = 2\n", "patch_size = 4\n", ""] {
        let src = with_student(&format!(
            "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [1]\n{extra}"
        ));
        assert_err_at(
            &src,
            "arch = \"vit\"",
            "\"vit\"",
            "profile.smoke.model: a vit needs patch_size and heads (ViT-B/16: 16 and 12)",
        );
    }
}

#[test]
fn vit_patch_size_must_divide_the_image_size() {
    for v in ["5", "0"] {
        let line = format!("patch_size = {v}");
        let src = with_student(&format!(
            "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [1]\n{line}\nheads = 2\n"
        ));
        assert_err_at(
            &src,
            &line,
            v,
            &format!("profile.smoke.model.patch_size {v} must divide the profile's image_size 28"),
        );
    }
}

#[test]
fn vit_heads_must_divide_the_width() {
    for v in ["3", "0"] {
        let line = format!("heads = {v}");
        let src = with_student(&format!(
            "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [1]\npatch_size = 4\n{line}\n"
        ));
        assert_err_at(
            &src,
            &line,
            v,
            &format!("profile.smoke.model.heads {v} must divide the width 16"),
        );
    }
}

#[test]
fn vit_depths_must_be_one_block_count() {
    let src = with_student(
        "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [1, 1]\npatch_size = 4\nheads = 2\n",
    );
    assert_err_at(
        &src,
        "depths = [1, 1]",
        "[1, 1]",
        "profile.smoke.model.depths must list one positive block count per stage (1 widths given; vit: ",
    );
    assert!(parse_err(&src).contains(
        "(1 widths given; vit: widths = [embedding width] and depths = [blocks], e.g. [768] and [12] for ViT-B/16)"
    ));
}

#[test]
fn vit_student_resolves_with_its_image_size() {
    let src = with_student(
        "[profile.smoke.model]\narch = \"vit\"\nwidths = [16]\ndepths = [2]\npatch_size = 4\nheads = 2\n",
    );
    let m = &parse_ok(&src).profiles["smoke"].model;
    assert_eq!(m.arch, Arch::Vit);
    assert_eq!(
        (m.patch_size, m.heads, m.image_size),
        (Some(4), Some(2), Some(28))
    );
}

// ---------------------------------------------------------------------------------------
// optim
// ---------------------------------------------------------------------------------------

#[test]
fn unknown_optimiser_is_refused() {
    let src = edit(MINIMAL, "name = \"sgd\"", "name = \"adam\"");
    assert_err_at(
        &src,
        "name = \"adam\"",
        "\"adam\"",
        "profile.smoke.optim.name: unknown variant `adam`, expected `sgd` or `adamw`",
    );
}

#[test]
fn optimiser_lr_must_be_a_positive_number() {
    for (v, shown) in [("0.0", "0"), ("nan", "NaN"), ("-inf", "-inf")] {
        let line = format!("lr = {v}");
        let src = edit(MINIMAL, "lr = 0.1", &line);
        assert_err_at(
            &src,
            &line,
            v,
            &format!("profile.smoke.optim.lr must be a positive number (got {shown})"),
        );
    }
}

#[test]
fn momentum_must_be_within_zero_and_one() {
    for v in ["1.0", "-0.1"] {
        let line = format!("momentum = {v}");
        let src = edit(MINIMAL, "lr = 0.1\n", &format!("lr = 0.1\n{line}\n"));
        assert_err_at(
            &src,
            &line,
            v,
            "profile.smoke.optim.momentum must be within [0, 1)",
        );
    }
}

#[test]
fn weight_decay_must_not_be_negative() {
    let src = edit(MINIMAL, "lr = 0.1\n", "lr = 0.1\nweight_decay = -1e-4\n");
    assert_err_at(
        &src,
        "weight_decay = -1e-4",
        "-1e-4",
        "profile.smoke.optim.weight_decay must be zero or positive (got -0.0001)",
    );
}

#[test]
fn unknown_schedule_is_refused() {
    let src = edit(MINIMAL, "lr = 0.1\n", "lr = 0.1\nschedule = \"step\"\n");
    assert_err_at(
        &src,
        "schedule = \"step\"",
        "\"step\"",
        "profile.smoke.optim.schedule: unknown variant `step`, expected `constant` or `cosine`",
    );
}

#[test]
fn optimiser_settings_resolve() {
    let src = edit(
        MINIMAL,
        "name = \"sgd\"\nlr = 0.1\n",
        "name = \"adamw\"\nlr = 0.001\nmomentum = 0.0\nweight_decay = 0.05\nschedule = \"constant\"\nwarmup_epochs = 3\n",
    );
    let o = &parse_ok(&src).profiles["smoke"].optim;
    assert_eq!(o.name, OptimizerKind::Adamw);
    assert_eq!(o.lr, 0.001);
    assert_eq!(o.momentum, 0.0);
    assert_eq!(o.weight_decay, 0.05);
    assert_eq!(o.schedule, Schedule::Constant);
    assert_eq!(o.warmup_epochs, 3);
}

// ---------------------------------------------------------------------------------------
// Experiment::select_profile and load
// ---------------------------------------------------------------------------------------

/// [`MINIMAL`] with its profile as `a` and a copy as `b`.
fn two_profiles() -> String {
    let profile = &MINIMAL[MINIMAL.find("[profile.smoke]").expect("profile")..];
    format!(
        "{}\n{}",
        MINIMAL.replace("profile.smoke", "profile.a"),
        profile.replace("profile.smoke", "profile.b")
    )
}

#[test]
fn select_profile_prefers_the_request_then_default_then_smoke_then_the_only_one() {
    let e = parse_ok(MINIMAL);
    assert_eq!(e.select_profile(None).expect("smoke").0, "smoke");
    assert_eq!(e.select_profile(Some("smoke")).expect("smoke").0, "smoke");
    let only = parse_ok(&MINIMAL.replace("profile.smoke", "profile.only"));
    assert_eq!(only.select_profile(None).expect("only").0, "only");
    let src = edit(
        &two_profiles(),
        "stages = [\"decompose\"]\n",
        "stages = [\"decompose\"]\ndefault_profile = \"b\"\n",
    );
    let e = parse_ok(&src);
    assert_eq!(e.select_profile(None).expect("default").0, "b");
    assert_eq!(e.select_profile(Some("a")).expect("requested").0, "a");
}

#[test]
fn select_profile_without_default_among_several_asks_for_one() {
    let e = parse_ok(&two_profiles());
    let err = e.select_profile(None).expect_err("ambiguous");
    assert_eq!(err.exit_code(), 2);
    assert!(matches!(err, Error::BadInput(_)));
    assert_eq!(
        err.to_string(),
        "exp.toml: several profiles (a, b) and no `default_profile`; pass --profile NAME"
    );
}

#[test]
fn select_profile_with_an_unknown_name_names_the_defined_ones() {
    let e = parse_ok(MINIMAL);
    let err = e.select_profile(Some("paper")).expect_err("unknown");
    assert_eq!(err.exit_code(), 2);
    assert!(matches!(err, Error::BadInput(_)));
    assert!(
        err.to_string().starts_with(
            "exp.toml: no profile `paper` (defined: smoke); add a [profile.paper] table"
        ),
        "{err}"
    );
}

#[test]
fn load_of_a_missing_file_says_where_experiments_live() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/no-such-experiment.toml");
    let err = load(&path, registry(), &CATALOG).expect_err("missing");
    assert_eq!(err.exit_code(), 2);
    assert!(matches!(err, Error::BadInput(_)));
    assert!(
        err.to_string()
            .contains("experiment file not found (experiment files live under experiments/)"),
        "{err}"
    );
}

/// A catalogue that knows a method it cannot run, as a build without one of the paper's
/// methods would.
struct PartialCatalog;

impl kdbench::spec::catalog::MethodCatalog for PartialCatalog {
    fn known(&self) -> &[(&'static str, &'static str)] {
        &[("stl", "STL"), ("future", "Future")]
    }

    fn lookup(&self, key: &str) -> Option<&dyn kdbench::spec::catalog::MethodSettings> {
        CATALOG.lookup(key).filter(|_| key == "stl")
    }
}

#[test]
fn a_known_method_this_build_lacks_is_refused_with_the_available_ones() {
    let src = edit(
        MINIMAL,
        r#"method = ["stl"]"#,
        r#"method = ["stl", "future"]"#,
    );
    let err = parse(&src, Path::new("exp.toml"), registry(), &PartialCatalog).unwrap_err();
    let msg = err.to_string();
    assert_eq!(err.exit_code(), 2);
    assert!(
        msg.starts_with(&loc(&src, r#""future""#, r#""future""#)),
        "{msg}"
    );
    assert!(
        msg.contains("method `future` is not implemented in this build (available: stl)"),
        "{msg}"
    );
}

#[test]
fn a_profile_table_of_a_method_outside_the_grid_starts_from_its_defaults() {
    // LoRKD is not in the grid: its profile table is still read, over LoRKD's own defaults
    // (feature KD), so a KD weight is accepted rather than refused as "KD is off".
    let src = append(
        MINIMAL,
        "[profile.smoke.method.lorkd]\nkd_weight = 0.5\nrank = 2\n",
    );
    parse_ok(&src);
    let src = append(MINIMAL, "[profile.smoke.method.lorkd]\nrank = 0\n");
    assert_err_at(
        &src,
        "rank = 0",
        "0",
        "profile.smoke.method.lorkd.rank must be positive (got 0)",
    );
}

#[test]
fn transfer_settings_resolve_over_the_profile() {
    let src = append(
        &base(),
        "[profile.smoke.transfer]\nepochs = 3\nmode = \"linear_probe\"\noptimizer = \"adamw\"\nweight_decay = 0.0\n",
    );
    let t = &parse_ok(&src).profiles["smoke"].transfer;
    assert_eq!(t.epochs, 3);
    assert_eq!(t.mode, kdbench::spec::run::TransferMode::LinearProbe);
    assert_eq!(t.optim.name, OptimizerKind::Adamw);
    // A linear probe keeps the profile's learning rate; fine-tuning takes a fifth of it.
    assert_eq!(t.optim.lr, 0.1);
    assert_eq!(t.optim.weight_decay, 0.0);
    let t = &parse_ok(&base()).profiles["smoke"].transfer;
    assert_eq!((t.epochs, t.optim.lr), (2, 0.1 * 0.2));
    let src = append(&base(), "[profile.smoke.transfer]\nepochs = 0\n");
    assert_err_at(
        &src,
        "epochs = 0",
        "0",
        "profile.smoke.transfer.epochs must be positive (got 0)",
    );
    let src = append(&base(), "[profile.smoke.transfer]\nmode = \"probe\"\n");
    assert_err_at(
        &src,
        "mode = \"probe\"",
        "\"probe\"",
        "profile.smoke.transfer.mode: unknown variant `probe`, expected `finetune` or `linear_probe`",
    );
}

#[test]
fn reference_tables_are_checked() {
    let row = |extra: &str| {
        append(
            &base(),
            &format!("[reference]\nsource = \"Table 3\"\nstage = \"decompose\"\n\n[[reference.row]]\n{extra}\n"),
        )
    };
    let ok =
        row("foundation = \"teacher\"\nmethod = \"best\"\nvalues = { colon = 90.5, avg = 80.0 }");
    let r = parse_ok(&ok).reference.expect("reference");
    assert_eq!(r.rows[0].values["colon"], 90.5);
    let src = row("foundation = \"nobody\"\nmethod = \"lorkd\"\nvalues = {}");
    assert_err_at(
        &src,
        "foundation = \"nobody\"",
        "\"nobody\"",
        "reference.row.foundation: `nobody` is not in grid.foundation (teacher)",
    );
    let src = row("foundation = \"teacher\"\nmethod = \"lorkd\"\nvalues = { covid = 1.0 }");
    assert_err_at(
        &src,
        "covid = 1.0",
        "1.0",
        "reference.row.values: `covid` is not a column of this table",
    );
    let src = row("foundation = \"teacher\"\nmethod = \"lorkd\"\nvalues = { colon = 190.0 }");
    assert_err_at(
        &src,
        "colon = 190.0",
        "190.0",
        "reference.row.values.colon must be a percentage (0..=100)",
    );
    let src = row("foundation = \"teacher\"\nmethod = \"loRA\"\nvalues = {}");
    assert_err_at(
        &src,
        "method = \"loRA\"",
        "\"loRA\"",
        "reference.row.method: unknown method `loRA`",
    );
}
