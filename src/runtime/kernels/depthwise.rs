//! A depthwise convolution (3x3 or 5x5, stride 1 or 2, channel-last f32) with the clamp that
//! follows it (ReLU6) applied before the store, in place of tract's `DepthWiseConv` and its
//! `OptBinChain(Max+Min)` pass.
//!
//! For each block of four channels the filter's taps stay in vector registers while a row of
//! output points is computed, a few points at a time: every input column the block loads feeds
//! each of those points it reaches (with stride 1, a 3x3 filter loads 18 input vectors for four
//! points, 36 multiply-adds, where tract loads 36 plus the 36 weights, 36 tap indices and 36
//! offsets). The input is read where it lies: rows above and below the image read a shared row
//! of zeros, and only output columns whose window crosses the left or right edge test their
//! taps, so the interior of every row takes one branch-free path. Output rows are split across
//! tract's executor, as tract splits its own depthwise channels.
//!
//! Substitution happens after `into_optimized`: the decluttered graph's `Conv` nodes give the
//! geometry (kernel, stride, padding), which tract's `DepthWiseConv` does not expose, and each
//! `DepthWiseConv` keeps its `Conv`'s name. A node whose facts do not match what was recorded,
//! or whose weights or bias are not constants, is left to tract.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::OptBinChain;
use tract_onnx::tract_core::ops::cnn::Conv;

/// Where the project's operator replaces tract's: by default on aarch64, where it measured
/// better than tract's (see the README's ARM work section), and nowhere else;
/// `CASCADE_DEPTHWISE=project` or `=tract` overrides, for A/B measurements with one binary.
pub(crate) fn enabled() -> bool {
    match std::env::var("CASCADE_DEPTHWISE").as_deref() {
        Ok("project") => true,
        Ok("tract") => false,
        _ => cfg!(target_arch = "aarch64"),
    }
}

/// The spatial geometry of one depthwise convolution: what tract's optimized op hides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Geometry {
    /// Kernel side (square kernels only), 3 or 5.
    pub k: usize,
    /// Stride (the same on both axes), 1 or 2.
    pub s: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub h: usize,
    pub w: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Geometry {
    /// Whether the kernels below cover it.
    fn supported(&self) -> bool {
        matches!(self.k, 3 | 5)
            && matches!(self.s, 1 | 2)
            && self.pad_top < self.k
            && self.pad_left < self.k
            && self.oh >= 1
            && self.ow >= 1
            && self.h >= 1
            && self.w >= 1
    }
}

/// Geometry of every depthwise `Conv` of a decluttered model, by node name.
pub(crate) fn record(model: &TypedModel) -> HashMap<String, Geometry> {
    let mut found = HashMap::new();
    for node in model.nodes() {
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        if let Some(g) = conv_geometry(model, node, conv) {
            found.insert(node.name.clone(), g);
        }
    }
    found
}

fn conv_geometry(model: &TypedModel, node: &TypedNode, conv: &Conv) -> Option<Geometry> {
    let spec = &conv.pool_spec;
    let c = spec.input_channels;
    if conv.q_params.is_some() || conv.group != c || spec.output_channels != c || c < 2 {
        return None;
    }
    let fact = model.outlet_fact(*node.inputs.first()?).ok()?;
    if fact.datum_type != f32::datum_type() {
        return None;
    }
    let shape: TVec<usize> = fact.shape.as_concrete()?.into();
    let data = spec.data_format.shape(shape).ok()?;
    let hw = data.hw_dims();
    let ([h, w], [kh, kw]) = (hw, &*spec.kernel_shape) else {
        return None;
    };
    let strides = spec.strides();
    let dilations = spec.dilations();
    if kh != kw
        || strides.len() != 2
        || strides[0] != strides[1]
        || dilations.iter().any(|&d| d != 1)
    {
        return None;
    }
    let padding = spec.computed_padding(&[*h, *w]);
    let g = Geometry {
        k: *kh,
        s: strides[0],
        pad_top: padding[0].pad_before,
        pad_left: padding[1].pad_before,
        h: *h,
        w: *w,
        oh: padding[0].convoluted,
        ow: padding[1].convoluted,
    };
    g.supported().then_some(g)
}

