//! Builds `faults/syncfaults.c` into a shared library the end-to-end tests
//! load into bitsd with LD_PRELOAD (see `sync_faults`): a disk whose fsync
//! fails or stalls, on demand.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let lib = out.join("libbits_syncfaults.so");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let status = Command::new(&compiler)
        .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
        .arg(&lib)
        .arg("faults/syncfaults.c")
        .arg("-ldl")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {compiler}: {e}"));
    assert!(status.success(), "building faults/syncfaults.c failed");
    println!("cargo:rerun-if-changed=faults/syncfaults.c");
    println!("cargo:rerun-if-env-changed=CC");
}
