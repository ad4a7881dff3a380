//! One module per subcommand.

mod context;
pub mod copy;
pub mod failures;
pub mod plan;
pub mod status;
pub mod sync;
