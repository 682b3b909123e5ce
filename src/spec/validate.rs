//! Validation: turn a parsed [`ExperimentFile`] into a typed [`Experiment`], checking every
//! name against the method registry, the dataset registry and the known architectures, and
//! every number against its valid range. Each error names `file:line:column` and the fix.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::file::{ExperimentFile, FoundationFile, MethodFile, ModelFile, OptimFile, ProfileFile};
use super::location::at;
use super::run::{
    KdConfig, LowRankConfig, MethodOptions, ModelConfig, Normalize, OptimConfig, OptimizerKind,
    Schedule, SplitCaps, Stage, Stem,
};
use crate::data::registry::{Registry, Role};
use crate::data::DataKind;
use crate::error::{Error, Result};
use crate::method::moco::{LambdaUpdate, StepDecay};
use crate::method::{self, PAPER_METHODS};
use crate::model::{ARCHS, CONV_ARCHS};

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
}

/// A foundation model of a profile.
#[derive(Debug, Clone)]
pub struct FoundationDef {
    pub model: ModelConfig,
    pub epochs: Option<u32>,
    pub lr: Option<f64>,
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

/// Read, parse and validate an experiment file.
pub fn load(path: &Path, registry: &Registry) -> Result<Experiment> {
    let src = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::input(format!(
            "{}: experiment file not found (experiment files live under experiments/)",
            path.display()
        )),
        _ => Error::io(path, e),
    })?;
    parse(&src, path, registry)
}

/// Parse and validate experiment-file text (`path` is used in messages only).
pub fn parse(src: &str, path: &Path, registry: &Registry) -> Result<Experiment> {
    let file: ExperimentFile = toml::from_str(src).map_err(|e| {
        let msg = e.message().trim().to_string();
        match e.span() {
            Some(span) => Error::input(at(path, src, span, msg)),
            None => Error::input(format!("{}: {msg}", path.display())),
        }
    })?;
    Validator {
        path,
        src,
        registry,
    }
    .experiment(file)
}

struct Validator<'a> {
    path: &'a Path,
    src: &'a str,
    registry: &'a Registry,
}

