//! One module per subcommand.

mod context;
pub(crate) mod copy;
pub(crate) mod failures;
pub(crate) mod plan;
pub(crate) mod status;
pub(crate) mod sync;
