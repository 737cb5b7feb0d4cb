// Links the OS crypto provider: OpenSSL libcrypto on Unix, CNG (bcrypt.dll) on Windows.
// On Windows the N-API symbols come from an import library made with dlltool (see build.sh);
// `cargo check` does not link, so CI's Windows check needs neither.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "windows" {
        println!("cargo:rustc-link-lib=bcrypt");
    } else {
        println!("cargo:rustc-link-lib=crypto");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
