//! Registry names in the grid: pre-training and downstream sets must exist in the dataset
//! registry with the right role, and no list may name one thing twice.

use toml::Spanned;

use super::Validator;
use crate::data::registry::Role;
use crate::error::Result;

impl Validator<'_> {
    pub(super) fn unique(&self, names: &[Spanned<String>], field: &str) -> Result<Vec<String>> {
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

    pub(super) fn dataset_keys(&self, role: Role) -> String {
        self.registry
            .datasets
            .iter()
            .filter(|d| d.role == role)
            .map(|d| d.key.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub(super) fn datasets(
        &self,
        names: &[Spanned<String>],
        role: Role,
        field: &str,
    ) -> Result<Vec<String>> {
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

    pub(super) fn downstream(&self, names: &[Spanned<String>]) -> Result<Vec<String>> {
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
}
