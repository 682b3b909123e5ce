//! The dataset registry: `datasets.toml` at the repository root.
//!
//! The registry is the single place that says which tasks a data set has, how many labels
//! each task has, where its files live under the data root and in which format. Experiment
//! files only name data sets and tasks by key; the loaders ([`super::load`]) and the
//! synthetic generator both take their task lists and label counts from here, so a smoke run
//! and a paper run have the same task structure.
//!
//! Parsing is strict (`deny_unknown_fields`) and every error names `file:line:column`, so a
//! typo in the registry is caught before anything runs. `extends` lets one data set reuse
//! another's tasks and replace some of them (MedMNIST with PneumoniaMNIST as its chest task);
//! it is resolved here, so consumers only ever see complete [`DatasetEntry`] values.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{Error, Result};
use crate::util::location::at;
use crate::util::text_file::read_text;

/// Whether a data set is used for pre-training/decomposition or for fine-tuning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Pretrain,
    Downstream,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Pretrain => "pretrain",
            Role::Downstream => "downstream",
        }
    }
}

/// On-disk layout of one task's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A MedMNIST-layout `.npz` (`train_images`, `train_labels`, `val_*`, `test_*`).
    Npz,
    /// A directory with one sub-folder per class, optionally below `train/ val/ test/`.
    ImageFolder,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Npz => "npz",
            Format::ImageFolder => "image_folder",
        }
    }

    /// What the file at a task's path must be, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Format::Npz => "a MedMNIST-layout .npz file",
            Format::ImageFolder => "a folder with one sub-folder of images per class",
        }
    }
}

/// How a multi-label file is turned into the single label the task trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Binarise {
    /// 1 when any label of the sample is set, else 0.
    Any,
}

/// One task of a data set, as declared in the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskEntry {
    /// The paper's task id, `1..=n` in file order.
    pub id: usize,
    pub key: String,
    pub name: String,
    pub modality: String,
    pub region: String,
    /// Number of classes the files really have; the loader checks labels against it.
    pub labels: usize,
    /// Number of images the files really have (informational).
    pub images: usize,
    /// The paper's label count where it differs from `labels`.
    pub paper_labels: Option<usize>,
    /// The paper's image count where it differs from `images`.
    pub paper_images: Option<usize>,
    pub format: Format,
    /// Relative to the data root.
    pub path: String,
    /// Lower-case hex sha256 of the file, where known.
    pub sha256: Option<String>,
    pub multilabel: Option<Binarise>,
    pub note: Option<String>,
}

/// One data set with `extends` resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatasetEntry {
    pub key: String,
    pub name: String,
    pub role: Role,
    pub source: String,
    /// Downstream task key → id of the pre-training task whose expert is fine-tuned on it
    /// (supplement Table 1). A downstream task that is absent has no matching expert (†).
    pub expert_for: BTreeMap<String, usize>,
    pub tasks: Vec<TaskEntry>,
}

impl DatasetEntry {
    /// The task with this key.
    pub fn task(&self, key: &str) -> Option<&TaskEntry> {
        self.tasks.iter().find(|t| t.key == key)
    }
}

/// The parsed registry, data sets in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registry {
    /// The file it was read from (used in messages).
    pub path: PathBuf,
    pub datasets: Vec<DatasetEntry>,
}

/// File name of the registry in the current directory when `--registry` is not given.
pub const DEFAULT_REGISTRY: &str = "datasets.toml";

// ------------------------------------------------------------------------------------------
// Raw (as written) form. Spans are kept so that validation errors can point at the line.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    dataset: Vec<Spanned<RawDataset>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    key: Spanned<String>,
    extends: Option<Spanned<String>>,
    name: Option<String>,
    role: Option<Role>,
    source: Option<String>,
    expert_for: Option<Spanned<BTreeMap<String, usize>>>,
    #[serde(default)]
    task: Vec<Spanned<RawTask>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTask {
    id: usize,
    key: Spanned<String>,
    name: String,
    modality: String,
    region: String,
    labels: Spanned<usize>,
    images: usize,
    paper_labels: Option<Spanned<usize>>,
    paper_images: Option<usize>,
    format: Format,
    path: Spanned<String>,
    sha256: Option<Spanned<String>>,
    multilabel: Option<Spanned<Binarise>>,
    note: Option<String>,
}

/// Turns byte offsets into `file:line:col` prefixes.
struct Locator<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Locator<'_> {
    fn err(&self, span: Range<usize>, msg: impl std::fmt::Display) -> Error {
        Error::input(at(self.path, self.text, span, msg))
    }
}

impl Registry {
    /// Reads and validates a registry file.
    pub fn load(path: &Path) -> Result<Registry> {
        let Some(text) = read_text(path, "dataset registry")? else {
            return Err(Error::input(format!(
                "dataset registry {} not found; run from the repository root (where \
                 datasets.toml lives) or pass --registry PATH",
                path.display()
            )));
        };
        Registry::from_str(&text, path)
    }

