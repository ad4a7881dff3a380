//! `scripts/pipeline-demo` (the flow of `make demo`) runs clean in `make test`: the demo's
//! binary, which `cargo test` builds with the package's examples, exits 0 after verifying
//! every digest with skopeo.

use std::process::Command;

#[test]
fn the_pipeline_demo_runs_clean() {
    let exe = std::env::current_exe().expect("test binary path");
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile dir");
    let demo = debug.join("examples").join("pipeline-demo");
    assert!(
        demo.exists(),
        "{} not built (cargo test builds the examples)",
        demo.display()
    );
    let out = Command::new(&demo).output().expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("demo: OK"), "{stdout}");
    assert_eq!(
        stdout.matches("  ok  ").count(),
        8,
        "4 images x 2 destinations verified:\n{stdout}"
    );
    assert_eq!(stdout.matches(" CONFLICT ").count(), 1, "{stdout}");
}
