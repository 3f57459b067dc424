//! Bakes the libtorch directory that torch-sys linked against into the rpath of
//! every binary, test and benchmark, so nothing needs LD_LIBRARY_PATH at run time.
//! LD_LIBRARY_PATH still wins (the linker emits RUNPATH), which is how the GPU
//! machine points a binary built here at its own libtorch.

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
        println!("cargo:rustc-env=CLIPDRAW_LIBTORCH_LIB={dir}");
    }
}