/// Replaces each channel-last `DepthWiseConv` of an optimized model that was recorded (and the
/// clamp right after it, when there is one) by [`DepthwiseClamp`]. Returns how many.
pub(crate) fn substitute(
    model: &mut TypedModel,
    convs: &HashMap<String, Geometry>,
) -> TractResult<usize> {
    let candidates: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op().name() == "DepthWiseConv" && convs.contains_key(&n.name))
        .map(|n| n.id)
        .collect();
    let mut done = 0;
    for id in candidates {
        let node = model.node(id);
        let Some(g) = convs.get(&node.name) else {
            continue;
        };
        let (op, last) = match replacement(model, node, *g)? {
            Ok(found) => found,
            Err(why) => {
                log::debug!("depthwise {}: left to tract ({why})", node.name);
                continue;
            }
        };
        let mut patch = TypedModelPatch::new(format!("project depthwise {}", node.name));
        let tap = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(format!("{}.project", node.name), op, &[tap])?[0];
        patch.shunt_outside(model, last, out)?;
        patch.apply(model)?;
        done += 1;
    }
    if done > 0 {
        model.compact()?;
    }
    log::debug!(
        "depthwise: {done} of {} convolutions on the project's kernel",
        convs.len()
    );
    Ok(done)
}

/// The operator for one `DepthWiseConv` node and the outlet it replaces (the clamp's, when one
/// follows), or why the node is not one this operator covers.
fn replacement(
    model: &TypedModel,
    node: &TypedNode,
    g: Geometry,
) -> TractResult<Result<(DepthwiseClamp, OutletId), String>> {
    let [x, kernel, bias] = &*node.inputs else {
        return Ok(Err(format!("{} inputs", node.inputs.len())));
    };
    let x_fact = model.outlet_fact(*x)?;
    let out_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
    let (Some(xs), Some(os)) = (x_fact.shape.as_concrete(), out_fact.shape.as_concrete()) else {
        return Ok(Err("symbolic shapes".into()));
    };
    // Channel-last, as tract lays depthwise convolutions out on aarch64: [N, H, W, C], or
    // [H, W, C] once the batch axis is gone.
    let (batch, h, w, c) = match *xs {
        [n, h, w, c] => (Some(n), h, w, c),
        [h, w, c] => (None, h, w, c),
        _ => return Ok(Err(format!("input shape {xs:?}"))),
    };
    let n = batch.unwrap_or(1);
    let out_shape: TVec<usize> = match batch {
        Some(n) => tvec!(n, g.oh, g.ow, c),
        None => tvec!(g.oh, g.ow, c),
    };
    if x_fact.datum_type != f32::datum_type()
        || out_fact.datum_type != f32::datum_type()
        || (h, w) != (g.h, g.w)
        || os != &*out_shape
        || c % 4 != 0
    {
        return Ok(Err(format!("input {xs:?}, output {os:?}, recorded {g:?}")));
    }
    let (Some(kernel), Some(bias)) = (
        const_value(model, *kernel, 4)?,
        const_value(model, *bias, 4)?,
    ) else {
        return Ok(Err("kernel or bias not constant".into()));
    };
    // tract's channel-last kernel is [1, taps, C], tap-major (row by row), channel inner.
    if kernel.datum_type() != f32::datum_type()
        || kernel.shape().last() != Some(&c)
        || kernel.len() != g.k * g.k * c
        || bias.datum_type() != f32::datum_type()
        || bias.len() != c
    {
        return Ok(Err(format!(
            "kernel {:?}, bias {:?}",
            kernel.shape(),
            bias.shape()
        )));
    }
    let weights: Arc<[f32]> =
        pack_weights(g.k, c, kernel.try_as_plain_ram()?.as_slice::<f32>()?)?.into();
    let bias: Arc<[f32]> = bias.try_as_plain_ram()?.as_slice::<f32>()?.into();
    let (clamp, last) = match following_clamp(model, node)? {
        Some((clamp, node)) => (Some(clamp), OutletId::new(node, 0)),
        None => (None, OutletId::new(node.id, 0)),
    };
    Ok(Ok((
        DepthwiseClamp {
            g,
            n,
            c,
            out_shape,
            weights,
            bias,
            clamp,
        },
        last,
    )))
}

/// The value of a wire that only depends on constants (tract keeps a few reshapes of the
/// weights in the optimized graph): its fact's, or its node evaluated on its inputs' values,
/// `depth` nodes up at most.
fn const_value(
    model: &TypedModel,
    outlet: OutletId,
    depth: usize,
) -> TractResult<Option<Arc<Tensor>>> {
    if let Some(k) = &model.outlet_fact(outlet)?.konst {
        return Ok(Some(k.clone()));
    }
    let node = model.node(outlet.node);
    if depth == 0 || node.inputs.is_empty() {
        return Ok(None);
    }
    let mut inputs = TVec::new();
    for input in &node.inputs {
        let Some(v) = const_value(model, *input, depth - 1)? else {
            return Ok(None);
        };
        inputs.push(v.into_tvalue());
    }
    let Some(mut outputs) = node.op.eval_out_of_plan(inputs)? else {
        return Ok(None);
    };
    if outputs.len() <= outlet.slot {
        return Ok(None);
    }
    Ok(Some(outputs.swap_remove(outlet.slot).into_arc_tensor()))
}

