//! Reading settings out of a `[method.NAME]` table with their place in the file: typed
//! values through serde (enums included: `lambda_update = "simplex"`), range checks shared
//! with the experiment-level validator, and errors ([`SettingError`]) that carry the span
//! of the offending value so the validator can print `file:line:column`.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::ops::Range;

use serde::de::DeserializeOwned;
use toml::Spanned;

/// A `[method.NAME]` table as written: every value with its span.
pub type RawTable = BTreeMap<String, Spanned<toml::Value>>;

/// A problem with one value of the file, located by its byte span.
#[derive(Debug, Clone, PartialEq)]
pub struct SettingError {
    pub span: Range<usize>,
    pub message: String,
}

impl SettingError {
    pub fn at(span: Range<usize>, message: impl Display) -> Self {
        SettingError {
            span,
            message: message.to_string(),
        }
    }
}

/// One method's table, as its settings hook reads it.
pub struct SettingsTable<'a> {
    /// The table's dotted name as written in the file (`method.MoCo-MTL`,
    /// `profile.smoke.method.lorkd`), for messages.
    table: String,
    values: &'a RawTable,
}

impl<'a> SettingsTable<'a> {
    pub fn new(table: String, values: &'a RawTable) -> Self {
        SettingsTable { table, values }
    }

    /// The table's header as written: `[profile.smoke.method.lorkd]`.
    pub fn header(&self) -> String {
        format!("[{}]", self.table)
    }

    /// How messages name a setting: `method.lorkd.rank`.
    pub fn field(&self, key: &str) -> String {
        format!("{}.{key}", self.table)
    }

    /// Where the value of `key` is, if the table sets it.
    pub fn span(&self, key: &str) -> Option<Range<usize>> {
        self.values.get(key).map(Spanned::span)
    }

    /// The value of `key` as a `T` (numbers, strings, enums by their serde names), with its
    /// span; a value of the wrong type or an unknown variant is an error at the value.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<Spanned<T>>, SettingError> {
        let Some(v) = self.values.get(key) else {
            return Ok(None);
        };
        T::deserialize(v.get_ref().clone())
            .map(|t| Some(Spanned::new(v.span(), t)))
            .map_err(|e| {
                SettingError::at(
                    v.span(),
                    format!("{}: {}", self.field(key), e.message().trim()),
                )
            })
    }

    /// `key` as a number checked by `check` (one of this module's range checks).
    pub fn number<T: DeserializeOwned + Copy>(
        &self,
        key: &str,
        check: fn(&Spanned<T>, &str) -> Result<T, SettingError>,
    ) -> Result<Option<T>, SettingError> {
        self.get::<T>(key)?
            .map(|v| check(&v, &self.field(key)))
            .transpose()
    }

    /// An error at the value of `key` (which the table sets).
    pub fn error(&self, key: &str, message: impl Display) -> SettingError {
        SettingError::at(self.span(key).unwrap_or_default(), message)
    }

    /// Refuses the first of `keys` (in file order) that the table sets, with `why`:
    /// settings that do not apply given the others (`kd_alpha` with feature KD).
    pub fn refuse(&self, keys: &[&str], why: impl Fn(&str) -> String) -> Result<(), SettingError> {
        let first = keys
            .iter()
            .filter_map(|k| self.span(k).map(|s| (s, *k)))
            .min_by_key(|(s, _)| s.start);
        match first {
            Some((span, k)) => Err(SettingError::at(span, why(k))),
            None => Ok(()),
        }
    }
}

/// A count or size above zero.
pub fn positive<T: PartialOrd + Default + Copy + Display>(
    v: &Spanned<T>,
    field: &str,
) -> Result<T, SettingError> {
    if *v.get_ref() <= T::default() {
        return Err(SettingError::at(
            v.span(),
            format!("{field} must be positive (got {})", v.get_ref()),
        ));
    }
    Ok(*v.get_ref())
}

/// A finite number above zero (learning rates, temperatures).
pub fn finite_positive(v: &Spanned<f64>, field: &str) -> Result<f64, SettingError> {
    let x = *v.get_ref();
    if !x.is_finite() || x <= 0.0 {
        return Err(SettingError::at(
            v.span(),
            format!("{field} must be a positive number (got {x})"),
        ));
    }
    Ok(x)
}

/// A finite number of at least zero (weights, decays).
pub fn non_negative(v: &Spanned<f64>, field: &str) -> Result<f64, SettingError> {
    let x = *v.get_ref();
    if !x.is_finite() || x < 0.0 {
        return Err(SettingError::at(
            v.span(),
            format!("{field} must be zero or positive (got {x})"),
        ));
    }
    Ok(x)
}

/// A number within `[0, 1]` (mixing weights).
pub fn unit_interval(v: &Spanned<f64>, field: &str) -> Result<f64, SettingError> {
    if !(0.0..=1.0).contains(v.get_ref()) {
        return Err(SettingError::at(
            v.span(),
            format!("{field} must be within [0, 1]"),
        ));
    }
    Ok(*v.get_ref())
}
