//! A 64 MiB layer copies whole and verified.

use ferry_e2e::ferry::describe;
use ferry_e2e::ferry::run_ferry_with_peak_rss;
use ferry_e2e::fixtures;
use ferry_e2e::{Sandbox, parse_report, verify_copy};

#[test]
fn copies_a_64_mib_layer() {
    let sandbox = Sandbox::start().expect("sandbox");
    let size = 64 * 1024 * 1024 + 123;
    let fixture =
        fixtures::large_layer_image(&sandbox.src, "app/large", "v1", 201, size).expect("fixture");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let output = sandbox
        .copy(&fixture.reference, &dst_ref, &[])
        .expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    let report = parse_report(&output).expect("report");
    assert_eq!(report.bytes, fixture.blob_bytes(), "{report:?}");
    let layer = fixture.largest_blob().expect("layer");
    assert_eq!(layer.size, size);
    let stored = std::fs::metadata(sandbox.dst.blob_path(&layer.digest)).expect("layer stored");
    assert_eq!(stored.len(), size);
    verify_copy(&sandbox.src, &fixture, &sandbox.dst, &fixture.repo).expect("verified");
}

/// The memory bound: copying a 1 GiB layer stays under 64 MiB of RSS.
/// Slow (it generates and moves 1 GiB several times): run with
/// `cargo nextest run -p ferry-e2e --run-ignored only`.
#[test]
#[ignore = "slow: 1 GiB layer"]
fn copying_a_1_gib_layer_stays_under_64_mib_rss() {
    let sandbox = Sandbox::start().expect("sandbox");
    let size = 1024 * 1024 * 1024;
    let fixture =
        fixtures::large_layer_image(&sandbox.src, "app/huge", "v1", 202, size).expect("fixture");
    let dst_ref = fixture.reference_at(&sandbox.dst.host());
    let args = [
        "copy",
        fixture.reference.as_str(),
        dst_ref.as_str(),
        "--output",
        "json",
    ];
    let (output, peak_kib) = run_ferry_with_peak_rss(args, &sandbox.env()).expect("ferry runs");
    assert!(output.status.success(), "{}", describe(&output));
    let report = parse_report(&output).expect("report");
    eprintln!(
        "1 GiB layer: peak RSS {peak_kib} KiB, {} ms, {} requests",
        report.duration_ms, report.requests.total
    );
    assert!(peak_kib < 64 * 1024, "peak RSS {peak_kib} KiB");
    let layer = fixture.largest_blob().expect("layer");
    let stored = std::fs::metadata(sandbox.dst.blob_path(&layer.digest)).expect("layer stored");
    assert_eq!(stored.len(), size);
}
