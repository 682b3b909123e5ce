//! Task recipes: the label factors shared by all tasks, and how one task maps its classes
//! to factor levels, polarity and default nuisance levels. A recipe depends only on the
//! data-set and task keys (and its kin's, for a task with a kin), never on the seed.

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
    /// A task's recipe. A task with a kin keeps the kin's factor order, polarity and
    /// default nuisance levels, so that it shares the kin's primitives, and takes only its
    /// classes (how many factors its labels need, and their permutation) from its own keys:
    /// new rules over the factors the kin's expert learnt to tell apart first.
    pub(super) fn new(dataset_key: &str, task: &TaskShape) -> Self {
        let modality = Modality::parse(&task.modality);
        let Some(kin) = &task.kin else {
            return Recipe::drawn(dataset_key, &task.key, task.labels, modality).0;
        };
        let (kin_recipe, order) = Recipe::drawn(&kin.dataset, &kin.task, kin.labels, modality);
        let mut rng = recipe_rng(dataset_key, &task.key);
        Recipe {
            classes: classes(&order, task.labels, &mut rng),
            ..kin_recipe
        }
    }

    /// The recipe that a task's own keys draw, and the factor order it was built from.
    /// The draws come in a fixed order (factor order, class permutation, polarity, default
    /// levels): changing it changes every pre-training task's data.
    fn drawn(
        dataset_key: &str,
        task_key: &str,
        labels: usize,
        modality: Modality,
    ) -> (Self, Vec<Factor>) {
        let mut rng = recipe_rng(dataset_key, task_key);
        let order = factor_order(&mut rng, labels);
        // Fields are evaluated as written, so this is also the order of the draws.
        let recipe = Recipe {
            modality,
            classes: classes(&order, labels, &mut rng),
            polarity: if rng.chance(0.5) { 1.0 } else { -1.0 },
            default_shape: rng.below(SHAPES),
            default_orientation: rng.below(ORIENTATIONS),
            default_texture: rng.below(TEXTURES),
        };
        (recipe, order)
    }
}

/// The stream of a task's recipe draws. Keyed by data set and task only, never by the
/// seed: seeds resample the images of one fixed problem, so their spread measures training
/// noise, not task variety.
fn recipe_rng(dataset_key: &str, task_key: &str) -> Xoshiro256 {
    Xoshiro256::new(
        Mixer::new(0x7265_6369_7065)
            .str(dataset_key)
            .str(task_key)
            .finish(),
    )
}

/// Takes factors from `order`, skipping incompatible ones, until their levels cover
/// `labels` (else all four combinable factors), and maps the classes to factor
/// combinations through a permutation drawn from `rng`.
fn classes(order: &[Factor], labels: usize, rng: &mut Xoshiro256) -> Vec<ClassSpec> {
    let mut factors: Vec<Factor> = Vec::new();
    let mut product = 1;
    for &f in order {
        if product >= labels {
            break;
        }
        if factors.iter().all(|g| g.compatible(f)) {
            factors.push(f);
            product *= f.levels();
        }
    }
    if product < labels {
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
    combos[..labels]
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
        .collect()
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
