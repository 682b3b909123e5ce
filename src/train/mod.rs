//! Training: the one training loop ([`fit`]), optimisers ([`optim`]), learning-rate
//! schedules ([`schedule`]), evaluation ([`eval`]), checkpoints ([`checkpoint`]) and the run
//! executor that ties data, method, loop and store together ([`runner`]).

pub mod checkpoint;
pub mod eval;
pub mod fit;
pub mod optim;
pub mod runner;
pub mod schedule;
