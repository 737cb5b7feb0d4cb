// Links the OS crypto provider: OpenSSL libcrypto on Unix, CNG (bcrypt.dll) on Windows.
// On Windows the N-API symbols come from an import library made with dlltool (see build.sh);
// `cargo check` does not link, so CI's Windows check needs neither.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "windows" {
        println!("cargo:rustc-link-lib=bcrypt");
        // Linking the .node needs node's N-API import library (build.sh --windows makes it with
        // dlltool from node-api-headers' node_api.def). `cargo check` needs nothing.
        if let Ok(dir) = std::env::var("GSRA_NODE_IMPLIB_DIR") {
            println!("cargo:rustc-link-search=native={}", dir);
            println!("cargo:rustc-link-lib=dylib=node");
        }
    } else {
        println!("cargo:rustc-link-lib=crypto");
    }
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=GSRA_NODE_IMPLIB_DIR");
}