    /// Parses and validates registry text; `path` is only used in messages.
    pub fn from_str(text: &str, path: &Path) -> Result<Registry> {
        let loc = Locator { text, path };
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let msg = e.message().trim_end().to_string();
            match e.span() {
                Some(span) => loc.err(span, msg),
                None => Error::input(format!("{}: {msg}", path.display())),
            }
        })?;

        let mut datasets: Vec<DatasetEntry> = Vec::with_capacity(raw.dataset.len());
        // Spans of each data set's `expert_for`, checked once every data set is known.
        let mut expert_spans: Vec<Option<Range<usize>>> = Vec::new();
        for raw_ds in raw.dataset {
            let ds_span = raw_ds.span();
            let raw_ds = raw_ds.into_inner();
            let key = raw_ds.key.get_ref().clone();
            check_key(&loc, &raw_ds.key, "data set key")?;
            if datasets.iter().any(|d| d.key == key) {
                return Err(loc.err(raw_ds.key.span(), format!("duplicate data set key `{key}`")));
            }
            let parent = match &raw_ds.extends {
                Some(ext) => Some(
                    datasets
                        .iter()
                        .find(|d| &d.key == ext.get_ref())
                        .ok_or_else(|| {
                            loc.err(
                                ext.span(),
                                format!(
                                    "data set `{key}` extends unknown data set `{}` (it must be \
                                     defined earlier in the file)",
                                    ext.get_ref()
                                ),
                            )
                        })?,
                ),
                None => None,
            };
            let missing = |field: &str| {
                loc.err(
                    ds_span.clone(),
                    format!("data set `{key}`: missing field `{field}`"),
                )
            };
            let name = match (raw_ds.name, parent) {
                (Some(n), _) => n,
                (None, Some(p)) => p.name.clone(),
                (None, None) => return Err(missing("name")),
            };
            let role = match (raw_ds.role, parent) {
                (Some(r), _) => r,
                (None, Some(p)) => p.role,
                (None, None) => return Err(missing("role")),
            };
            let source = match (raw_ds.source, parent) {
                (Some(s), _) => s,
                (None, Some(p)) => p.source.clone(),
                (None, None) => return Err(missing("source")),
            };
            let (expert_for, expert_span) = match (raw_ds.expert_for, parent) {
                (Some(e), _) => {
                    let span = e.span();
                    (e.into_inner(), Some(span))
                }
                (None, Some(p)) => (p.expert_for.clone(), None),
                (None, None) => (BTreeMap::new(), None),
            };

            // Tasks: inherited ones first (replaced in place by key), then new ones.
            let mut tasks: Vec<TaskEntry> = parent.map(|p| p.tasks.clone()).unwrap_or_default();
            let mut own_keys = BTreeSet::new();
            for raw_task in raw_ds.task {
                let task_span = raw_task.span();
                let task = convert_task(&loc, &key, raw_task.into_inner())?;
                if !own_keys.insert(task.key.clone()) {
                    return Err(loc.err(
                        task_span,
                        format!("data set `{key}`: duplicate task key `{}`", task.key),
                    ));
                }
                match tasks.iter_mut().find(|t| t.key == task.key) {
                    Some(slot) => *slot = task,
                    None => tasks.push(task),
                }
            }
            if tasks.is_empty() {
                return Err(loc.err(ds_span, format!("data set `{key}` has no tasks")));
            }
            for (i, task) in tasks.iter().enumerate() {
                if task.id != i + 1 {
                    return Err(loc.err(
                        ds_span,
                        format!(
                            "data set `{key}`: task `{}` has id {} but is task number {} \
                             (ids must be 1..={} in file order)",
                            task.key,
                            task.id,
                            i + 1,
                            tasks.len()
                        ),
                    ));
                }
            }
            if role == Role::Downstream && !expert_for.is_empty() {
                return Err(loc.err(
                    expert_span.unwrap_or(ds_span),
                    format!(
                        "data set `{key}` is a downstream set; `expert_for` belongs to \
                         pre-training sets"
                    ),
                ));
            }
            datasets.push(DatasetEntry {
                key,
                name,
                role,
                source,
                expert_for,
                tasks,
            });
            expert_spans.push(expert_span);
        }

        // `expert_for` may name downstream tasks defined later in the file.
        let downstream: BTreeSet<&str> = datasets
            .iter()
            .filter(|d| d.role == Role::Downstream)
            .flat_map(|d| d.tasks.iter().map(|t| t.key.as_str()))
            .collect();
        for (ds, span) in datasets.iter().zip(&expert_spans) {
            let span = span.clone().unwrap_or(0..0);
            for (down, &expert) in &ds.expert_for {
                if !downstream.contains(down.as_str()) {
                    let known: Vec<&str> = downstream.iter().copied().collect();
                    return Err(loc.err(
                        span,
                        format!(
                            "data set `{}`: expert_for names `{down}`, which is not a task of \
                             any downstream data set (known: {})",
                            ds.key,
                            if known.is_empty() {
                                "none".to_string()
                            } else {
                                known.join(", ")
                            }
                        ),
                    ));
                }
                if expert == 0 || expert > ds.tasks.len() {
                    return Err(loc.err(
                        span,
                        format!(
                            "data set `{}`: expert_for.{down} = {expert} is out of range; \
                             task ids are 1..={}",
                            ds.key,
                            ds.tasks.len()
                        ),
                    ));
                }
            }
        }

        Ok(Registry {
            path: path.to_path_buf(),
            datasets,
        })
    }

    /// The data set with this key.
    pub fn dataset(&self, key: &str) -> Option<&DatasetEntry> {
        self.datasets.iter().find(|d| d.key == key)
    }

    /// Data set keys in file order.
    pub fn keys(&self) -> Vec<&str> {
        self.datasets.iter().map(|d| d.key.as_str()).collect()
    }

    /// The data set with this key, or a bad-input error listing the known keys.
    pub fn require(&self, key: &str) -> Result<&DatasetEntry> {
        self.dataset(key).ok_or_else(|| {
            Error::input(format!(
                "unknown data set `{key}` (known in {}: {})",
                self.path.display(),
                self.keys().join(", ")
            ))
        })
    }
}

