//! Pure decisions: they take their inputs and `now`, and return what to do.
//! The daemon does the waiting and the I/O.

pub mod bandwidth;
pub mod machine;
pub mod pace;
pub mod retry;
pub mod schedule;
