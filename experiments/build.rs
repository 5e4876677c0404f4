//! With the `tch` feature: record libtorch's folder (as torch-sys found it at build time) as an
//! rpath of the `gatelab` binary and this crate's tests, so they start wherever they are called
//! from (a Slurm script, a notebook) without LD_LIBRARY_PATH. The PyPI wheel's libraries carry
//! no rpath of their own for the binaries that link them.
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    if let Ok(dir) = std::env::var("DEP_TCH_LIBTORCH_LIB") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