/// Keys are used in file names and run ids: keep them to a safe alphabet.
fn check_key(loc: &Locator<'_>, key: &Spanned<String>, what: &str) -> Result<()> {
    let k = key.get_ref();
    let ok = !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(loc.err(
            key.span(),
            format!("{what} `{k}` must be non-empty lowercase letters, digits, `_` or `-`"),
        ))
    }
}

fn convert_task(loc: &Locator<'_>, ds: &str, raw: RawTask) -> Result<TaskEntry> {
    check_key(loc, &raw.key, "task key")?;
    let key = raw.key.get_ref().clone();
    if *raw.labels.get_ref() == 0 {
        return Err(loc.err(
            raw.labels.span(),
            format!("data set `{ds}`, task `{key}`: labels must be at least 1"),
        ));
    }
    if let Some(pl) = &raw.paper_labels {
        if *pl.get_ref() == 0 {
            return Err(loc.err(
                pl.span(),
                format!("data set `{ds}`, task `{key}`: paper_labels must be at least 1"),
            ));
        }
    }
    let rel = Path::new(raw.path.get_ref());
    let safe = !raw.path.get_ref().is_empty()
        && rel
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !safe {
        return Err(loc.err(
            raw.path.span(),
            format!(
                "data set `{ds}`, task `{key}`: path `{}` must be relative to the data root \
                 (no leading `/`, no `..`)",
                raw.path.get_ref()
            ),
        ));
    }
    let sha256 = match raw.sha256 {
        Some(s) => {
            let hex = s.get_ref().to_ascii_lowercase();
            if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(loc.err(
                    s.span(),
                    format!(
                        "data set `{ds}`, task `{key}`: sha256 must be 64 hex digits, got `{}`",
                        s.get_ref()
                    ),
                ));
            }
            if raw.format != Format::Npz {
                return Err(loc.err(
                    s.span(),
                    format!(
                        "data set `{ds}`, task `{key}`: sha256 is only supported for single \
                         files (format = \"npz\")"
                    ),
                ));
            }
            Some(hex)
        }
        None => None,
    };
    let multilabel = match raw.multilabel {
        Some(m) => {
            if raw.format != Format::Npz {
                return Err(loc.err(
                    m.span(),
                    format!("data set `{ds}`, task `{key}`: multilabel applies to npz files only"),
                ));
            }
            if *raw.labels.get_ref() != 2 {
                return Err(loc.err(
                    m.span(),
                    format!(
                        "data set `{ds}`, task `{key}`: multilabel = \"any\" yields a binary \
                         task, so labels must be 2 (got {})",
                        raw.labels.get_ref()
                    ),
                ));
            }
            Some(*m.get_ref())
        }
        None => None,
    };
    Ok(TaskEntry {
        id: raw.id,
        key,
        name: raw.name,
        modality: raw.modality,
        region: raw.region,
        labels: raw.labels.into_inner(),
        images: raw.images,
        paper_labels: raw.paper_labels.map(Spanned::into_inner),
        paper_images: raw.paper_images,
        format: raw.format,
        path: raw.path.into_inner(),
        sha256,
        multilabel,
        note: raw.note,
    })
}

#[cfg(test)]
mod tests;