/// The clamp (`max` then `min`, or any chain of them against scalar constants) that is the only
/// consumer of a node's output, as `(lo, hi)` with the chain's node id.
fn following_clamp(
    model: &TypedModel,
    node: &TypedNode,
) -> TractResult<Option<((f32, f32), usize)>> {
    let outlet = OutletId::new(node.id, 0);
    let succ = &node.outputs[0].successors;
    if succ.len() != 1 || succ[0].slot != 0 || model.output_outlets()?.contains(&outlet) {
        return Ok(None);
    }
    let next = model.node(succ[0].node);
    let Some(chain) = next.op_as::<OptBinChain>() else {
        return Ok(None);
    };
    let (mut lo, mut hi) = (f32::NEG_INFINITY, f32::INFINITY);
    for (step, operand) in chain.steps.iter().zip(&next.inputs[1..]) {
        let fact = model.outlet_fact(*operand)?;
        let Some(v) = fact
            .konst
            .as_ref()
            .filter(|t| t.len() == 1 && t.datum_type() == f32::datum_type())
        else {
            return Ok(None);
        };
        let v = v.try_as_plain_ram()?.as_slice::<f32>()?[0];
        if v.is_nan() {
            return Ok(None);
        }
        // clamp(lo, hi) then max(v) is clamp(max(lo, v), max(hi, v)); likewise for min.
        match step.linalg_op {
            tract_linalg::BinOp::Max => (lo, hi) = (lo.max(v), hi.max(v)),
            tract_linalg::BinOp::Min => (lo, hi) = (lo.min(v), hi.min(v)),
            _ => return Ok(None),
        }
    }
    if chain.steps.is_empty() || next.inputs.len() != chain.steps.len() + 1 {
        return Ok(None);
    }
    Ok(Some(((lo, hi), next.id)))
}

/// The project's depthwise convolution with its clamp: input `[N, H, W, C]`, output
/// `[N, OH, OW, C]`, the weights (packed by [`pack_weights`]) and the bias held by the operator.
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseClamp {
    g: Geometry,
    n: usize,
    c: usize,
    /// `[N, OH, OW, C]`, or `[OH, OW, C]` when tract dropped the batch axis.
    out_shape: TVec<usize>,
    weights: Arc<[f32]>,
    bias: Arc<[f32]>,
    clamp: Option<(f32, f32)>,
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
        run(
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

/// Tap-major weights (`[K * K, C]`, as tract's channel-last kernel holds them) regrouped by
/// block of four channels, `[C / 4, K * K, 4]`: one block's taps are then contiguous.
pub(crate) fn pack_weights(k: usize, c: usize, tap_major: &[f32]) -> TractResult<Vec<f32>> {
    ensure!(
        c % 4 == 0 && tap_major.len() == k * k * c,
        "depthwise weights length"
    );
    let mut packed = Vec::with_capacity(tap_major.len());
    for cb in 0..c / 4 {
        for tap in tap_major.chunks_exact(c) {
            packed.extend_from_slice(&tap[cb * 4..cb * 4 + 4]);
        }
    }
    Ok(packed)
}

/// The convolution of `n` images (`input.len() / (h * w * c)`) with `packed` weights (from
/// [`pack_weights`]) and `bias`, clamped to `clamp` when given, into `output`. `c` must be a
/// multiple of four.
pub(crate) fn run(
    g: &Geometry,
    c: usize,
    input: &[f32],
    packed: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    output: &mut [f32],
) -> TractResult<()> {
    ensure!(g.supported(), "unsupported depthwise geometry {g:?}");
    ensure!(
        c > 0 && c % 4 == 0,
        "depthwise channels {c} are not a multiple of 4"
    );
    let (in_image, out_image) = (g.h * g.w * c, g.oh * g.ow * c);
    ensure!(input.len() % in_image == 0, "depthwise input length");
    let n = input.len() / in_image;
    ensure!(output.len() == n * out_image, "depthwise output length");
    ensure!(
        packed.len() == g.k * g.k * c && bias.len() == c,
        "depthwise weights length"
    );
    for (x, y) in input
        .chunks_exact(in_image)
        .zip(output.chunks_exact_mut(out_image))
    {
        #[cfg(target_arch = "aarch64")]
        image::<std::arch::aarch64::float32x4_t>(g, c, x, packed, bias, clamp, y)?;
        #[cfg(not(target_arch = "aarch64"))]
        image::<Portable>(g, c, x, packed, bias, clamp, y)?;
    }
    Ok(())
}

/// Four f32 lanes: NEON's `float32x4_t` on aarch64, plain arrays elsewhere.
trait Lanes: Copy + Send + Sync {
    /// # Safety
    /// `p` must be readable for four f32.
    unsafe fn load(p: *const f32) -> Self;
    /// # Safety
    /// `p` must be writable for four f32.
    unsafe fn store(self, p: *mut f32);
    fn splat(x: f32) -> Self;
    /// `self + a * b`, per lane.
    fn mul_add(self, a: Self, b: Self) -> Self;
    /// `min(max(self, lo), hi)`, per lane.
    fn clamp(self, lo: Self, hi: Self) -> Self;
}

#[cfg(target_arch = "aarch64")]
impl Lanes for std::arch::aarch64::float32x4_t {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees four readable f32 at `p`; vld1q has no alignment need.
        unsafe { std::arch::aarch64::vld1q_f32(p) }
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees four writable f32 at `p`; vst1q has no alignment need.
        unsafe { std::arch::aarch64::vst1q_f32(p, self) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline (every aarch64 target enables it).
        unsafe { std::arch::aarch64::vdupq_n_f32(x) }
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vfmaq_f32(self, a, b) }
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vminq_f32(std::arch::aarch64::vmaxq_f32(self, lo), hi) }
    }
}

