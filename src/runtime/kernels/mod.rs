//! Project-side kernels substituted into tract's optimized graph where they measured better.
//!
//! tract 0.23's depthwise convolution on aarch64 (`DepthWiseConv`, channel-last, tract-linalg's
//! `depthwise_c_f32`) reloads the tap index, the input offset and the weights for every tap of
//! every output point, and the ReLU6 that follows each one is a separate pass over its output.
//! [`depthwise`] replaces both with one operator that keeps a 3x3 or 5x5 filter in registers
//! across a row of output points, reuses each loaded input column for every output point it
//! feeds, and clamps before storing. It is substituted after tract's optimization, by node, so
//! everything else stays tract's. The one depthwise convolution tract leaves channel-first
//! (EfficientNet-Lite's first, behind the stem) runs on [`planar`], which vectorizes along the
//! rows of each channel instead.
//!
//! [`matmul`] picks among tract-linalg's own aarch64 f32 matmul kernels by estimated
//! instruction count (a dispatch tier registered beside tract's), where tract runs every product
//! through its 8x8 kernel.

pub(crate) mod depthwise;
mod lanes;
pub(crate) mod matmul;
pub(crate) mod planar;

use tract_onnx::prelude::*;

/// `typed.into_optimized()`, then the project's depthwise operator in place of tract's where
/// [`depthwise::enabled`] says so.
pub(crate) fn into_optimized(typed: TypedModel) -> TractResult<TypedModel> {
    // Read here, before tract's first kernel selection, so that the tier's module is linked in
    // and a bad CASCADE_MMM is reported once.
    log::debug!("matmul kernels: {:?}", matmul::policy());
    if !depthwise::enabled() {
        return typed.into_optimized();
    }
    let convs = depthwise::record(&typed);
    let mut optimized = typed.into_optimized()?;
    depthwise::substitute(&mut optimized, &convs)?;
    Ok(optimized)
}
