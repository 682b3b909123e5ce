//! A network's configuration (`[profile.P.model]`, a foundation model's `model`): widths and
//! depths that fit the architecture's layout, and the ViT-only settings. The architecture
//! and stem names themselves are enums that serde has already checked.

use super::Validator;
use crate::error::Result;
use crate::spec::file::ModelFile;
use crate::spec::run::{Arch, ModelConfig, Stem};

impl Validator<'_> {
    /// A network's configuration; `field` names it in messages (`profile.smoke.model`).
    pub(super) fn model(
        &self,
        field: &str,
        m: &ModelFile,
        image_size: usize,
    ) -> Result<ModelConfig> {
        let arch = *m.arch.get_ref();
        let widths = m.widths.get_ref();
        let depths = m.depths.get_ref();
        if widths.is_empty() || widths.contains(&0) {
            return self.err(
                m.widths.span(),
                format!("{field}.widths must be a non-empty list of positive numbers"),
            );
        }
        if arch != Arch::Vit {
            let vit_only = [
                ("patch_size", m.patch_size.as_ref()),
                ("heads", m.heads.as_ref()),
            ];
            if let Some((k, Some(v))) = vit_only.iter().find(|(_, v)| v.is_some()) {
                return self.err(
                    v.span(),
                    format!("{field}.{k} only applies to arch = \"vit\"; remove it"),
                );
            }
        }
        // ResNet: one width per stage. ShuffleNetV2: the stem width, one per stage and the
        // final 1×1 conv's width, with even stage widths (each unit splits them in halves).
        let (stage_widths, layout) = match arch {
            Arch::Vit => (1, "widths = [embedding width] and depths = [blocks], e.g. [768] and [12] for ViT-B/16"),
            Arch::ShuffleNetV2 => (
                widths.len().saturating_sub(2),
                "widths = [stem, one per stage…, final], e.g. [24, 116, 232, 464, 1024] with depths [4, 8, 4]",
            ),
            Arch::Resnet | Arch::ResnetBottleneck => (widths.len(), "one width per stage"),
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
        if arch == Arch::ShuffleNetV2 {
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
        let stem = m.stem.as_ref().map_or(Stem::Cifar, |s| *s.get_ref());
        let mut cfg = ModelConfig::conv(arch, widths, depths, stem);
        if arch == Arch::Vit {
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
}