/// The portable lanes, for other architectures.
#[derive(Clone, Copy)]
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
struct Portable([f32; 4]);

impl Lanes for Portable {
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: the caller guarantees four readable f32 at `p`; read_unaligned needs no
        // alignment.
        Portable(unsafe { std::ptr::read_unaligned(p as *const [f32; 4]) })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: the caller guarantees four writable f32 at `p`.
        unsafe { std::ptr::write_unaligned(p as *mut [f32; 4], self.0) }
    }
    #[inline(always)]
    fn splat(x: f32) -> Self {
        Portable([x; 4])
    }
    #[inline(always)]
    fn mul_add(self, a: Self, b: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i] + a.0[i] * b.0[i]))
    }
    #[inline(always)]
    fn clamp(self, lo: Self, hi: Self) -> Self {
        Portable(std::array::from_fn(|i| self.0[i].max(lo.0[i]).min(hi.0[i])))
    }
}

/// One image: output rows split across tract's executor.
fn image<V: Lanes>(
    g: &Geometry,
    c: usize,
    input: &[f32],
    packed: &[f32],
    bias: &[f32],
    clamp: Option<(f32, f32)>,
    output: &mut [f32],
) -> TractResult<()> {
    let out_base = output.as_mut_ptr() as usize;
    let total = output.len();
    let mut rows = vec![(); g.oh];
    tract_linalg::multithread::par_chunks_mut(&mut rows, 1, total, |first, chunk| {
        let band = Band {
            g,
            c,
            input,
            packed,
            bias,
            oy0: first,
            oy1: first + chunk.len(),
        };
        // SAFETY: `out_base` is `output`, `g.oh * g.ow * c` f32 long (checked by `run`); this
        // band writes only its own output rows `oy0..oy1`, which no other band writes.
        unsafe {
            let out = out_base as *mut f32;
            match (g.k, g.s, clamp) {
                (3, 1, Some((lo, hi))) => band.run::<V, 3, 1, 4, true>(out, lo, hi),
                (3, 2, Some((lo, hi))) => band.run::<V, 3, 2, 4, true>(out, lo, hi),
                (5, 1, Some((lo, hi))) => band.run::<V, 5, 1, 2, true>(out, lo, hi),
                (5, 2, Some((lo, hi))) => band.run::<V, 5, 2, 2, true>(out, lo, hi),
                (3, 1, None) => band.run::<V, 3, 1, 4, false>(out, 0.0, 0.0),
                (3, 2, None) => band.run::<V, 3, 2, 4, false>(out, 0.0, 0.0),
                (5, 1, None) => band.run::<V, 5, 1, 2, false>(out, 0.0, 0.0),
                (5, 2, None) => band.run::<V, 5, 2, 2, false>(out, 0.0, 0.0),
                _ => bail!("unsupported depthwise geometry {g:?}"),
            }
        }
        Ok(())
    })
}

