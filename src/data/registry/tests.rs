//! Tests of the registry parser: the repository's `datasets.toml`, `extends`, and every
//! kind of bad entry, each reported at its line and column.

use super::*;

fn real() -> Registry {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("datasets.toml");
    Registry::load(&path).expect("the repository's datasets.toml parses")
}

fn parse(text: &str) -> Result<Registry> {
    Registry::from_str(text, Path::new("reg.toml"))
}

fn msg(r: Result<Registry>) -> String {
    match r {
        Err(Error::BadInput(m)) => m,
        Err(e) => panic!("expected bad input, got {e:?}"),
        Ok(_) => panic!("expected an error"),
    }
}

const MINI: &str = r#"
[[dataset]]
key = "pre"
name = "Pre"
role = "pretrain"
source = "test"
expert_for = { d1 = 2 }

[[dataset.task]]
id = 1
key = "a"
name = "A"
modality = "CT"
region = "Chest"
labels = 3
images = 10
format = "npz"
path = "pre/a.npz"

[[dataset.task]]
id = 2
key = "b"
name = "B"
modality = "CT"
region = "Chest"
labels = 2
images = 10
format = "image_folder"
path = "pre/b"

[[dataset]]
key = "down"
name = "Down"
role = "downstream"
source = "test"

[[dataset.task]]
id = 1
key = "d1"
name = "D1"
modality = "CT"
region = "Chest"
labels = 2
images = 10
format = "image_folder"
path = "down/d1"
"#;

#[test]
fn real_registry_has_the_papers_tasks() {
    let reg = real();
    assert_eq!(
        reg.keys(),
        [
            "radimagenet",
            "medmnist",
            "medmnist-pneumonia",
            "medmt",
            "downstream"
        ]
    );
    let counts: Vec<usize> = ["radimagenet", "medmnist", "medmt", "downstream"]
        .iter()
        .map(|k| reg.dataset(k).unwrap().tasks.len())
        .collect();
    assert_eq!(counts, [11, 10, 8, 7]);

    let labels = |ds: &str| -> Vec<usize> {
        reg.dataset(ds)
            .unwrap()
            .tasks
            .iter()
            .map(|t| t.labels)
            .collect()
    };
    assert_eq!(
        labels("radimagenet"),
        [6, 28, 2, 13, 18, 14, 9, 25, 26, 10, 14]
    );
    assert_eq!(labels("medmnist"), [9, 4, 11, 8, 2, 8, 7, 11, 11, 2]);
    assert_eq!(labels("medmt"), [5, 8, 3, 8, 2, 4, 15, 12]);
    assert_eq!(labels("downstream"), [2, 4, 4, 2, 3, 7, 10]);

    // The paper's numbers are kept where the real files differ.
    let medmt = reg.dataset("medmt").unwrap();
    assert_eq!(medmt.task("skin").unwrap().paper_labels, Some(3));
    assert_eq!(medmt.task("breast").unwrap().paper_labels, Some(8));
    let chest = reg.dataset("medmnist").unwrap().task("chest").unwrap();
    assert_eq!(chest.multilabel, Some(Binarise::Any));
    assert_eq!(chest.path, "medmnist/chestmnist.npz");
    assert_eq!(chest.images, 112120);

    // `extends` replaced only the chest task, in place, and inherited Table 1.
    let pn = reg.dataset("medmnist-pneumonia").unwrap();
    let mm = reg.dataset("medmnist").unwrap();
    assert_eq!(pn.tasks.len(), 10);
    assert_eq!(pn.tasks[9].key, "chest");
    assert_eq!(pn.tasks[9].path, "medmnist/pneumoniamnist.npz");
    assert_eq!(pn.tasks[9].images, 5856);
    assert_eq!(pn.tasks[9].multilabel, None);
    assert_eq!(pn.tasks[..9], mm.tasks[..9]);
    assert_eq!(pn.expert_for, mm.expert_for);

    // Supplement Table 1.
    let ef = |ds: &str| -> Vec<(String, usize)> {
        reg.dataset(ds)
            .unwrap()
            .expert_for
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    };
    let pairs = |v: &[(&str, usize)]| -> Vec<(String, usize)> {
        let mut v: Vec<(String, usize)> = v.iter().map(|(k, n)| (k.to_string(), *n)).collect();
        v.sort();
        v
    };
    assert_eq!(
        ef("radimagenet"),
        pairs(&[
            ("covid", 1),
            ("btc", 10),
            ("ad", 10),
            ("mura_shoulder", 6),
            ("auitd", 3),
            ("det10", 1)
        ])
    );
    assert_eq!(
        ef("medmnist"),
        pairs(&[("covid", 10), ("auitd", 5), ("ham10000", 7), ("det10", 10)])
    );
    assert_eq!(ef("medmt"), pairs(&[("ham10000", 2)]));
    let down: Vec<&str> = reg
        .dataset("downstream")
        .unwrap()
        .tasks
        .iter()
        .map(|t| t.key.as_str())
        .collect();
    assert_eq!(
        down,
        [
            "covid",
            "btc",
            "ad",
            "mura_shoulder",
            "auitd",
            "ham10000",
            "det10"
        ]
    );
    // No checksum is invented.
    assert!(reg
        .datasets
        .iter()
        .flat_map(|d| &d.tasks)
        .all(|t| t.sha256.is_none()));
}