impl Validator<'_> {
    fn err<T>(&self, span: std::ops::Range<usize>, msg: impl std::fmt::Display) -> Result<T> {
        Err(Error::input(at(self.path, self.src, span, msg)))
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
            match Stage::parse(s.get_ref()) {
                Some(st) if !stages.contains(&st) => stages.push(st),
                Some(_) => {
                    return self.err(s.span(), format!("stage `{}` is listed twice", s.get_ref()))
                }
                None => {
                    return self.err(
                        s.span(),
                        format!(
                            "unknown stage `{}` (available in this build: {})",
                            s.get_ref(),
                            Stage::ALL.map(|s| s.as_str()).join(", ")
                        ),
                    )
                }
            }
        }
        if stages.is_empty() {
            return Err(Error::input(format!(
                "{}: `stages` is empty; add stages = [\"decompose\"]",
                self.path.display()
            )));
        }

        let methods = self.methods(&f.grid.method)?;
        let pretrain = self.datasets(&f.grid.pretrain, Role::Pretrain, "grid.pretrain")?;
        if pretrain.is_empty() {
            return Err(Error::input(format!(
                "{}: grid.pretrain is empty; name at least one pre-training set ({})",
                self.path.display(),
                self.dataset_keys(Role::Pretrain)
            )));
        }
        let downstream = self.downstream(&f.grid.downstream)?;
        let foundation = self.unique(&f.grid.foundation, "grid.foundation")?;

        let mut profiles = BTreeMap::new();
        for (pname, p) in &f.profile {
            profiles.insert(pname.clone(), self.profile(pname, p)?);
        }
        if profiles.is_empty() {
            return Err(Error::input(format!(
                "{}: no profiles; add at least [profile.smoke]",
                self.path.display()
            )));
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
        let (overrides, options) = self.method_tables(&f.method, &methods, None)?;
        for (pname, pfile) in &f.profile {
            let (o, m) = self.method_tables(
                &pfile.get_ref().method,
                &methods,
                Some((&overrides, &options)),
            )?;
            if let Some(p) = profiles.get_mut(pname) {
                p.method_overrides = o;
                p.method_options = m;
            }
        }
        self.foundation_checks(&f, &stages, &profiles)?;
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
        })
    }

    /// Method tables (`[method.NAME]`, or a profile's) over `base` (the top level's, for a
    /// profile): the training overrides of every named method and the options of every
    /// method of the grid.
    #[allow(clippy::type_complexity)]
    fn method_tables(
        &self,
        tables: &BTreeMap<String, Spanned<MethodFile>>,
        methods: &[String],
        base: Option<(
            &BTreeMap<String, MethodOverrides>,
            &BTreeMap<String, MethodOptions>,
        )>,
    ) -> Result<(
        BTreeMap<String, MethodOverrides>,
        BTreeMap<String, MethodOptions>,
    )> {
        let mut overrides = base.map(|b| b.0.clone()).unwrap_or_default();
        for (mname, m) in tables {
            let key = method::canonical_key(mname);
            if !PAPER_METHODS.iter().any(|(k, _)| *k == key) {
                return self.err(
                    m.span(),
                    format!(
                        "[method.{mname}]: unknown method (known: {})",
                        known_methods()
                    ),
                );
            }
            let o = self.overrides(m)?;
            let prev: MethodOverrides = overrides.get(&key).cloned().unwrap_or_default();
            overrides.insert(
                key,
                MethodOverrides {
                    lr: o.lr.or(prev.lr),
                    weight_decay: o.weight_decay.or(prev.weight_decay),
                    epochs: o.epochs.or(prev.epochs),
                },
            );
        }
        let mut options = BTreeMap::new();
        for key in methods {
            let start = match base {
                Some((_, b)) => b.get(key).copied().unwrap_or_default(),
                None => method::lookup(key)
                    .map(|m| m.default_options())
                    .unwrap_or_default(),
            };
            let table = tables
                .iter()
                .find(|(n, _)| method::canonical_key(n) == *key);
            let resolved = match table {
                Some((mname, m)) => {
                    let o = self.method_options(key, mname, m.get_ref(), start)?;
                    if let Some(Err(why)) = method::lookup(key).map(|m| m.check_options(&o)) {
                        return self.err(m.span(), format!("[method.{mname}]: {why}"));
                    }
                    o
                }
                None => start,
            };
            options.insert(key.clone(), resolved);
        }
        Ok((overrides, options))
    }

    /// Teachers: every distilling method needs one, every named one must be defined in
    /// every profile, and LoRKD's experts need a convolutional student.
    fn foundation_checks(
        &self,
        f: &ExperimentFile,
        stages: &[Stage],
        profiles: &BTreeMap<String, Profile>,
    ) -> Result<()> {
        for ((span, key), (pname, p)) in f
            .grid
            .method
            .iter()
            .map(|m| (m.span(), method::canonical_key(m.get_ref())))
            .flat_map(|m| profiles.iter().map(move |p| (m.clone(), p)))
        {
            let o = p.method_options.get(&key).copied().unwrap_or_default();
            if o.kd.is_some() && f.grid.foundation.is_empty() {
                return self.err(span, format!(
                    "method `{key}` distils from a foundation model (profile `{pname}`): name one in grid.foundation = [\"NAME\"] and define it as [profile.<profile>.foundation.NAME] (or set kd = \"none\" in [method.{key}])"
                ));
            }
            if o.low_rank.is_some() && !CONV_ARCHS.contains(&p.model.arch.as_str()) {
                return self.err(span, format!(
                    "method `{key}` puts low-rank experts on convolutions; profile.{pname}.model.arch `{}` has none (use one of {})",
                    p.model.arch, CONV_ARCHS.join(", ")
                ));
            }
        }
        for name in &f.grid.foundation {
            for (pname, p) in profiles {
                if !p.foundations.contains_key(name.get_ref()) {
                    return self.err(name.span(), format!(
                        "grid.foundation: `{}` is not defined for profile `{pname}`; add a [profile.{pname}.foundation.{}] table with its model",
                        name.get_ref(), name.get_ref()
                    ));
                }
            }
        }
        if stages.contains(&Stage::Foundation) && f.grid.foundation.is_empty() {
            return Err(Error::input(format!(
                "{}: the foundation stage is listed but grid.foundation is empty; name the foundation models to train or load",
                self.path.display()
            )));
        }
        Ok(())
    }

    /// An error at the first of `keys` the file sets (`(name, span if set)`), with
    /// `message(name)`: settings that do not apply where they were written.
    fn refuse(
        &self,
        keys: &[(&str, Option<std::ops::Range<usize>>)],
        message: impl Fn(&str) -> String,
    ) -> Result<()> {
        match keys
            .iter()
            .find_map(|(k, span)| span.clone().map(|s| (k, s)))
        {
            Some((k, span)) => self.err(span, message(k)),
            None => Ok(()),
        }
    }

    /// A method's options: `base` with one method table's settings. What a method can be
    /// given (KD, low-rank experts) follows its registry defaults.
    fn method_options(
        &self,
        key: &str,
        mname: &str,
        m: &MethodFile,
        base: MethodOptions,
    ) -> Result<MethodOptions> {
        let defaults = method::lookup(key)
            .map(|m| m.default_options())
            .unwrap_or_default();
        let mut out = base;
        let kd_keys = [
            ("kd_weight", m.kd_weight.as_ref().map(|v| v.span())),
            (
                "kd_temperature",
                m.kd_temperature.as_ref().map(|v| v.span()),
            ),
            ("kd_alpha", m.kd_alpha.as_ref().map(|v| v.span())),
            ("kd", m.kd.as_ref().map(|v| v.span())),
        ];
        if defaults.kd.is_none() {
            self.refuse(&kd_keys, |k| {
                format!("[method.{mname}] {k}: this method does not distil; the KD settings apply to stlkd, mtlkd and lorkd")
            })?;
        }
        if defaults.low_rank.is_none() {
            self.refuse(
                &[
                    ("rank", m.rank.as_ref().map(|v| v.span())),
                    ("lora_alpha", m.lora_alpha.as_ref().map(|v| v.span())),
                ],
                |k| format!("[method.{mname}] {k}: only LoRKD has low-rank experts; remove it"),
            )?;
        }
        let field = |k: &str| format!("method.{mname}.{k}");
        let temperature = m
            .kd_temperature
            .as_ref()
            .map(|v| self.finite_positive(v, &field("kd_temperature")))
            .transpose()?;
        let kind = match m.kd.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None => base.kd.map(|k| match k {
                KdConfig::Feature { .. } => "feature",
                KdConfig::Logit { .. } => "logit",
            }),
            Some(("none", _)) => None,
            Some((k @ ("feature" | "logit"), _)) => Some(k),
            Some((other, span)) => {
                return self.err(span, format!(
                    "{}: `{other}` is not a KD kind; use \"feature\" (LoRKD's feature KD), \"logit\" (Hinton) or \"none\"",
                    field("kd")
                ))
            }
        };
        let misplaced = |k: &str, span: Option<std::ops::Range<usize>>, why: &str| -> Result<()> {
            self.refuse(&[(k, span)], |k| format!("{}: {why}; remove it", field(k)))
        };
        out.kd = match kind {
            None => {
                for (k, span) in kd_keys.iter().take(3) {
                    misplaced(k, span.clone(), "KD is off (kd = \"none\")")?;
                }
                None
            }
            Some("feature") => {
                misplaced(
                    "kd_alpha",
                    kd_keys[2].1.clone(),
                    "kd_alpha belongs to logit KD",
                )?;
                let weight = m
                    .kd_weight
                    .as_ref()
                    .map(|v| self.non_negative(v, &field("kd_weight")))
                    .transpose()?;
                let (dw, dt) = match base.kd {
                    Some(KdConfig::Feature {
                        weight,
                        temperature,
                    }) => (weight, temperature),
                    _ => (1.0, 10.0),
                };
                Some(KdConfig::Feature {
                    weight: weight.unwrap_or(dw),
                    temperature: temperature.unwrap_or(dt),
                })
            }
            Some(_) => {
                misplaced(
                    "kd_weight",
                    kd_keys[0].1.clone(),
                    "logit KD weighs its terms with kd_alpha",
                )?;
                let (da, dt) = match base.kd {
                    Some(KdConfig::Logit { alpha, temperature }) => (alpha, temperature),
                    _ => (0.9, 4.0),
                };
                let alpha = match &m.kd_alpha {
                    Some(a) if !(0.0..=1.0).contains(a.get_ref()) => {
                        return self.err(
                            a.span(),
                            format!("{} must be within [0, 1]", field("kd_alpha")),
                        )
                    }
                    Some(a) => *a.get_ref(),
                    None => da,
                };
                Some(KdConfig::Logit {
                    temperature: temperature.unwrap_or(dt),
                    alpha,
                })
            }
        };
        if let Some(mut moco) = base.moco.or(defaults.moco) {
            if let Some(u) = &m.lambda_update {
                moco.lambda_update = match u.get_ref().as_str() {
                    "softmax" => LambdaUpdate::Softmax,
                    "simplex" => LambdaUpdate::Simplex,
                    other => {
                        return self.err(
                            u.span(),
                            format!(
                                "{}: `{other}` is not a λ update; use \"softmax\" or \"simplex\"",
                                field("lambda_update")
                            ),
                        )
                    }
                };
            }
            if let Some(d) = &m.step_decay {
                moco.decay = match d.get_ref().as_str() {
                    "iteration" => StepDecay::Iteration,
                    "epoch" => StepDecay::Epoch,
                    other => {
                        return self.err(
                            d.span(),
                            format!(
                                "{}: `{other}` is not a step decay; use \"iteration\" or \"epoch\"",
                                field("step_decay")
                            ),
                        )
                    }
                };
            }
            out.moco = Some(moco);
        } else {
            self.refuse(
                &[
                    ("lambda_update", m.lambda_update.as_ref().map(|v| v.span())),
                    ("step_decay", m.step_decay.as_ref().map(|v| v.span())),
                ],
                |k| format!("[method.{mname}] {k}: only MoCo-MTL has these settings; remove it"),
            )?;
        }
        if let Some(mut kf) = base.kf.or(defaults.kf) {
            if let Some(v) = &m.label_smoothing {
                let e = self.non_negative(v, &field("label_smoothing"))?;
                if e >= 1.0 {
                    return self.err(
                        v.span(),
                        format!("{} must be in [0, 1)", field("label_smoothing")),
                    );
                }
                kf.label_smoothing = e;
            }
            let weight = |v: &Option<Spanned<f64>>, k: &str, d: f64| -> Result<f64> {
                v.as_ref()
                    .map(|v| self.non_negative(v, &field(k)))
                    .transpose()
                    .map(|w| w.unwrap_or(d))
            };
            kf.infomax_weight = weight(&m.infomax_weight, "infomax_weight", kf.infomax_weight)?;
            kf.infomin_weight = weight(&m.infomin_weight, "infomin_weight", kf.infomin_weight)?;
            kf.aux_weight = weight(&m.aux_weight, "aux_weight", kf.aux_weight)?;
            if let Some(n) = &m.infomax_stages {
                kf.infomax_stages = self.positive(n, &field("infomax_stages"))?;
            }
            out.kf = Some(kf);
        } else {
            self.refuse(
                &[
                    (
                        "label_smoothing",
                        m.label_smoothing.as_ref().map(|v| v.span()),
                    ),
                    (
                        "infomax_weight",
                        m.infomax_weight.as_ref().map(|v| v.span()),
                    ),
                    (
                        "infomax_stages",
                        m.infomax_stages.as_ref().map(|v| v.span()),
                    ),
                    (
                        "infomin_weight",
                        m.infomin_weight.as_ref().map(|v| v.span()),
                    ),
                    ("aux_weight", m.aux_weight.as_ref().map(|v| v.span())),
                ],
                |k| format!("[method.{mname}] {k}: only KF has this setting; remove it"),
            )?;
        }
        if let Some(d) = base.low_rank.or(defaults.low_rank) {
            let rank = match &m.rank {
                Some(r) => self.positive(r, &field("rank"))?,
                None => d.rank,
            };
            let alpha = m
                .lora_alpha
                .as_ref()
                .map(|v| self.finite_positive(v, &field("lora_alpha")))
                .transpose()?
                .unwrap_or(d.alpha);
            out.low_rank = Some(LowRankConfig { rank, alpha });
        }
        Ok(out)
    }

    fn unique(&self, names: &[Spanned<String>], field: &str) -> Result<Vec<String>> {
        let mut out: Vec<String> = Vec::new();
        for n in names {
            if out.contains(n.get_ref()) {
                return self.err(
                    n.span(),
                    format!("{field}: `{}` is listed twice", n.get_ref()),
                );
            }
            out.push(n.get_ref().clone());
        }
        Ok(out)
    }

    fn methods(&self, names: &[Spanned<String>]) -> Result<Vec<String>> {
        if names.is_empty() {
            return Err(Error::input(format!(
                "{}: grid.method is empty; name at least one method ({})",
                self.path.display(),
                known_methods()
            )));
        }
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let key = method::canonical_key(n.get_ref());
            if !PAPER_METHODS.iter().any(|(k, _)| *k == key) {
                return self.err(
                    n.span(),
                    format!(
                        "unknown method `{}` (known: {})",
                        n.get_ref(),
                        known_methods()
                    ),
                );
            }
            if method::lookup(&key).is_none() {
                return self.err(
                    n.span(),
                    format!(
                        "method `{}` is not implemented in this build yet (available: {})",
                        n.get_ref(),
                        method::implemented().join(", ")
                    ),
                );
            }
            if out.contains(&key) {
                return self.err(
                    n.span(),
                    format!("method `{}` is listed twice", n.get_ref()),
                );
            }
            out.push(key);
        }
        Ok(out)
    }

    fn dataset_keys(&self, role: Role) -> String {
        self.registry
            .datasets
            .iter()
            .filter(|d| d.role == role)
            .map(|d| d.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn datasets(&self, names: &[Spanned<String>], role: Role, field: &str) -> Result<Vec<String>> {
        let keys = self.unique(names, field)?;
        for (n, key) in names.iter().zip(&keys) {
            match self.registry.dataset(key) {
                Some(d) if d.role == role => {}
                Some(_) | None => {
                    return self.err(
                        n.span(),
                        format!(
                            "{field}: unknown data set `{key}` (known: {}; see {})",
                            self.dataset_keys(role),
                            self.registry.path.display()
                        ),
                    )
                }
            }
        }
        Ok(keys)
    }

    fn downstream(&self, names: &[Spanned<String>]) -> Result<Vec<String>> {
        let keys = self.unique(names, "grid.downstream")?;
        let known: Vec<&str> = self
            .registry
            .datasets
            .iter()
            .filter(|d| d.role == Role::Downstream)
            .flat_map(|d| d.tasks.iter().map(|t| t.key.as_str()))
            .collect();
        for (n, key) in names.iter().zip(&keys) {
            if !known.contains(&key.as_str()) {
                return self.err(
                    n.span(),
                    format!(
                        "grid.downstream: unknown downstream set `{key}` (known: {})",
                        known.join(", ")
                    ),
                );
            }
        }
        Ok(keys)
    }

    fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
        &self,
        v: &Spanned<T>,
        field: &str,
    ) -> Result<T> {
        if *v.get_ref() <= T::default() {
            return self.err(
                v.span(),
                format!("{field} must be positive (got {})", v.get_ref()),
            );
        }
        Ok(*v.get_ref())
    }

    fn profile(&self, name: &str, p: &Spanned<ProfileFile>) -> Result<Profile> {
        let p = p.get_ref();
        let f = |k: &str| format!("profile.{name}.{k}");
        let data = match p.data.get_ref().as_str() {
            "real" => DataKind::Real,
            "synthetic" => DataKind::Synthetic,
            other => {
                return self.err(
                    p.data.span(),
                    format!(
                        "{}: `{other}` is not a data source; use \"real\" or \"synthetic\"",
                        f("data")
                    ),
                )
            }
        };
        let image_size = self.positive(&p.image_size, &f("image_size"))?;
        if !(8..=1024).contains(&image_size) {
            return self.err(
                p.image_size.span(),
                format!("{} must be within 8..=1024", f("image_size")),
            );
        }
        let epochs = self.positive(&p.epochs, &f("epochs"))?;
        let batch_size = self.positive(&p.batch_size, &f("batch_size"))?;
        if batch_size < 2 {
            return self.err(
                p.batch_size.span(),
                format!(
                    "{} must be at least 2 (batch norm needs two samples)",
                    f("batch_size")
                ),
            );
        }
        let eval_batch_size = match &p.eval_batch_size {
            Some(v) => self.positive(v, &f("eval_batch_size"))?,
            None => 256,
        };
        let cap = |v: &Option<Spanned<usize>>, k: &str| -> Result<Option<usize>> {
            v.as_ref().map(|v| self.positive(v, &f(k))).transpose()
        };
        let caps = SplitCaps {
            train: cap(&p.max_train_per_task, "max_train_per_task")?,
            val: cap(&p.max_val_per_task, "max_val_per_task")?,
            test: cap(&p.max_test_per_task, "max_test_per_task")?,
        };
        let difficulty = match &p.difficulty {
            Some(d) if data == DataKind::Real => {
                return self.err(
                    d.span(),
                    format!(
                        "{} only applies to synthetic data; remove it",
                        f("difficulty")
                    ),
                )
            }
            Some(d) if !(0.0..=1.0).contains(d.get_ref()) => {
                return self.err(
                    d.span(),
                    format!(
                        "{} must be within 0..=1 (got {})",
                        f("difficulty"),
                        d.get_ref()
                    ),
                )
            }
            Some(d) => *d.get_ref(),
            None => 0.5,
        };
        let normalize = match &p.normalize {
            Some(n) => Normalize::parse(n.get_ref()).map_or_else(
                || {
                    self.err(
                        n.span(),
                        format!(
                            "{}: `{}` is not a normalisation; use \"fixed\" or \"per_image\"",
                            f("normalize"),
                            n.get_ref()
                        ),
                    )
                },
                Ok,
            )?,
            None => Normalize::default_for(data),
        };
        Ok(Profile {
            data,
            normalize,
            image_size,
            epochs,
            batch_size,
            eval_batch_size,
            caps,
            difficulty,
            model: self.model(&f("model"), p.model.get_ref(), image_size)?,
            optim: self.optim(name, p.optim.get_ref())?,
            foundations: p
                .foundation
                .iter()
                .map(|(fname, fd)| {
                    Ok((
                        fname.clone(),
                        self.foundation(
                            &f(&format!("foundation.{fname}")),
                            fd.get_ref(),
                            image_size,
                        )?,
                    ))
                })
                .collect::<Result<_>>()?,
            // Filled in once every method table is known.
            method_overrides: BTreeMap::new(),
            method_options: BTreeMap::new(),
        })
    }

    fn foundation(
        &self,
        field: &str,
        fd: &FoundationFile,
        image_size: usize,
    ) -> Result<FoundationDef> {
        let model = self.model(&format!("{field}.model"), fd.model.get_ref(), image_size)?;
        let epochs = fd
            .epochs
            .as_ref()
            .map(|e| self.positive(e, &format!("{field}.epochs")))
            .transpose()?;
        let lr = fd
            .lr
            .as_ref()
            .map(|v| self.finite_positive(v, &format!("{field}.lr")))
            .transpose()?;
        if fd.weights.is_none() && (!fd.rename.is_empty() || !fd.ignore.is_empty()) {
            return self.err(
                fd.model.span(),
                format!("{field}: `rename` and `ignore` only apply with `weights`"),
            );
        }
        Ok(FoundationDef {
            model,
            epochs,
            lr,
            weights: fd.weights.as_ref().map(|w| w.get_ref().clone()),
            rename: fd
                .rename
                .iter()
                .map(|r| (r.from.clone(), r.to.clone()))
                .collect(),
            ignore: fd.ignore.clone(),
        })
    }

    /// A network's configuration; `field` names it in messages (`profile.smoke.model`).
    fn model(&self, field: &str, m: &ModelFile, image_size: usize) -> Result<ModelConfig> {
        if !ARCHS.contains(&m.arch.get_ref().as_str()) {
            return self.err(
                m.arch.span(),
                format!(
                    "{field}.arch: unknown architecture `{}` (known: {})",
                    m.arch.get_ref(),
                    ARCHS.join(", ")
                ),
            );
        }
        let widths = m.widths.get_ref();
        let depths = m.depths.get_ref();
        if widths.is_empty() || widths.contains(&0) {
            return self.err(
                m.widths.span(),
                format!("{field}.widths must be a non-empty list of positive numbers"),
            );
        }
        // ResNet: one width per stage. ShuffleNetV2: the stem width, one per stage and the
        // final 1×1 conv's width, with even stage widths (each unit splits them in halves).
        let arch = m.arch.get_ref().as_str();
        let vit_only = [
            ("patch_size", m.patch_size.as_ref()),
            ("heads", m.heads.as_ref()),
        ];
        if arch != "vit" {
            if let Some((k, Some(v))) = vit_only.iter().find(|(_, v)| v.is_some()) {
                return self.err(
                    v.span(),
                    format!("{field}.{k} only applies to arch = \"vit\"; remove it"),
                );
            }
        }
        let (stage_widths, layout) = if arch == "vit" {
            (1, "vit: widths = [embedding width] and depths = [blocks], e.g. [768] and [12] for ViT-B/16")
        } else if arch == "shufflenetv2" {
            (
                widths.len().saturating_sub(2),
                "widths = [stem, one per stage…, final], e.g. [24, 116, 232, 464, 1024] with depths [4, 8, 4]",
            )
        } else {
            (widths.len(), "one width per stage")
        };
        if depths.len() != stage_widths || depths.is_empty() || depths.contains(&0) {
            return self.err(
                m.depths.span(),
                format!(
                    "{field}.depths must list one positive block count per stage ({} widths given; {arch}: {layout})",
                    widths.len()
                ),
            );
        }
        if arch == "shufflenetv2" {
            if let Some(w) = widths[1..=depths.len()]
                .iter()
                .find(|w| !w.is_multiple_of(2))
            {
                return self.err(
                    m.widths.span(),
                    format!("{field}.widths: ShuffleNetV2 stage width {w} must be even (each unit splits it in halves)"),
                );
            }
        }
        let stem = match m.stem.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("cifar") => Stem::Cifar,
            Some("imagenet") => Stem::Imagenet,
            Some(other) => {
                let span = m.stem.as_ref().map(|s| s.span()).unwrap_or_default();
                return self.err(
                    span,
                    format!("{field}.stem: `{other}` is not a stem; use \"cifar\" or \"imagenet\""),
                );
            }
        };
        let mut cfg = ModelConfig::conv(arch, widths, depths, stem);
        if arch == "vit" {
            let (Some(patch), Some(heads)) = (&m.patch_size, &m.heads) else {
                return self.err(
                    m.arch.span(),
                    format!("{field}: a vit needs patch_size and heads (ViT-B/16: 16 and 12)"),
                );
            };
            let (p, h) = (*patch.get_ref(), *heads.get_ref());
            if p == 0 || !image_size.is_multiple_of(p) {
                return self.err(
                    patch.span(),
                    format!(
                        "{field}.patch_size {p} must divide the profile's image_size {image_size}"
                    ),
                );
            }
            if h == 0 || !widths[0].is_multiple_of(h) {
                return self.err(
                    heads.span(),
                    format!("{field}.heads {h} must divide the width {}", widths[0]),
                );
            }
            cfg.patch_size = Some(p);
            cfg.heads = Some(h);
            cfg.image_size = Some(image_size);
        }
        Ok(cfg)
    }

    fn optim(&self, name: &str, o: &OptimFile) -> Result<OptimConfig> {
        let f = |k: &str| format!("profile.{name}.optim.{k}");
        let kind = match o.name.get_ref().as_str() {
            "sgd" => OptimizerKind::Sgd,
            "adamw" => OptimizerKind::Adamw,
            other => {
                return self.err(
                    o.name.span(),
                    format!(
                        "{}: unknown optimiser `{other}`; use \"sgd\" or \"adamw\"",
                        f("name")
                    ),
                )
            }
        };
        let lr = self.finite_positive(&o.lr, &f("lr"))?;
        let momentum = match &o.momentum {
            Some(m) if !(0.0..1.0).contains(m.get_ref()) => {
                return self.err(m.span(), format!("{} must be within [0, 1)", f("momentum")))
            }
            Some(m) => *m.get_ref(),
            None => 0.9,
        };
        let weight_decay = match &o.weight_decay {
            Some(w) => self.non_negative(w, &f("weight_decay"))?,
            None => 0.0,
        };
        let schedule = match o.schedule.as_ref().map(|s| s.get_ref().as_str()) {
            None | Some("cosine") => Schedule::Cosine,
            Some("constant") => Schedule::Constant,
            Some(other) => {
                let span = o.schedule.as_ref().map(|s| s.span()).unwrap_or_default();
                return self.err(
                    span,
                    format!(
                        "{}: unknown schedule `{other}`; use \"cosine\" or \"constant\"",
                        f("schedule")
                    ),
                );
            }
        };
        Ok(OptimConfig {
            name: kind,
            lr,
            momentum,
            weight_decay,
            schedule,
            warmup_epochs: o.warmup_epochs.as_ref().map(|w| *w.get_ref()).unwrap_or(0),
        })
    }

    fn finite_positive(&self, v: &Spanned<f64>, field: &str) -> Result<f64> {
        let x = *v.get_ref();
        if !x.is_finite() || x <= 0.0 {
            return self.err(
                v.span(),
                format!("{field} must be a positive number (got {x})"),
            );
        }
        Ok(x)
    }

    fn non_negative(&self, v: &Spanned<f64>, field: &str) -> Result<f64> {
        let x = *v.get_ref();
        if !x.is_finite() || x < 0.0 {
            return self.err(
                v.span(),
                format!("{field} must be zero or positive (got {x})"),
            );
        }
        Ok(x)
    }

    fn overrides(&self, m: &Spanned<MethodFile>) -> Result<MethodOverrides> {
        let m = m.get_ref();
        Ok(MethodOverrides {
            lr: m
                .lr
                .as_ref()
                .map(|v| self.finite_positive(v, "method.lr"))
                .transpose()?,
            weight_decay: m
                .weight_decay
                .as_ref()
                .map(|v| self.non_negative(v, "method.weight_decay"))
                .transpose()?,
            epochs: m
                .epochs
                .as_ref()
                .map(|v| self.positive(v, "method.epochs"))
                .transpose()?,
        })
    }
}

fn known_methods() -> String {
    PAPER_METHODS
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(", ")
}