/// Output rows `oy0..oy1` of one image.
struct Band<'a> {
    g: &'a Geometry,
    c: usize,
    input: &'a [f32],
    packed: &'a [f32],
    bias: &'a [f32],
    oy0: usize,
    oy1: usize,
}

impl Band<'_> {
    /// Reads the input where it lies (`[H, W, C]`): an input row above or below the image is
    /// a shared row of zeros, so every output row takes the same path, and only the output
    /// columns whose window crosses the left or right edge check their taps. For each output
    /// row and block of four channels, the block's taps are loaded into registers once and
    /// serve the whole row.
    ///
    /// # Safety
    /// `out` must be writable for the image's `g.oh * g.ow * c` outputs; `input`, `packed` and
    /// `bias` must have the lengths `run` checks, `c` be a multiple of 4, and `K`, `S` be
    /// `g.k`, `g.s`.
    #[inline(never)]
    unsafe fn run<V: Lanes, const K: usize, const S: usize, const N: usize, const CLAMP: bool>(
        &self,
        out: *mut f32,
        lo: f32,
        hi: f32,
    ) {
        let (g, c) = (self.g, self.c);
        let (lo, hi) = (V::splat(lo), V::splat(hi));
        // Output columns whose whole window is inside the image: `inner.0..inner.1`.
        let first = g.pad_left.div_ceil(S).min(g.ow);
        let end = match (g.w + g.pad_left).checked_sub(K) {
            Some(span) => (span / S + 1).min(g.ow),
            None => 0,
        };
        let inner = (first, end.max(first));
        // A row of zeros stands for the padding rows, when this band reads any.
        let reads_padding = self.oy0 * S < g.pad_top || (self.oy1 - 1) * S + K > g.h + g.pad_top;
        let zeros = zeros(if reads_padding { g.w * c } else { 0 });
        let x = self.input.as_ptr();
        for oy in self.oy0..self.oy1 {
            let rows: [*const f32; K] = std::array::from_fn(|ky| {
                match (oy * S + ky).checked_sub(g.pad_top) {
                    // SAFETY: row `iy < h` of the image.
                    Some(iy) if iy < g.h => unsafe { x.add(iy * g.w * c) },
                    _ => zeros.as_ptr(),
                }
            });
            // SAFETY: output row `oy < oh`.
            let out_row = unsafe { out.add(oy * g.ow * c) };
            for cb in 0..c / 4 {
                // SAFETY: block `cb` of the packed weights: K * K taps of 4 from `cb * K * K * 4`;
                // `cb * 4 + 4 <= c == bias.len()`; rows and output are `w` and `ow` points of
                // `c` channels, of which this block reads and writes `cb * 4 .. cb * 4 + 4`.
                unsafe {
                    let wb = self.packed.as_ptr().add(cb * K * K * 4);
                    let w: [[V; K]; K] = std::array::from_fn(|ky| {
                        std::array::from_fn(|kx| V::load(wb.add((ky * K + kx) * 4)))
                    });
                    let b = V::load(self.bias.as_ptr().add(cb * 4));
                    let rows = rows.map(|r| r.add(cb * 4));
                    let out = out_row.add(cb * 4);
                    let block = Block::<V, K> {
                        rows,
                        c,
                        w,
                        b,
                        lo,
                        hi,
                    };
                    for ox in (0..inner.0).chain(inner.1..g.ow) {
                        block.edge::<S, CLAMP>(ox, g.pad_left, g.w, out.add(ox * c));
                    }
                    if inner.1 > inner.0 {
                        block.inner::<S, N, CLAMP>(
                            inner.0 * S - g.pad_left,
                            out.add(inner.0 * c),
                            inner.1 - inner.0,
                        );
                    }
                }
            }
        }
    }
}

/// How many zeros [`zeros`] shares: an input row of 64 Ki values (a 112-wide row of 585
/// channels), 256 KiB allocated once.
const SHARED_ZEROS: usize = 1 << 16;

/// `len` zeros: the shared ones (allocated once per process, never written) when they are
/// enough, else a fresh allocation. Padding rows are read often and are short, and a zeroed
/// allocation per call is not free: musl's `calloc` scans the memory it returns (the operator's
/// first version lost 27 M instructions per Lite0 inference there).
fn zeros(len: usize) -> std::borrow::Cow<'static, [f32]> {
    static SHARED: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    if len <= SHARED_ZEROS {
        std::borrow::Cow::Borrowed(&SHARED.get_or_init(|| vec![0f32; SHARED_ZEROS].into())[..len])
    } else {
        std::borrow::Cow::Owned(vec![0f32; len])
    }
}

