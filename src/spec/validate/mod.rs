//! Validation: turn a parsed [`ExperimentFile`] into a typed [`Experiment`], checking every
//! name against the method catalogue and the dataset registry, and every number against its
//! valid range. Each error names `file:line:column` and the fix.
//!
//! Split by concern: this file holds the experiment as a whole; `profile` a profile's data
//! and training sizes, `network` a network's configuration, `optim` the optimiser,
//! `methods` the grid's methods and their `[method.NAME]` tables (whose own settings each
//! method reads itself, see [`super::catalog`]), `foundation` the foundation models, and
//! `names` the registry names of the grid.

mod analysis;
mod foundation;
mod methods;
mod names;
mod network;
mod optim;
mod profile;
mod transfer;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::catalog::MethodCatalog;
use super::file::ExperimentFile;
use super::options::MethodOptions;
use super::reference::Reference;
use super::run::{
    CkaEstimator, CkaProtocol, ModelConfig, OptimConfig, OptimizerKind, Stage, TransferMode,
};
use super::settings::SettingError;
use crate::data::registry::{Registry, Role};
use crate::data::settings::{DataSettings, Normalize, SplitCaps};
use crate::data::DataKind;
use crate::error::{Error, Result};
use crate::util::location::at;
use crate::util::text_file::read_text;

/// A validated experiment.
#[derive(Debug, Clone)]
pub struct Experiment {
    pub path: PathBuf,
    pub name: String,
    pub description: String,
    pub seeds: Vec<u64>,
    pub stages: Vec<Stage>,
    /// Canonical method keys, in file order.
    pub methods: Vec<String>,
    pub pretrain: Vec<String>,
    pub downstream: Vec<String>,
    pub foundation: Vec<String>,
    pub profiles: BTreeMap<String, Profile>,
    pub default_profile: Option<String>,
    /// `[transfer] scratch`: also train the student from scratch on every downstream set.
    pub transfer_scratch: bool,
    /// Per pre-training set of the grid and downstream set of the grid: the pre-training
    /// task whose expert is fine-tuned (`None`: no match, †). The registry's `expert_for`
    /// with the experiment's `[expert_for.SET]` over it.
    pub expert_for: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// The paper's values of this experiment's table.
    pub reference: Option<Reference>,
    /// `[analysis] protocols`: how the analysis stage pairs two tasks' samples for CKA.
    pub analysis_protocols: Vec<CkaProtocol>,
}

/// A foundation model of a profile.
#[derive(Debug, Clone)]
pub struct FoundationDef {
    pub model: ModelConfig,
    pub epochs: Option<u32>,
    pub lr: Option<f64>,
    pub optimizer: Option<OptimizerKind>,
    pub weight_decay: Option<f64>,
    /// Pre-trained backbone weights (path as written), with key renames and ignored prefixes.
    pub weights: Option<String>,
    pub rename: Vec<(String, String)>,
    pub ignore: Vec<String>,
}

/// A validated profile.
#[derive(Debug, Clone)]
pub struct Profile {
    pub data: DataKind,
    pub image_size: usize,
    pub epochs: u32,
    pub batch_size: usize,
    pub eval_batch_size: usize,
    pub caps: SplitCaps,
    pub difficulty: f64,
    pub normalize: Normalize,
    pub model: ModelConfig,
    pub optim: OptimConfig,
    pub foundations: BTreeMap<String, FoundationDef>,
    /// Per-method overrides of this profile's training settings: `[method.NAME]`, then
    /// `[profile.P.method.NAME]` over it.
    pub method_overrides: BTreeMap<String, MethodOverrides>,
    /// Settings of every method of the grid: its defaults, `[method.NAME]`, then
    /// `[profile.P.method.NAME]`.
    pub method_options: BTreeMap<String, MethodOptions>,
    /// How transfer runs train (`[profile.P.transfer]` over our defaults).
    pub transfer: TransferSettings,
    /// How big analysis runs are (`[profile.P.analysis]` over our defaults).
    pub analysis: AnalysisSettings,
}