#[test]
fn mini_registry_parses() {
    let reg = parse(MINI).unwrap();
    assert_eq!(reg.keys(), ["pre", "down"]);
    assert_eq!(reg.dataset("pre").unwrap().expert_for["d1"], 2);
    assert_eq!(
        reg.dataset("pre").unwrap().task("b").unwrap().format,
        Format::ImageFolder
    );
    assert!(reg.require("nope").is_err());
}

#[test]
fn unknown_field_error_has_line_and_column() {
    let text = MINI.replace(
        "images = 10\nformat = \"npz\"",
        "imagez = 10\nformat = \"npz\"",
    );
    let m = msg(parse(&text));
    let line = text.lines().position(|l| l.starts_with("imagez")).unwrap() + 1;
    assert!(m.starts_with(&format!("reg.toml:{line}:1: ")), "{m}");
    assert!(m.contains("imagez"), "{m}");
}

#[test]
fn syntax_error_has_line_and_column() {
    let m = msg(parse("[[dataset]]\nkey = \"x\"\nname = \n"));
    assert!(m.starts_with("reg.toml:3:"), "{m}");
}

#[test]
fn validation_errors() {
    let m = msg(parse(&MINI.replace("key = \"down\"", "key = \"pre\"")));
    assert!(m.contains("duplicate data set key `pre`"), "{m}");

    let m = msg(parse(&MINI.replace("id = 2", "id = 3")));
    assert!(m.contains("ids must be 1..=2"), "{m}");

    let m = msg(parse(&MINI.replace("labels = 3", "labels = 0")));
    assert!(m.contains("labels must be at least 1"), "{m}");
    assert!(m.starts_with("reg.toml:"), "{m}");

    let m = msg(parse(&MINI.replace("{ d1 = 2 }", "{ d9 = 2 }")));
    assert!(m.contains("`d9`") && m.contains("downstream"), "{m}");

    let m = msg(parse(&MINI.replace("{ d1 = 2 }", "{ d1 = 3 }")));
    assert!(m.contains("out of range"), "{m}");

    let m = msg(parse(&MINI.replace("key = \"b\"", "key = \"a\"")));
    assert!(m.contains("duplicate task key `a`"), "{m}");

    let m = msg(parse(&MINI.replace("path = \"pre/b\"", "path = \"../b\"")));
    assert!(m.contains("relative"), "{m}");

    let ext = format!("{MINI}\n[[dataset]]\nkey = \"x\"\nextends = \"nope\"\n");
    let m = msg(parse(&ext));
    assert!(m.contains("unknown data set `nope`"), "{m}");
}

#[test]
fn extends_replaces_and_appends() {
    let ext = format!(
        "{MINI}
[[dataset]]
key = \"pre2\"
extends = \"pre\"

[[dataset.task]]
id = 2
key = \"b\"
name = \"B2\"
modality = \"MRI\"
region = \"Head\"
labels = 4
images = 5
format = \"npz\"
path = \"pre/b2.npz\"

[[dataset.task]]
id = 3
key = \"c\"
name = \"C\"
modality = \"MRI\"
region = \"Head\"
labels = 2
images = 5
format = \"npz\"
path = \"pre/c.npz\"
"
    );
    let reg = parse(&ext).unwrap();
    let d = reg.dataset("pre2").unwrap();
    assert_eq!(d.name, "Pre");
    assert_eq!(d.role, Role::Pretrain);
    let keys: Vec<&str> = d.tasks.iter().map(|t| t.key.as_str()).collect();
    assert_eq!(keys, ["a", "b", "c"]);
    assert_eq!(d.task("b").unwrap().labels, 4);
    assert_eq!(d.expert_for["d1"], 2);
}