/// One output row's block of four channels: the filter rows' input rows (offset to the
/// block's channels), the taps and bias in registers, and the clamp.
struct Block<V, const K: usize> {
    rows: [*const f32; K],
    c: usize,
    w: [[V; K]; K],
    b: V,
    lo: V,
    hi: V,
}

impl<V: Lanes, const K: usize> Block<V, K> {
    #[inline(always)]
    fn finish<const CLAMP: bool>(&self, acc: V) -> V {
        if CLAMP {
            acc.clamp(self.lo, self.hi)
        } else {
            acc
        }
    }

    /// Output column `ox`, whose window crosses the image's left or right edge: taps outside
    /// the image are skipped. The usual cases (up to two taps off either side, as 3x3 and 5x5
    /// padding gives) take a path specialized for them, with no test per tap.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix < width`, and `out`
    /// writable for four f32.
    #[inline(always)]
    unsafe fn edge<const S: usize, const CLAMP: bool>(
        &self,
        ox: usize,
        pad_left: usize,
        width: usize,
        out: *mut f32,
    ) {
        let start = ox * S;
        // Taps off the left edge, and off the right one.
        let left = pad_left.saturating_sub(start);
        let right = (start + K).saturating_sub(pad_left + width);
        if left + right < K {
            // SAFETY: the window's taps `left .. K - right` are columns inside the image.
            unsafe {
                let x0 = start + left - pad_left;
                match (left, right) {
                    (1, 0) => return self.span::<1, 0, CLAMP>(x0, out),
                    (2, 0) => return self.span::<2, 0, CLAMP>(x0, out),
                    (0, 1) => return self.span::<0, 1, CLAMP>(x0, out),
                    (0, 2) => return self.span::<0, 2, CLAMP>(x0, out),
                    (1, 1) => return self.span::<1, 1, CLAMP>(x0, out),
                    (2, 2) => return self.span::<2, 2, CLAMP>(x0, out),
                    _ => {}
                }
            }
        }
        let mut acc = self.b;
        for (r, w) in self.rows.iter().zip(&self.w) {
            for (kx, wv) in w.iter().enumerate() {
                if let Some(ix) = (start + kx).checked_sub(pad_left).filter(|&ix| ix < width) {
                    // SAFETY: column `ix < width` of this row.
                    acc = acc.mul_add(unsafe { V::load(r.add(ix * self.c)) }, *wv);
                }
            }
        }
        // SAFETY: the caller's.
        unsafe { self.finish::<CLAMP>(acc).store(out) };
    }

    /// One output point from taps `L .. K - R` of each filter row, tap `L` at input column
    /// `x0`.
    ///
    /// # Safety
    /// Every row must be readable at `(x0 + j) * c .. (x0 + j) * c + 4` for `j < K - R - L`,
    /// and `out` writable for four f32.
    #[inline(always)]
    unsafe fn span<const L: usize, const R: usize, const CLAMP: bool>(
        &self,
        x0: usize,
        out: *mut f32,
    ) {
        let c = self.c;
        let mut acc = self.b;
        for (r, w) in self.rows.iter().zip(&self.w) {
            for (j, wv) in w[L..K - R].iter().enumerate() {
                // SAFETY: column `x0 + j` of this row, inside the image (the caller's).
                acc = acc.mul_add(unsafe { V::load(r.add((x0 + j) * c)) }, *wv);
            }
        }
        // SAFETY: the caller's.
        unsafe { self.finish::<CLAMP>(acc).store(out) };
    }

