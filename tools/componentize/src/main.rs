//! `spampot-componentize CORE.wasm COMPONENT.wasm`: wrap a plugin built for
//! `wasm32-unknown-unknown` into a component.
//!
//! Why: the `wasm32-wasip2` target does this wrapping itself, but Rust's
//! standard library there imports 21 WASI functions (stdio for panic
//! messages, the environment, exit, clocks), and every import costs every
//! session's instantiation. A plugin that takes its time from the SDK
//! (`Context::now`) needs none of them; built for `wasm32-unknown-unknown`
//! it imports only the `spampot:emulator` host interface (5 functions), and
//! a judge session's sandbox cost fell by ~4 µs (docs/performance.md).
//! `just plugins` runs this on the sensor's plugins; plugin authors can
//! keep building for `wasm32-wasip2`, which the sensor loads as well.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let [input, output] = args.as_slice() else {
        bail!("usage: spampot-componentize CORE.wasm COMPONENT.wasm");
    };
    let module =
        std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let component = wit_component::ComponentEncoder::default()
        .validate(true)
        .module(&module)
        .with_context(|| format!("{} has no usable component type", input.display()))?
        .encode()
        .with_context(|| format!("cannot make a component of {}", input.display()))?;
    // Written beside the target and renamed: a sensor watching the plugin
    // directory never sees half a file.
    let tmp = output.with_extension("wasm.tmp");
    std::fs::write(&tmp, component).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, output)
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), output.display()))?;
    Ok(())
}
