//! The replication job message on the queue: `ferry_pipeline::Job::decode`.
//!
//! Input: the message body.
#![no_main]

use ferry_pipeline::Job;
use libfuzzer_sys::fuzz_target;

#[path = "job_checks.rs"]
mod job_checks;

fuzz_target!(|data: &[u8]| {
    let Ok(body) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(job) = Job::decode(body) {
        job_checks::check_job(&job);
    }
});
