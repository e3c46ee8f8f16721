// Records the git commit xrun was built from, for `xrun --version`, and
// hands the linker the order of xrun's start-up functions.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=XRUN_COMMIT={commit}");
    println!("cargo:rerun-if-changed=.git/HEAD");
    println!("cargo:rerun-if-changed=.git/refs/heads");
    order_hot_functions();
}

/// bench/hot-functions.txt (made by bench/hot-functions.sh) lists the
/// functions a container's start runs, first calls first. Laid out together
/// they fill a few 64 KiB fault-around windows instead of touching most of
/// the text, which lowers peak RSS and page faults. Only lld knows the
/// option: it is the linker of x86_64-unknown-linux-gnu from Rust 1.90 on.
fn order_hot_functions() {
    let list = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/hot-functions.txt");
    println!("cargo:rerun-if-changed={}", list.display());
    let lld = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu") && rustc_minor() >= Some(90);
    if lld && list.exists() {
        println!(
            "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
            list.display()
        );
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

/// The minor version of the rustc building us (1.MINOR.x).
fn rustc_minor() -> Option<u32> {
    let rustc = std::env::var("RUSTC").ok()?;
    let out = std::process::Command::new(rustc).arg("--version").output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    text.split_whitespace().nth(1)?.split('.').nth(1)?.parse().ok()
}
