//! A profile's optimiser (`[profile.P.optim]`): ranges of the learning rate, momentum and
//! weight decay, and the defaults of what is left out. The optimiser and schedule names are
//! enums that serde has already checked.

use super::Validator;
use crate::error::Result;
use crate::spec::file::OptimFile;
use crate::spec::run::{OptimConfig, Schedule};
use crate::spec::settings::{finite_positive, non_negative};

impl Validator<'_> {
    pub(super) fn optim(&self, profile: &str, o: &OptimFile) -> Result<OptimConfig> {
        let f = |k: &str| format!("profile.{profile}.optim.{k}");
        let lr = self.located(finite_positive(&o.lr, &f("lr")))?;
        let momentum = match &o.momentum {
            Some(m) if !(0.0..1.0).contains(m.get_ref()) => {
                return self.err(m.span(), format!("{} must be within [0, 1)", f("momentum")))
            }
            Some(m) => *m.get_ref(),
            None => 0.9,
        };
        let weight_decay = match &o.weight_decay {
            Some(w) => self.located(non_negative(w, &f("weight_decay")))?,
            None => 0.0,
        };
        Ok(OptimConfig {
            name: *o.name.get_ref(),
            lr,
            momentum,
            weight_decay,
            schedule: o
                .schedule
                .as_ref()
                .map_or(Schedule::Cosine, |s| *s.get_ref()),
            warmup_epochs: o.warmup_epochs.as_ref().map(|w| *w.get_ref()).unwrap_or(0),
        })
    }
}
