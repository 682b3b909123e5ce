//! Foundation models: a profile's `[profile.P.foundation.NAME]` definitions, and the checks
//! that tie them to the grid (every distilling method needs one, every named one is defined
//! in every profile, LoRKD's experts need a convolutional student).

use std::collections::BTreeMap;

use super::{FoundationDef, Profile, Validator};
use crate::error::Result;
use crate::spec::catalog::canonical_key;
use crate::spec::file::{ExperimentFile, FoundationFile};
use crate::spec::run::{Arch, Stage};
use crate::spec::settings::{finite_positive, non_negative, positive};

impl Validator<'_> {
    /// Teachers: every distilling method needs one, every named one must be defined in
    /// every profile, and LoRKD's experts need a convolutional student.
    pub(super) fn foundation_checks(
        &self,
        f: &ExperimentFile,
        stages: &[Stage],
        profiles: &BTreeMap<String, Profile>,
    ) -> Result<()> {
        for ((span, key), (pname, p)) in f
            .grid
            .method
            .iter()
            .map(|m| (m.span(), canonical_key(m.get_ref())))
            .flat_map(|m| profiles.iter().map(move |p| (m.clone(), p)))
        {
            let o = p.method_options.get(&key).copied().unwrap_or_default();
            if o.kd.is_some() && f.grid.foundation.is_empty() {
                return self.err(span, format!(
                    "method `{key}` distils from a foundation model (profile `{pname}`): name one in grid.foundation = [\"NAME\"] and define it as [profile.<profile>.foundation.NAME] (or set kd = \"none\" in [method.{key}])"
                ));
            }
            // ΔW = BA of a layer with c output channels has rank ≤ c: a larger rank adds
            // parameters (and memory, r × channels per task and layer) and nothing else.
            let widest = p.model.widths.iter().copied().max().unwrap_or(0);
            if let Some(lr) = o.low_rank.filter(|lr| widest > 0 && lr.rank > widest) {
                return self.err(span, format!(
                    "method `{key}`: rank {} (profile `{pname}`) is above the student's widest layer, {widest} channels; an expert ΔW = BA of a c-channel layer has rank at most c, so set rank ≤ {widest} in [method.{key}] (the paper uses 4)",
                    lr.rank
                ));
            }
            if o.low_rank.is_some() && !p.model.arch.is_convolutional() {
                return self.err(span, format!(
                    "method `{key}` puts low-rank experts on convolutions; profile.{pname}.model.arch `{}` has none (use one of {})",
                    p.model.arch, Arch::convolutional().join(", ")
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
            return self.whole(
                "the foundation stage is listed but grid.foundation is empty; name the foundation models to train or load",
            );
        }
        Ok(())
    }

    pub(super) fn foundation(
        &self,
        field: &str,
        fd: &FoundationFile,
        image_size: usize,
    ) -> Result<FoundationDef> {
        let model = self.model(&format!("{field}.model"), fd.model.get_ref(), image_size)?;
        let epochs = fd
            .epochs
            .as_ref()
            .map(|e| self.located(positive(e, &format!("{field}.epochs"))))
            .transpose()?;
        let lr = fd
            .lr
            .as_ref()
            .map(|v| self.located(finite_positive(v, &format!("{field}.lr"))))
            .transpose()?;
        if fd.weights.is_none() && (!fd.rename.is_empty() || !fd.ignore.is_empty()) {
            return self.err(
                fd.model.span(),
                format!("{field}: `rename` and `ignore` only apply with `weights`"),
            );
        }
        let weight_decay = fd
            .weight_decay
            .as_ref()
            .map(|v| self.located(non_negative(v, &format!("{field}.weight_decay"))))
            .transpose()?;
        Ok(FoundationDef {
            model,
            epochs,
            lr,
            optimizer: fd.optimizer.as_ref().map(|o| *o.get_ref()),
            weight_decay,
            weights: fd.weights.as_ref().map(|w| w.get_ref().clone()),
            rename: fd
                .rename
                .iter()
                .map(|r| (r.from.clone(), r.to.clone()))
                .collect(),
            ignore: fd.ignore.clone(),
        })
    }
}
