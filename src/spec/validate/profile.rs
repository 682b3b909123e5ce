//! A profile (`[profile.P]`): where its data come from and how much of them, image and batch
//! sizes, epochs, and its network and optimiser (checked by [`super::network`] and
//! [`super::optim`]).

use std::collections::BTreeMap;

use toml::Spanned;

use super::{Profile, Validator};
use crate::data::settings::{Normalize, SplitCaps};
use crate::data::DataKind;
use crate::error::Result;
use crate::spec::file::ProfileFile;
use crate::spec::settings::positive;

impl Validator<'_> {
    pub(super) fn profile(&self, name: &str, p: &Spanned<ProfileFile>) -> Result<Profile> {
        let p = p.get_ref();
        let f = |k: &str| format!("profile.{name}.{k}");
        let data = *p.data.get_ref();
        let image_size = self.located(positive(&p.image_size, &f("image_size")))?;
        if !(8..=1024).contains(&image_size) {
            return self.err(
                p.image_size.span(),
                format!("{} must be within 8..=1024", f("image_size")),
            );
        }
        let epochs = self.located(positive(&p.epochs, &f("epochs")))?;
        let batch_size = self.located(positive(&p.batch_size, &f("batch_size")))?;
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
            Some(v) => self.located(positive(v, &f("eval_batch_size")))?,
            None => 256,
        };
        let cap = |v: &Option<Spanned<usize>>, k: &str| -> Result<Option<usize>> {
            v.as_ref()
                .map(|v| self.located(positive(v, &f(k))))
                .transpose()
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
        let normalize = p
            .normalize
            .as_ref()
            .map_or(Normalize::default_for(data), |n| *n.get_ref());
        let optim = self.optim(name, p.optim.get_ref())?;
        let transfer = self.profile_transfer(name, p.transfer.as_ref(), epochs, &optim)?;
        let analysis = self.profile_analysis(name, p.analysis.as_ref())?;
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
            optim,
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
            transfer,
            analysis,
        })
    }
}