    /// `count` output columns whose windows are inside the image, the first one's starting at
    /// input column `x0`, `N` points at a time: each input column of the points' window is
    /// loaded once and feeds every point whose filter covers it.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix` up to
    /// `x0 + (count - 1) * S + K - 1`, and `out` writable at `j * c .. j * c + 4` for `j` below
    /// `count`.
    #[inline(always)]
    unsafe fn inner<const S: usize, const N: usize, const CLAMP: bool>(
        &self,
        x0: usize,
        mut out: *mut f32,
        count: usize,
    ) {
        let c = self.c;
        let mut rows = self.rows.map(|r| r.wrapping_add(x0 * c));
        let mut left = count;
        while left >= N {
            let mut acc = [self.b; N];
            for (r, w) in rows.iter().zip(&self.w) {
                for col in 0..(N - 1) * S + K {
                    // SAFETY: column `col` from this step's first, inside the window.
                    let x = unsafe { V::load(r.add(col * c)) };
                    for (j, a) in acc.iter_mut().enumerate() {
                        let kx = col.wrapping_sub(j * S);
                        if kx < K {
                            *a = a.mul_add(x, w[kx]);
                        }
                    }
                }
            }
            for (j, a) in acc.iter().enumerate() {
                // SAFETY: point `j` of this step is below `count`.
                unsafe { self.finish::<CLAMP>(*a).store(out.add(j * c)) };
            }
            for r in rows.iter_mut() {
                *r = r.wrapping_add(N * S * c);
            }
            out = out.wrapping_add(N * c);
            left -= N;
        }
        while left > 0 {
            let mut acc = self.b;
            for (r, w) in rows.iter().zip(&self.w) {
                for (kx, wv) in w.iter().enumerate() {
                    // SAFETY: column `kx` from this point's first, inside the window.
                    acc = acc.mul_add(unsafe { V::load(r.add(kx * c)) }, *wv);
                }
            }
            // SAFETY: this point is below `count`.
            unsafe { self.finish::<CLAMP>(acc).store(out) };
            for r in rows.iter_mut() {
                *r = r.wrapping_add(S * c);
            }
            out = out.wrapping_add(c);
            left -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, element by element, from the unpadded input.
    fn reference(
        g: &Geometry,
        c: usize,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        clamp: Option<(f32, f32)>,
    ) -> Vec<f32> {
        let n = x.len() / (g.h * g.w * c);
        let mut out = vec![0f32; n * g.oh * g.ow * c];
        for i in 0..n {
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    for ch in 0..c {
                        let mut sum = b[ch];
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.s + ky) as isize - g.pad_top as isize;
                                let ix = (ox * g.s + kx) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = ((i * g.h + iy as usize) * g.w + ix as usize) * c + ch;
                                sum += w[(ky * g.k + kx) * c + ch] * x[xi];
                            }
                        }
                        if let Some((lo, hi)) = clamp {
                            sum = sum.max(lo).min(hi);
                        }
                        out[((i * g.oh + oy) * g.ow + ox) * c + ch] = sum;
                    }
                }
            }
        }
        out
    }

    fn geometry(
        h: usize,
        w: usize,
        k: usize,
        s: usize,
        pads: (usize, usize, usize, usize),
    ) -> Geometry {
        let (pt, pb, pl, pr) = pads;
        Geometry {
            k,
            s,
            pad_top: pt,
            pad_left: pl,
            h,
            w,
            oh: (h + pt + pb - k) / s + 1,
            ow: (w + pl + pr - k) / s + 1,
        }
    }

    fn check(g: Geometry, c: usize, n: usize, clamp: Option<(f32, f32)>) {
        let x: Vec<f32> = (0..n * g.h * g.w * c)
            .map(|i| (i as f32 * 0.137).sin() * 4.0)
            .collect();
        let w: Vec<f32> = (0..g.k * g.k * c)
            .map(|i| (i as f32 * 0.091).cos() * 0.8)
            .collect();
        let b: Vec<f32> = (0..c).map(|i| i as f32 * 0.05 - 0.7).collect();
        let want = reference(&g, c, &x, &w, &b, clamp);
        let mut got = vec![f32::NAN; want.len()];
        let packed = pack_weights(g.k, c, &w).unwrap();
        run(&g, c, &x, &packed, &b, clamp, &mut got).unwrap();
        for (i, (a, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{g:?} c={c} at {i}: {a} vs {e}"
            );
        }
    }

    #[test]
    fn matches_the_definition() {
        let relu6 = Some((0.0, 6.0));
        for (k, s, pads) in [
            (3, 1, (1, 1, 1, 1)),
            (3, 2, (0, 1, 0, 1)),
            (3, 2, (1, 1, 1, 1)),
            (5, 1, (2, 2, 2, 2)),
            (5, 2, (1, 2, 1, 2)),
            (5, 2, (2, 2, 2, 2)),
            (3, 1, (0, 0, 0, 0)),
        ] {
            for (h, w) in [(1, 1), (2, 3), (7, 7), (14, 9), (17, 16)] {
                if h + pads.0 + pads.1 < k || w + pads.2 + pads.3 < k {
                    continue;
                }
                let g = geometry(h, w, k, s, pads);
                for c in [4, 8, 20, 12] {
                    check(g, c, 1, relu6);
                    check(g, c, 1, None);
                }
            }
        }
        check(geometry(9, 9, 3, 1, (1, 1, 1, 1)), 12, 3, relu6);
    }

    #[test]
    fn large_images() {
        check(
            geometry(40, 60, 5, 2, (1, 2, 1, 2)),
            128,
            1,
            Some((0.0, 6.0)),
        );
        check(
            geometry(60, 60, 3, 1, (1, 1, 1, 1)),
            96,
            1,
            Some((-1.0, 1.0)),
        );
    }

    #[test]
    fn threads_split_rows_alike() {
        let pool = tract_linalg::multithread::Executor::multithread(3);
        tract_linalg::multithread::multithread_tract_scope(pool, || {
            check(
                geometry(56, 56, 3, 1, (1, 1, 1, 1)),
                48,
                1,
                Some((0.0, 6.0)),
            );
            check(
                geometry(28, 28, 5, 2, (1, 2, 1, 2)),
                36,
                1,
                Some((0.0, 6.0)),
            );
        });
    }

    /// tract's own `DepthWiseConv` + ReLU6 against the substituted graph, on the same input.
    fn against_tract(h: usize, w: usize, c: usize, k: usize, s: usize) {
        use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
        use tract_onnx::tract_core::ops::nn::DataFormat;
        let x: Vec<f32> = (0..h * w * c)
            .map(|i| (i as f32 * 0.37).sin() * 5.0)
            .collect();
        let kernel: Vec<f32> = (0..c * k * k)
            .map(|i| (i as f32 * 0.191).cos() * 0.6)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.03 - 0.4).collect();
        let mut model = TypedModel::default();
        let xv = model.add_source("x", f32::fact([1, h, w, c])).unwrap();
        let kv = model
            .add_const("k", tensor1(&kernel).into_shape(&[c, 1, k, k]).unwrap())
            .unwrap();
        let bv = model.add_const("b", tensor1(&bias)).unwrap();
        let pool_spec = PoolSpec {
            data_format: DataFormat::NHWC,
            kernel_shape: tvec!(k, k),
            padding: PaddingSpec::SameUpper,
            dilations: None,
            strides: Some(tvec!(s, s)),
            input_channels: c,
            output_channels: c,
        };
        let conv = Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        };
        let y = model.wire_node("dw", conv, &[xv, kv, bv]).unwrap();
        let zero = model.add_const("zero", tensor0(0f32)).unwrap();
        let six = model.add_const("six", tensor0(6f32)).unwrap();
        use tract_onnx::tract_core::ops::change_axes::wire_with_rank_broadcast;
        let y = wire_with_rank_broadcast(
            "max",
            &mut model,
            tract_onnx::tract_core::ops::math::max(),
            &[y[0], zero],
        )
        .unwrap();
        let y = wire_with_rank_broadcast(
            "min",
            &mut model,
            tract_onnx::tract_core::ops::math::min(),
            &[y[0], six],
        )
        .unwrap();
        model.select_output_outlets(&y).unwrap();
        let typed = model.into_decluttered().unwrap();
        let convs = record(&typed);
        assert_eq!(convs.len(), 1, "{convs:?}");
        let tract_plan = typed
            .clone()
            .into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap();
        let mut ours = typed.into_optimized().unwrap();
        assert_eq!(substitute(&mut ours, &convs).unwrap(), 1);
        let names: Vec<String> = ours
            .nodes()
            .iter()
            .map(|n| n.op().name().to_string())
            .collect();
        assert!(
            names.iter().any(|n| n == "ProjectDepthwiseClamp"),
            "{names:?}"
        );
        assert!(
            !names
                .iter()
                .any(|n| n == "DepthWiseConv" || n.starts_with("OptBinChain")),
            "{names:?}"
        );
        let ours = ours.into_runnable().unwrap();
        let input = tensor1(&x).into_shape(&[1, h, w, c]).unwrap();
        let want = tract_plan.run(tvec!(input.clone().into_tvalue())).unwrap();
        let got = ours.run(tvec!(input.into_tvalue())).unwrap();
        let (want, got) = (
            want[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap(),
            got[0]
                .try_as_plain_ram()
                .unwrap()
                .as_slice::<f32>()
                .unwrap(),
        );
        assert_eq!(want.len(), got.len());
        let worst = want
            .iter()
            .zip(got)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(worst <= 1e-5, "k={k} s={s} {h}x{w}x{c}: max |diff| {worst}");
    }

    #[test]
    fn matches_tracts_depthwise_and_relu6() {
        against_tract(12, 12, 16, 3, 1);
        against_tract(13, 12, 24, 3, 2);
        against_tract(9, 9, 32, 5, 1);
        against_tract(14, 14, 20, 5, 2);
    }
}
