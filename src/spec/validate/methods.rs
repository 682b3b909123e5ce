//! The grid's methods and the `[method.NAME]` tables (top level, then a profile's over them):
//! names against the catalogue, the training overrides every method takes (`lr`,
//! `weight_decay`, `epochs`), and every other key handed to the method that owns it. A key
//! that belongs to another method, or to none, is refused here with the methods that have
//! it; what the value means is the method's business ([`MethodSettings::read_settings`]).

use std::collections::BTreeMap;

use toml::Spanned;

use super::{MethodOverrides, Validator};
use crate::error::Result;
use crate::spec::catalog::{canonical_key, not_implemented, owners_of, MethodSettings};
use crate::spec::options::MethodOptions;
use crate::spec::settings::{finite_positive, non_negative, positive, RawTable, SettingsTable};

/// Keys of every method table that override the profile's training settings.
const TRAINING_KEYS: [&str; 3] = ["lr", "weight_decay", "epochs"];

/// Training overrides and resolved options per method key.
pub(super) type MethodTables = (
    BTreeMap<String, MethodOverrides>,
    BTreeMap<String, MethodOptions>,
);

impl Validator<'_> {
    fn known_methods(&self) -> String {
        self.catalog
            .known()
            .iter()
            .map(|(k, _)| *k)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `grid.method`: canonical keys of known, implemented methods, each once.
    pub(super) fn methods(&self, names: &[Spanned<String>]) -> Result<Vec<String>> {
        if names.is_empty() {
            return self.whole(format!(
                "grid.method is empty; name at least one method ({})",
                self.known_methods()
            ));
        }
        let mut out: Vec<String> = Vec::new();
        for n in names {
            let (key, _) = self.method_key(n.get_ref(), n.span(), "")?;
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

    /// The catalogue key and the method of a name as written (`where_` prefixes the
    /// message, e.g. `[method.x]: `), refusing unknown and unimplemented methods.
    fn method_key(
        &self,
        name: &str,
        span: std::ops::Range<usize>,
        where_: &str,
    ) -> Result<(String, &dyn MethodSettings)> {
        let key = canonical_key(name);
        if !self.catalog.known().iter().any(|(k, _)| *k == key) {
            return self.err(
                span,
                format!(
                    "{where_}unknown method `{name}` (known: {})",
                    self.known_methods()
                ),
            );
        }
        match self.catalog.lookup(&key) {
            Some(m) => Ok((key, m)),
            None => {
                let e = not_implemented(name, &self.catalog.implemented());
                self.err(span, format!("{where_}{e}"))
            }
        }
    }

    /// Method tables (`[method.NAME]`, or a profile's) over `base` (the top level's, for a
    /// profile): the training overrides of every named method and the options of every
    /// method of the grid.
    pub(super) fn method_tables(
        &self,
        scope: &str,
        tables: &BTreeMap<String, Spanned<RawTable>>,
        methods: &[String],
        base: Option<&MethodTables>,
    ) -> Result<MethodTables> {
        // A method's settings start from the top level's (for a profile table) or from
        // its defaults.
        let start = |key: &str| -> MethodOptions {
            base.and_then(|(_, b)| b.get(key).copied())
                .or_else(|| self.catalog.lookup(key).map(|m| m.default_options()))
                .unwrap_or_default()
        };
        let mut overrides = base.map(|b| b.0.clone()).unwrap_or_default();
        let mut options: BTreeMap<String, MethodOptions> =
            methods.iter().map(|k| (k.clone(), start(k))).collect();
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        for (mname, m) in tables {
            let table = SettingsTable::new(format!("{scope}.{mname}"), m.get_ref());
            let header = table.header();
            let (key, method) = self.method_key(mname, m.span(), &format!("{header}: "))?;
            if let Some(first) = seen.insert(key.clone(), mname) {
                return self.err(
                    m.span(),
                    format!(
                        "{header} names the same method as [{scope}.{first}]; merge the two tables"
                    ),
                );
            }
            self.check_keys(&table, m.get_ref(), &key, method)?;
            let o = self.overrides(&table)?;
            let prev = overrides.get(&key).cloned().unwrap_or_default();
            overrides.insert(
                key.clone(),
                MethodOverrides {
                    lr: o.lr.or(prev.lr),
                    weight_decay: o.weight_decay.or(prev.weight_decay),
                    epochs: o.epochs.or(prev.epochs),
                },
            );
            let resolved = self.located(method.read_settings(&table, start(&key)))?;
            if let Err(why) = method.check_options(&resolved) {
                return self.err(m.span(), format!("{header}: {why}"));
            }
            if let Some(o) = options.get_mut(&key) {
                *o = resolved;
            }
        }
        Ok((overrides, options))
    }

    /// Refuses, in file order, the first key that is neither a training override nor one of
    /// the method's settings, naming the methods that do have it.
    fn check_keys(
        &self,
        table: &SettingsTable,
        raw: &RawTable,
        key: &str,
        method: &dyn MethodSettings,
    ) -> Result<()> {
        let mut keys: Vec<(&String, &Spanned<toml::Value>)> = raw.iter().collect();
        keys.sort_by_key(|(_, v)| v.span().start);
        let groups = method.setting_groups();
        for (k, v) in keys {
            let k = k.as_str();
            if TRAINING_KEYS.contains(&k) || groups.iter().any(|g| g.keys.contains(&k)) {
                continue;
            }
            let header = table.header();
            let (owners, what) = owners_of(self.catalog, k);
            let msg = match what {
                Some(what) => format!(
                    "{header} {k}: {key} has no {what} (`{k}` applies to {}); remove it",
                    owners.join(", ")
                ),
                None => {
                    let mut own: Vec<&str> = TRAINING_KEYS.to_vec();
                    own.extend(groups.iter().flat_map(|g| g.keys.iter().copied()));
                    format!(
                        "{header} {k}: unknown setting (the settings of {key}: {})",
                        own.join(", ")
                    )
                }
            };
            return self.err(v.span(), msg);
        }
        Ok(())
    }

    fn overrides(&self, t: &SettingsTable) -> Result<MethodOverrides> {
        Ok(MethodOverrides {
            lr: self.located(t.number("lr", finite_positive))?,
            weight_decay: self.located(t.number("weight_decay", non_negative))?,
            epochs: self.located(t.number("epochs", positive::<u32>))?,
        })
    }
}
