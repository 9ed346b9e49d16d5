//! The depthwise convolution with its clamp, as an operator in tract's graph.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use super::{run, Geometry};
use crate::runtime::kernels::planar;

/// The project's depthwise convolution with its clamp: input `[N, H, W, C]`, output
/// `[N, OH, OW, C]`, the weights (packed by [`super::pack_weights`]) and the bias held by the operator;
/// or, for a channel-first geometry, `[N, C, H, W]` to `[N, C, OH, OW]` with tract's weights
/// (`[C, taps]`) on [`planar`].
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseClamp {
    pub(super) g: Geometry,
    pub(super) n: usize,
    pub(super) c: usize,
    /// `[N, OH, OW, C]` (channel-first: `[N, C, OH, OW]`), without `N` when tract dropped the
    /// batch axis.
    pub(super) out_shape: TVec<usize>,
    pub(super) weights: Arc<[f32]>,
    pub(super) bias: Arc<[f32]>,
    pub(super) clamp: Option<(f32, f32)>,
}

impl PartialEq for DepthwiseClamp {
    fn eq(&self, other: &Self) -> bool {
        let bits = |c: Option<(f32, f32)>| c.map(|(a, b)| (a.to_bits(), b.to_bits()));
        self.g == other.g
            && self.n == other.n
            && self.c == other.c
            && self.out_shape == other.out_shape
            && Arc::ptr_eq(&self.weights, &other.weights)
            && Arc::ptr_eq(&self.bias, &other.bias)
            && bits(self.clamp) == bits(other.clamp)
    }
}
impl Eq for DepthwiseClamp {}

impl Op for DepthwiseClamp {
    fn name(&self) -> StaticName {
        "ProjectDepthwiseClamp".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!(
            "{:?} c={} clamp={:?}",
            self.g, self.c, self.clamp
        )])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for DepthwiseClamp {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = args_1!(inputs);
        let g = &self.g;
        ensure!(
            x.len() == self.n * g.h * g.w * self.c && x.rank() == self.out_shape.len(),
            "depthwise input is {:?}",
            x.shape()
        );
        // SAFETY: `run` writes every element of the output (every channel of every output point
        // of every image) before it is read; f32 has no invalid bit patterns.
        let mut out = unsafe { Tensor::uninitialized::<f32>(&self.out_shape)? };
        let kernel = match g.channels_first {
            false => run,
            true => planar::run,
        };
        kernel(
            g,
            self.c,
            x.try_as_plain_ram()?.as_slice::<f32>()?,
            &self.weights,
            &self.bias,
            self.clamp,
            out.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?,
        )?;
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for DepthwiseClamp {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1);
        Ok(tvec!(f32::fact(&*self.out_shape)))
    }

    fn cost(&self, _inputs: &[&TypedFact]) -> TractResult<TVec<(Cost, TDim)>> {
        let g = &self.g;
        Ok(tvec!((
            Cost::FMA(f32::datum_type()),
            (self.n * g.oh * g.ow * self.c * g.k * g.k).into()
        )))
    }

    as_op!();
}