/// A profile's CKA analysis size (README "CKA protocol").
#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisSettings {
    pub samples: usize,
    pub estimator: CkaEstimator,
    pub batch: usize,
}

/// A profile's transfer protocol (the paper gives none; these are ours, README "Transfer").
#[derive(Debug, Clone, PartialEq)]
pub struct TransferSettings {
    pub epochs: u32,
    pub mode: TransferMode,
    /// The fine-tuning optimiser: the profile's with its own learning rate and decay.
    pub optim: OptimConfig,
}

impl Profile {
    /// What this profile asks of the data.
    pub fn data_settings(&self) -> DataSettings {
        DataSettings {
            kind: self.data,
            image_size: self.image_size,
            caps: self.caps,
            difficulty: self.difficulty,
            normalize: self.normalize,
        }
    }
}

/// Per-method overrides of profile settings.
#[derive(Debug, Clone, Default)]
pub struct MethodOverrides {
    pub lr: Option<f64>,
    pub weight_decay: Option<f64>,
    pub epochs: Option<u32>,
}

impl Experiment {
    /// The profile to run: `--profile` if given, else `default_profile`, else `smoke` when
    /// present, else the only profile.
    pub fn select_profile(&self, requested: Option<&str>) -> Result<(String, &Profile)> {
        let name = match requested.or(self.default_profile.as_deref()) {
            Some(n) => n.to_string(),
            None if self.profiles.contains_key("smoke") => "smoke".to_string(),
            None if self.profiles.len() == 1 => {
                self.profiles.keys().next().cloned().unwrap_or_default()
            }
            None => {
                return Err(Error::input(format!(
                    "{}: several profiles ({}) and no `default_profile`; pass --profile NAME",
                    self.path.display(),
                    self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                )))
            }
        };
        match self.profiles.get(&name) {
            Some(p) => Ok((name, p)),
            None => Err(Error::input(format!(
                "{}: no profile `{name}` (defined: {}); add a [profile.{name}] table or pick one of those",
                self.path.display(),
                self.profiles.keys().cloned().collect::<Vec<_>>().join(", ")
            ))),
        }
    }
}

/// Read, parse and validate an experiment file against the dataset registry and the
/// methods of `catalog`.
pub fn load(path: &Path, registry: &Registry, catalog: &dyn MethodCatalog) -> Result<Experiment> {
    let src = read_text(path, "experiment file")?.ok_or_else(|| {
        Error::input(format!(
            "{}: experiment file not found (experiment files live under experiments/)",
            path.display()
        ))
    })?;
    parse(&src, path, registry, catalog)
}

/// Parse and validate experiment-file text (`path` is used in messages only).
pub fn parse(
    src: &str,
    path: &Path,
    registry: &Registry,
    catalog: &dyn MethodCatalog,
) -> Result<Experiment> {
    let file: ExperimentFile = toml::from_str(src).map_err(|e| {
        let msg = toml_message(&e);
        match e.span() {
            Some(span) => Error::input(at(path, src, span, msg)),
            None => Error::input(format!("{}: {msg}", path.display())),
        }
    })?;
    Validator {
        path,
        src,
        registry,
        catalog,
    }
    .experiment(file)
}

/// A TOML error's message, prefixed with the dotted path of the field it is about when
/// toml knows it (`profile.smoke.model.arch: unknown variant ...`). toml only prints that
/// path when it has no source text to quote, so it is read from such a rendering.
fn toml_message(e: &toml::de::Error) -> String {
    let mut bare = e.clone();
    bare.set_input(None);
    let rendered = bare.to_string();
    let field = rendered
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("in `").and_then(|l| l.strip_suffix('`')));
    match field {
        Some(f) => format!("{f}: {}", e.message().trim()),
        None => e.message().trim().to_string(),
    }
}

struct Validator<'a> {
    path: &'a Path,
    src: &'a str,
    registry: &'a Registry,
    catalog: &'a dyn MethodCatalog,
}

