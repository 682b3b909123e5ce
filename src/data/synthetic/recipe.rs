//! Task recipes: the label factors shared by all tasks, and how one task maps its classes
//! to factor levels, polarity and default nuisance levels. A recipe depends only on the
//! data-set and task keys, never on the seed.

use super::modality::Modality;
use super::{TaskShape, MAX_LABELS};
use crate::util::rng::Xoshiro256;
use crate::util::seed::Mixer;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Factor {
    Shape,
    Orientation,
    Texture,
    Region,
    Count,
}

const FACTORS: [Factor; 5] = [
    Factor::Shape,
    Factor::Orientation,
    Factor::Texture,
    Factor::Region,
    Factor::Count,
];

pub(super) const SHAPES: usize = 6;
const ORIENTATIONS: usize = 4;
pub(super) const TEXTURES: usize = 3;
const REGIONS: usize = 4;
const COUNTS: usize = 3;

impl Factor {
    fn levels(self) -> usize {
        match self {
            Factor::Shape => SHAPES,
            Factor::Orientation => ORIENTATIONS,
            Factor::Texture => TEXTURES,
            Factor::Region => REGIONS,
            Factor::Count => COUNTS,
        }
    }
    /// Several copies crammed into one quadrant would be illegible at 28 px.
    fn compatible(self, other: Factor) -> bool {
        !matches!(
            (self, other),
            (Factor::Count, Factor::Region) | (Factor::Region, Factor::Count)
        )
    }
}

/// The factor levels that define one class; `None` means nuisance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct ClassSpec {
    pub(super) shape: Option<usize>,
    pub(super) orientation: Option<usize>,
    pub(super) texture: Option<usize>,
    pub(super) region: Option<usize>,
    pub(super) count: Option<usize>,
}

pub(super) struct Recipe {
    pub(super) modality: Modality,
    pub(super) classes: Vec<ClassSpec>,
    /// +1: objects brighter than the background, -1: darker (before per-sample flips).
    pub(super) polarity: f32,
    /// Levels that nuisance factors take when they are not randomised.
    pub(super) default_shape: usize,
    pub(super) default_orientation: usize,
    pub(super) default_texture: usize,
}

impl Recipe {
    pub(super) fn new(dataset_key: &str, task: &TaskShape) -> Self {
        // Keyed by data set and task only, never by the seed: seeds resample the images of
        // one fixed problem, so their spread measures training noise, not task variety.
        let mut rng = Xoshiro256::new(
            Mixer::new(0x7265_6369_7065)
                .str(dataset_key)
                .str(&task.key)
                .finish(),
        );
        let mut factors: Vec<Factor> = Vec::new();
        let mut product = 1;
        for f in factor_order(&mut rng, task.labels) {
            if product >= task.labels {
                break;
            }
            if factors.iter().all(|g| g.compatible(f)) {
                factors.push(f);
                product *= f.levels();
            }
        }
        if product < task.labels {
            factors = vec![
                Factor::Shape,
                Factor::Orientation,
                Factor::Texture,
                Factor::Region,
            ];
            product = MAX_LABELS;
        }
        let mut combos: Vec<usize> = (0..product).collect();
        rng.shuffle(&mut combos);
        let classes = combos[..task.labels]
            .iter()
            .map(|&combo| {
                let mut rest = combo;
                let mut spec = ClassSpec::default();
                for &f in &factors {
                    let level = Some(rest % f.levels());
                    rest /= f.levels();
                    match f {
                        Factor::Shape => spec.shape = level,
                        Factor::Orientation => spec.orientation = level,
                        Factor::Texture => spec.texture = level,
                        Factor::Region => spec.region = level,
                        Factor::Count => spec.count = level,
                    }
                }
                spec
            })
            .collect();
        Recipe {
            modality: Modality::parse(&task.modality),
            classes,
            polarity: if rng.chance(0.5) { 1.0 } else { -1.0 },
            default_shape: rng.below(SHAPES),
            default_orientation: rng.below(ORIENTATIONS),
            default_texture: rng.below(TEXTURES),
        }
    }
}

/// The order in which a task takes label factors until their levels cover its classes.
/// Random, except that position never defines a task on its own (a network learns it
/// almost at once) but comes second, where it multiplies the classes of a many-label task
/// cheaply; and count, which cannot pair with position and whose crowded images are slow
/// to learn, only defines tasks with few labels.
fn factor_order(rng: &mut Xoshiro256, labels: usize) -> Vec<Factor> {
    let mut order: Vec<Factor> = FACTORS
        .into_iter()
        .filter(|&f| f != Factor::Region)
        .collect();
    rng.shuffle(&mut order);
    if labels > COUNTS {
        order.retain(|&f| f != Factor::Count);
        order.push(Factor::Count);
    }
    order.insert(1, Factor::Region);
    order
}
