//! One module per subcommand.

pub mod copy;