impl Validator<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> Result<T> {
        Err(Error::input(at(self.path, self.src, span, msg)))
    }

    /// A check of [`super::settings`], its failure located in this file.
    fn located<T>(&self, r: std::result::Result<T, SettingError>) -> Result<T> {
        r.or_else(|e| self.err(e.span, e.message))
    }

    /// An error about the file as a whole (something missing rather than wrong).
    fn whole<T>(&self, msg: impl std::fmt::Display) -> Result<T> {
        Err(Error::input(format!("{}: {msg}", self.path.display())))
    }

    fn experiment(&self, f: ExperimentFile) -> Result<Experiment> {
        let name = f.name.get_ref().trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return self.err(
                f.name.span(),
                "`name` must be non-empty and use only letters, digits, `-` and `_` (it names the reports/ folder)",
            );
        }
        if f.seeds.get_ref().is_empty() {
            return self.err(
                f.seeds.span(),
                "`seeds` must list at least one seed, e.g. seeds = [0, 1, 2]",
            );
        }
        let mut seen = BTreeSet::new();
        for s in f.seeds.get_ref() {
            if !seen.insert(*s) {
                return self.err(f.seeds.span(), format!("seed {s} is listed twice"));
            }
        }
        let mut stages = Vec::new();
        for s in &f.stages {
            let st = *s.get_ref();
            if stages.contains(&st) {
                return self.err(s.span(), format!("stage `{}` is listed twice", st.as_str()));
            }
            stages.push(st);
        }
        if stages.is_empty() {
            return self.whole("`stages` is empty; add stages = [\"decompose\"]");
        }

        let methods = self.methods(&f.grid.method)?;
        let pretrain = self.datasets(&f.grid.pretrain, Role::Pretrain, "grid.pretrain")?;
        if pretrain.is_empty() {
            return self.whole(format!(
                "grid.pretrain is empty; name at least one pre-training set ({})",
                self.dataset_keys(Role::Pretrain)
            ));
        }
        let downstream = self.downstream(&f.grid.downstream)?;
        let foundation = self.unique(&f.grid.foundation, "grid.foundation")?;

        let mut profiles = BTreeMap::new();
        for (pname, p) in &f.profile {
            profiles.insert(pname.clone(), self.profile(pname, p)?);
        }
        if profiles.is_empty() {
            return self.whole("no profiles; add at least [profile.smoke]");
        }
        let default_profile = match &f.default_profile {
            Some(d) if !profiles.contains_key(d.get_ref()) => {
                return self.err(
                    d.span(),
                    format!(
                        "default_profile `{}` is not defined (defined: {})",
                        d.get_ref(),
                        profiles.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            }
            Some(d) => Some(d.get_ref().clone()),
            None => None,
        };
        let top = self.method_tables("method", &f.method, &methods, None)?;
        for (pname, pfile) in &f.profile {
            let scope = format!("profile.{pname}.method");
            let (o, m) =
                self.method_tables(&scope, &pfile.get_ref().method, &methods, Some(&top))?;
            if let Some(p) = profiles.get_mut(pname) {
                p.method_overrides = o;
                p.method_options = m;
            }
        }
        self.foundation_checks(&f, &stages, &profiles)?;
        self.transfer_checks(&f, &stages, &downstream)?;
        let expert_for = self.expert_for(&f, &pretrain, &downstream)?;
        let reference = self.reference(&f, &pretrain, &downstream, &foundation)?;
        let analysis_protocols = self.analysis_checks(&f, &stages, &pretrain)?;
        Ok(Experiment {
            path: self.path.to_path_buf(),
            name,
            description: f.description,
            seeds: f.seeds.into_inner(),
            stages,
            methods,
            pretrain,
            downstream,
            foundation,
            profiles,
            default_profile,
            transfer_scratch: f.transfer.as_ref().is_some_and(|t| t.get_ref().scratch),
            expert_for,
            reference,
            analysis_protocols,
        })
    }
}
