//! Reading result events back from the replicate function's log group: `ferry-results`'
//! reader, here under its former path.

pub use ferry_results::{MAX_PAGES, ResultsLog, latest_for, parse_logged};
