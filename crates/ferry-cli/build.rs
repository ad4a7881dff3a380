//! Records the git commit the binary is built from, for `ferry --version`. Outside a git
//! checkout (a source tarball) the commit reads `unknown`.

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FERRY_GIT_COMMIT={commit}");
    // A new commit moves HEAD or the branch it names (paths through `--git-path`, which
    // knows worktrees).
    let git_path = |p: &str| {
        Command::new("git")
            .args(["rev-parse", "--git-path", p])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    if let Some(head) = git_path("HEAD") {
        println!("cargo:rerun-if-changed={head}");
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(branch) = text.trim().strip_prefix("ref: ")
            && let Some(path) = git_path(branch)
        {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    if let Some(packed) = git_path("packed-refs") {
        println!("cargo:rerun-if-changed={packed}");
    }
}
