//! `cfg(limited_api)`: the extension is built against CPython's limited API (one of the abi3
//! features is on), where the `contextvars` C API is not available (see `src/span.rs`).

fn main() {
    println!("cargo::rustc-check-cfg=cfg(limited_api)");
    println!("cargo::rerun-if-changed=build.rs");
    if ["CARGO_FEATURE_ABI3_PY39", "CARGO_FEATURE_ABI3_PY310"].iter().any(|f| std::env::var_os(f).is_some()) {
        println!("cargo::rustc-cfg=limited_api");
    }
}
