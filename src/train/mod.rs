//! Training: the one training loop ([`fit`]), optimisers ([`optim`], with SGD's update in
//! place in [`sgd_step`]), learning-rate schedules ([`schedule`]), evaluation ([`eval`]), checkpoints ([`checkpoint`]) and the run
//! executor that ties data, method, loop and store together ([`runner`]), and the start of
//! a transfer run from its source run ([`transfer`]).

pub mod checkpoint;
pub mod checkpoint_policy;
pub mod eval;
pub mod fit;
pub mod optim;
pub mod runner;
pub mod schedule;
pub mod sgd_step;
pub mod speed_reference;
pub mod transfer;
