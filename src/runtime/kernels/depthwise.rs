//! A depthwise convolution (3x3 or 5x5, stride 1 or 2, channel-last f32) with the clamp that
//! follows it (ReLU6) applied before the store, in place of tract's `DepthWiseConv` and its
//! `OptBinChain(Max+Min)` pass.
//!
//! For each block of four channels the filter's taps stay in vector registers while a row of
//! output points is computed, four points at a time: every input column the block loads feeds
//! each of those points it reaches (with stride 1, a 3x3 filter loads 18 input vectors for four
//! points, 36 multiply-adds, where tract loads 36 plus the 36 weights, 36 tap indices and 36
//! offsets; a 5x5 one 40 for 100). A step's loads address each column as one row register plus
//! one column-offset register shared by all rows, so even a 5x5 filter's 25 taps, four sums
//! and the clamp fit in the 32 vector registers with nothing spilled. The input is read where
//! it lies: filter rows above or below the image are skipped (a path per count of them), and
//! the output columns whose window crosses the left or right edge go in one step per edge that
//! reads only the columns inside the image, so no step tests a tap. Output rows are split
//! across tract's executor, as tract splits its own depthwise channels. The one depthwise
//! convolution tract leaves channel-first runs on [`super::planar`].
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
    /// `[N, C, H, W]` rather than `[N, H, W, C]`: the layout tract left this convolution in
    /// (channel-first ones run on [`super::planar`]).
    pub channels_first: bool,
}

impl Geometry {
    /// Whether the kernels below (channel-last) or [`super::planar`] (channel-first) cover it.
    fn supported(&self) -> bool {
        if self.channels_first {
            return super::planar::covers(self);
        }
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
        channels_first: !spec.data_format.c_is_last(),
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
    // Channel-last, as tract lays most depthwise convolutions out on aarch64: [N, H, W, C],
    // or [H, W, C] once the batch axis is gone; or channel-first, [N, C, H, W] or [C, H, W].
    let (batch, h, w, c) = match (g.channels_first, xs) {
        (false, &[n, h, w, c]) | (true, &[n, c, h, w]) => (Some(n), h, w, c),
        (false, &[h, w, c]) | (true, &[c, h, w]) => (None, h, w, c),
        _ => return Ok(Err(format!("input shape {xs:?}"))),
    };
    let n = batch.unwrap_or(1);
    let mut out_shape: TVec<usize> = match g.channels_first {
        false => tvec!(g.oh, g.ow, c),
        true => tvec!(c, g.oh, g.ow),
    };
    if let Some(n) = batch {
        out_shape.insert(0, n);
    }
    if x_fact.datum_type != f32::datum_type()
        || out_fact.datum_type != f32::datum_type()
        || (h, w) != (g.h, g.w)
        || os != &*out_shape
        || (!g.channels_first && c % 4 != 0)
    {
        return Ok(Err(format!("input {xs:?}, output {os:?}, recorded {g:?}")));
    }
    let (Some(kernel), Some(bias)) = (
        const_value(model, *kernel, 4)?,
        const_value(model, *bias, 4)?,
    ) else {
        return Ok(Err("kernel or bias not constant".into()));
    };
    // tract's channel-last kernel is [1, taps, C], tap-major (row by row), channel inner; its
    // channel-first one [C, 1, taps], channel by channel.
    let channel_axis = match g.channels_first {
        false => kernel.shape().last(),
        true => kernel.shape().first(),
    };
    if kernel.datum_type() != f32::datum_type()
        || channel_axis != Some(&c)
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
    let kernel = kernel.try_as_plain_ram()?.as_slice::<f32>()?;
    let weights: Arc<[f32]> = match g.channels_first {
        false => pack_weights(g.k, c, kernel)?.into(),
        true => kernel.into(),
    };
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
/// `[N, OH, OW, C]`, the weights (packed by [`pack_weights`]) and the bias held by the operator;
/// or, for a channel-first geometry, `[N, C, H, W]` to `[N, C, OH, OW]` with tract's weights
/// (`[C, taps]`) on [`super::planar`].
#[derive(Debug, Clone)]
pub(crate) struct DepthwiseClamp {
    g: Geometry,
    n: usize,
    c: usize,
    /// `[N, OH, OW, C]` (channel-first: `[N, C, OH, OW]`), without `N` when tract dropped the
    /// batch axis.
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
        let kernel = match g.channels_first {
            false => run,
            true => super::planar::run,
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
pub(super) trait Lanes: Copy + Send + Sync {
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
    /// `load(base + offset bytes)`, the address formed by the load instruction itself (base
    /// plus offset register), so no address is kept per offset.
    ///
    /// # Safety
    /// As [`Lanes::load`], at that address.
    unsafe fn load_at(base: *const f32, offset: usize) -> Self;
    /// `store(base + offset bytes)`, the address formed by the store.
    ///
    /// # Safety
    /// As [`Lanes::store`], at that address.
    unsafe fn store_at(self, base: *mut f32, offset: usize);
    /// `[0, a0, a1, a2]`: the lanes moved up one, a zero shifted in at the bottom.
    fn shift_in_low(self) -> Self;
    /// `[a1, a2, a3, 0]`: the lanes moved down one, a zero shifted in at the top.
    fn shift_in_high(self) -> Self;
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
    #[inline(always)]
    unsafe fn load_at(base: *const f32, offset: usize) -> Self {
        let v: Self;
        // SAFETY: the caller guarantees four readable f32 at `base + offset` bytes; `ldr q` has
        // no alignment need and reads nothing else.
        unsafe {
            std::arch::asm!(
                "ldr {v:q}, [{base}, {offset}]",
                v = out(vreg) v,
                base = in(reg) base,
                offset = in(reg) offset,
                options(pure, readonly, nostack, preserves_flags),
            );
        }
        v
    }
    #[inline(always)]
    unsafe fn store_at(self, base: *mut f32, offset: usize) {
        // SAFETY: the caller guarantees four writable f32 at `base + offset` bytes; `str q`
        // has no alignment need and writes nothing else.
        unsafe {
            std::arch::asm!(
                "str {v:q}, [{base}, {offset}]",
                v = in(vreg) self,
                base = in(reg) base,
                offset = in(reg) offset,
                options(nostack, preserves_flags),
            );
        }
    }
    #[inline(always)]
    fn shift_in_low(self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vextq_f32::<3>(std::arch::aarch64::vdupq_n_f32(0.0), self) }
    }
    #[inline(always)]
    fn shift_in_high(self) -> Self {
        // SAFETY: NEON is part of the aarch64 baseline.
        unsafe { std::arch::aarch64::vextq_f32::<1>(self, std::arch::aarch64::vdupq_n_f32(0.0)) }
    }
}

/// The portable lanes, for other architectures.
#[derive(Clone, Copy)]
#[cfg_attr(target_arch = "aarch64", allow(dead_code))]
pub(super) struct Portable([f32; 4]);

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
    #[inline(always)]
    unsafe fn load_at(base: *const f32, offset: usize) -> Self {
        // SAFETY: the caller's (`base` itself may lie outside the buffer).
        unsafe { Self::load(base.wrapping_byte_add(offset)) }
    }
    #[inline(always)]
    unsafe fn store_at(self, base: *mut f32, offset: usize) {
        // SAFETY: the caller's.
        unsafe { self.store(base.wrapping_byte_add(offset)) }
    }
    #[inline(always)]
    fn shift_in_low(self) -> Self {
        let a = self.0;
        Portable([0.0, a[0], a[1], a[2]])
    }
    #[inline(always)]
    fn shift_in_high(self) -> Self {
        let a = self.0;
        Portable([a[1], a[2], a[3], 0.0])
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
                (5, 1, Some((lo, hi))) => band.run::<V, 5, 1, 4, true>(out, lo, hi),
                (5, 2, Some((lo, hi))) => band.run::<V, 5, 2, 4, true>(out, lo, hi),
                (3, 1, None) => band.run::<V, 3, 1, 4, false>(out, 0.0, 0.0),
                (3, 2, None) => band.run::<V, 3, 2, 4, false>(out, 0.0, 0.0),
                (5, 1, None) => band.run::<V, 5, 1, 4, false>(out, 0.0, 0.0),
                (5, 2, None) => band.run::<V, 5, 2, 4, false>(out, 0.0, 0.0),
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
    /// Reads the input where it lies (`[H, W, C]`). Filter rows above or below the image are
    /// skipped (for the usual one or two, by a path specialized for them; otherwise they read
    /// a shared row of zeros), and the output columns whose window crosses the left or right
    /// edge go in one step per edge that loads only the columns inside the image. For each
    /// output row and block of four channels, the block's taps are loaded into registers once
    /// and serve the whole row.
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
        let columns = Columns::new(g);
        // A row of zeros stands for the padding rows, when this band reads any.
        let reads_padding = self.oy0 * S < g.pad_top || (self.oy1 - 1) * S + K > g.h + g.pad_top;
        let zeros = zeros(if reads_padding { g.w * c } else { 0 });
        let x = self.input.as_ptr();
        let row = Row {
            band: self,
            columns: &columns,
            // Byte offsets of a step's columns from its first, and of its points' outputs from
            // the first's: one register each, used by every row. Hidden from the optimizer,
            // which otherwise keeps an address per row and column (30 for a 5x5 filter two
            // points at a time) and spills them.
            offsets: std::array::from_fn(|col| opaque(col * c * 4)),
            lo: V::splat(lo),
            hi: V::splat(hi),
        };
        for oy in self.oy0..self.oy1 {
            let rows: [*const f32; K] = std::array::from_fn(|ky| {
                match (oy * S + ky).checked_sub(g.pad_top) {
                    // SAFETY: row `iy < h` of the image.
                    Some(iy) if iy < g.h => unsafe { x.add(iy * g.w * c) },
                    _ => zeros.as_ptr(),
                }
            });
            // SAFETY: output row `oy < oh`.
            let out = unsafe { out.add(oy * g.ow * c) };
            // Filter rows above and below the image.
            let top = g.pad_top.saturating_sub(oy * S);
            let bottom = (oy * S + K).saturating_sub(g.pad_top + g.h);
            // SAFETY: the rows are image rows or zeros, `w * c` long; the output row `ow * c`.
            unsafe {
                match (top, bottom) {
                    (0, 0) => row.run::<K, S, N, CLAMP, 0, 0>(&rows, out),
                    (1, 0) => row.run::<K, S, N, CLAMP, 1, 0>(&rows, out),
                    (2, 0) => row.run::<K, S, N, CLAMP, 2, 0>(&rows, out),
                    (0, 1) => row.run::<K, S, N, CLAMP, 0, 1>(&rows, out),
                    (0, 2) => row.run::<K, S, N, CLAMP, 0, 2>(&rows, out),
                    // Padding rows read as zeros (small images).
                    _ => row.run::<K, S, N, CLAMP, 0, 0>(&rows, out),
                }
            }
        }
    }
}

/// How an output row's columns split, from the geometry: `inner.0 .. inner.1` have windows
/// inside the image; those before cross the left edge, those after the right one.
struct Columns {
    inner: (usize, usize),
    pad_left: usize,
    w: usize,
    ow: usize,
    /// The points before `inner.0` can go in one step: their window crosses only the left
    /// edge.
    left_step: bool,
    /// How many columns of the window of the points after `inner.1` lie beyond the right edge,
    /// when they can go in one step (their window starts inside the image).
    right_step: Option<usize>,
}

impl Columns {
    fn new(g: &Geometry) -> Columns {
        let (k, s) = (g.k, g.s);
        let first = g.pad_left.div_ceil(s).min(g.ow);
        let end = match (g.w + g.pad_left).checked_sub(k) {
            Some(span) => (span / s + 1).min(g.ow),
            None => 0,
        };
        let inner = (first, end.max(first));
        let left_step = first > 0 && (first - 1) * s + k <= g.w + g.pad_left;
        let right_step = (inner.1 < g.ow && inner.1 * s >= g.pad_left)
            .then(|| ((g.ow - 1) * s + k).saturating_sub(g.pad_left + g.w));
        Columns {
            inner,
            pad_left: g.pad_left,
            w: g.w,
            ow: g.ow,
            left_step,
            right_step,
        }
    }
}

/// What every output row of a band shares: the column split, the step offsets and the clamp.
struct Row<'a, V> {
    band: &'a Band<'a>,
    columns: &'a Columns,
    offsets: [usize; MAX_COLUMNS],
    lo: V,
    hi: V,
}

impl<V: Lanes> Row<'_, V> {
    /// One output row, block by block of four channels, with filter rows `TOP .. K - BOTTOM`
    /// (the others are above or below the image).
    ///
    /// # Safety
    /// As [`Band::run`]; `rows` are the filter rows' input rows (image rows or zeros, `w * c`
    /// long), `out` the output row, `ow * c` long.
    #[inline(always)]
    unsafe fn run<
        const K: usize,
        const S: usize,
        const N: usize,
        const CLAMP: bool,
        const TOP: usize,
        const BOTTOM: usize,
    >(
        &self,
        rows: &[*const f32; K],
        out: *mut f32,
    ) {
        let (band, cols) = (self.band, self.columns);
        let c = band.c;
        for cb in 0..c / 4 {
            // SAFETY: block `cb` of the packed weights: K * K taps of 4 from `cb * K * K * 4`;
            // `cb * 4 + 4 <= c == bias.len()`; rows and output are `w` and `ow` points of `c`
            // channels, of which this block reads and writes `cb * 4 .. cb * 4 + 4`.
            unsafe {
                let wb = band.packed.as_ptr().add(cb * K * K * 4);
                let block = Block::<V, K, TOP, BOTTOM> {
                    rows: rows.map(|r| r.add(cb * 4)),
                    c,
                    w: std::array::from_fn(|ky| {
                        std::array::from_fn(|kx| V::load(wb.add((ky * K + kx) * 4)))
                    }),
                    b: V::load(band.bias.as_ptr().add(cb * 4)),
                    lo: self.lo,
                    hi: self.hi,
                };
                let out = out.add(cb * 4);
                block.left::<S, CLAMP>(cols, &self.offsets, out);
                block.right::<S, CLAMP>(cols, &self.offsets, out);
                if cols.inner.1 > cols.inner.0 {
                    block.inner::<S, N, CLAMP>(
                        cols.inner.0 * S - cols.pad_left,
                        &self.offsets,
                        out.add(cols.inner.0 * c),
                        cols.inner.1 - cols.inner.0,
                    );
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
pub(super) fn zeros(len: usize) -> std::borrow::Cow<'static, [f32]> {
    static SHARED: std::sync::OnceLock<Box<[f32]>> = std::sync::OnceLock::new();
    if len <= SHARED_ZEROS {
        std::borrow::Cow::Borrowed(&SHARED.get_or_init(|| vec![0f32; SHARED_ZEROS].into())[..len])
    } else {
        std::borrow::Cow::Owned(vec![0f32; len])
    }
}

/// One output row's block of four channels: the filter rows' input rows (offset to the
/// block's channels), the taps and bias in registers, and the clamp. Filter rows
/// `TOP .. K - BOTTOM` are read; the others lie above or below the image.
struct Block<V, const K: usize, const TOP: usize, const BOTTOM: usize> {
    rows: [*const f32; K],
    c: usize,
    w: [[V; K]; K],
    b: V,
    lo: V,
    hi: V,
}

impl<V: Lanes, const K: usize, const TOP: usize, const BOTTOM: usize> Block<V, K, TOP, BOTTOM> {
    #[inline(always)]
    fn finish<const CLAMP: bool>(&self, acc: V) -> V {
        if CLAMP {
            acc.clamp(self.lo, self.hi)
        } else {
            acc
        }
    }

    /// The rows moved by `cols` columns (negative: left of the image, never read there).
    #[inline(always)]
    fn shifted(&self, cols: isize) -> [*const f32; K] {
        self.rows.map(|r| r.wrapping_offset(cols * self.c as isize))
    }

    /// The output points before `cols.inner.0`, whose window crosses the left edge: in one
    /// step that reads only the columns inside the image for the usual cases (one or two
    /// points, one or two columns of padding), else point by point.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix < w`, and `out` writable at
    /// `j * c .. j * c + 4` for `j < ow`; `offsets[i]` must be `i * c * 4`.
    #[inline(always)]
    unsafe fn left<const S: usize, const CLAMP: bool>(
        &self,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        // The step's window starts `pad_left` columns left of the image.
        let rows = self.shifted(-(cols.pad_left as isize));
        // SAFETY: the step's points are `0 .. inner.0`; its window's columns from `pad_left` on
        // are inside the image (`left_step`).
        unsafe {
            match (cols.inner.0, cols.pad_left, cols.left_step) {
                (0, _, _) => {}
                (1, 1, true) => self.step::<S, 1, CLAMP, 1, 0>(&rows, offsets, out),
                (1, 2, true) => self.step::<S, 1, CLAMP, 2, 0>(&rows, offsets, out),
                (2, 2, true) => self.step::<S, 2, CLAMP, 2, 0>(&rows, offsets, out),
                _ => {
                    for ox in 0..cols.inner.0 {
                        self.edge::<S, CLAMP>(ox, cols, offsets, out.add(ox * self.c));
                    }
                }
            }
        }
    }

    /// The output points from `cols.inner.1` on, whose window crosses the right edge: as
    /// [`Block::left`].
    ///
    /// # Safety
    /// As [`Block::left`].
    #[inline(always)]
    unsafe fn right<const S: usize, const CLAMP: bool>(
        &self,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        let first = cols.inner.1;
        let x0 = (first * S) as isize - cols.pad_left as isize;
        let rows = self.shifted(x0);
        // SAFETY: the step's points are `inner.1 .. ow`, its window starts at column `x0 >= 0`
        // and all but its last `skip` columns are inside the image (`right_step`).
        unsafe {
            let out_first = out.add(first * self.c);
            match (cols.ow - first, cols.right_step) {
                (0, _) => {}
                (1, Some(1)) => self.step::<S, 1, CLAMP, 0, 1>(&rows, offsets, out_first),
                (1, Some(2)) => self.step::<S, 1, CLAMP, 0, 2>(&rows, offsets, out_first),
                (2, Some(2)) => self.step::<S, 2, CLAMP, 0, 2>(&rows, offsets, out_first),
                _ => {
                    for ox in first..cols.ow {
                        self.edge::<S, CLAMP>(ox, cols, offsets, out.add(ox * self.c));
                    }
                }
            }
        }
    }

    /// Output column `ox`, whose window crosses the image's left or right edge: taps outside
    /// the image are skipped. The usual cases (up to two taps off either side, as 3x3 and 5x5
    /// padding gives) take a step specialized for them, with no test per tap.
    ///
    /// # Safety
    /// As [`Block::left`], with `out` writable for four f32.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn edge<const S: usize, const CLAMP: bool>(
        &self,
        ox: usize,
        cols: &Columns,
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        let start = ox * S;
        // Taps off the left edge, and off the right one.
        let left = cols.pad_left.saturating_sub(start);
        let right = (start + K).saturating_sub(cols.pad_left + cols.w);
        let rows = self.shifted(start as isize - cols.pad_left as isize);
        if left + right < K {
            // SAFETY: the window's taps `left .. K - right` are columns inside the image.
            unsafe {
                match (left, right) {
                    (1, 0) => return self.step::<S, 1, CLAMP, 1, 0>(&rows, offsets, out),
                    (2, 0) => return self.step::<S, 1, CLAMP, 2, 0>(&rows, offsets, out),
                    (0, 1) => return self.step::<S, 1, CLAMP, 0, 1>(&rows, offsets, out),
                    (0, 2) => return self.step::<S, 1, CLAMP, 0, 2>(&rows, offsets, out),
                    (1, 1) => return self.step::<S, 1, CLAMP, 1, 1>(&rows, offsets, out),
                    (2, 2) => return self.step::<S, 1, CLAMP, 2, 2>(&rows, offsets, out),
                    _ => {}
                }
            }
        }
        let mut acc = self.b;
        for ky in TOP..K - BOTTOM {
            for kx in 0..K {
                if let Some(ix) = (start + kx)
                    .checked_sub(cols.pad_left)
                    .filter(|&ix| ix < cols.w)
                {
                    // SAFETY: column `ix < w` of this row.
                    let x = unsafe { V::load(self.rows[ky].add(ix * self.c)) };
                    acc = acc.mul_add(x, self.w[ky][kx]);
                }
            }
        }
        // SAFETY: the caller's.
        unsafe { self.finish::<CLAMP>(acc).store(out) };
    }

    /// `count` output columns whose windows are inside the image, the first one's starting at
    /// input column `x0`, `N` points at a time (the last few in one shorter step): each input
    /// column of a step's window is loaded once and feeds every point whose filter covers it.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `ix` up to
    /// `x0 + (count - 1) * S + K - 1`, `out` writable at `j * c .. j * c + 4` for `j` below
    /// `count`, and `offsets[i]` be `i * c * 4`.
    #[inline(always)]
    unsafe fn inner<const S: usize, const N: usize, const CLAMP: bool>(
        &self,
        x0: usize,
        offsets: &[usize; MAX_COLUMNS],
        mut out: *mut f32,
        count: usize,
    ) {
        let c = self.c;
        let mut rows = self.rows.map(|r| r.wrapping_add(x0 * c));
        let mut left = count;
        // SAFETY (every step): its points are below `count` (the caller's bounds).
        unsafe {
            while left >= N {
                self.step::<S, N, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, N, c);
                left -= N;
            }
            if N > 3 && left >= 3 {
                self.step::<S, 3, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 3, c);
                left -= 3;
            }
            if N > 2 && left >= 2 {
                self.step::<S, 2, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 2, c);
                left -= 2;
            }
            while left > 0 {
                self.step::<S, 1, CLAMP, 0, 0>(&rows, offsets, out);
                (rows, out) = Self::advance::<S>(rows, out, 1, c);
                left -= 1;
            }
        }
    }

    /// The rows and output moved on by `points` output points.
    #[inline(always)]
    fn advance<const S: usize>(
        rows: [*const f32; K],
        out: *mut f32,
        points: usize,
        c: usize,
    ) -> ([*const f32; K], *mut f32) {
        (
            rows.map(|r| r.wrapping_add(points * S * c)),
            out.wrapping_add(points * c),
        )
    }

    /// `M` adjacent output points, the first one's window starting at `rows` (its column 0),
    /// into `out` (the first point's output). The window's first `SKIP_L` and last `SKIP_R`
    /// columns lie outside the image: they are neither read nor multiplied.
    ///
    /// # Safety
    /// Every row must be readable at `ix * c .. ix * c + 4` for `SKIP_L <= ix < (M - 1) * S +
    /// K - SKIP_R`, `out` writable at `j * c .. j * c + 4` for `j < M`, and `offsets[i]` be
    /// `i * c * 4`.
    #[inline(always)]
    #[allow(clippy::needless_range_loop)]
    unsafe fn step<
        const S: usize,
        const M: usize,
        const CLAMP: bool,
        const SKIP_L: usize,
        const SKIP_R: usize,
    >(
        &self,
        rows: &[*const f32; K],
        offsets: &[usize; MAX_COLUMNS],
        out: *mut f32,
    ) {
        // Index loops over constant ranges: the optimizer unrolls them whole, so every tap
        // stays in a register (an iterator chain with `skip` was left as a loop, which put the
        // taps in memory and reloaded one per multiply-add).
        let mut acc = [self.b; M];
        for ky in TOP..K - BOTTOM {
            let (r, w) = (rows[ky], &self.w[ky]);
            for col in SKIP_L..(M - 1) * S + K - SKIP_R {
                // SAFETY: a column of this step's window inside the image (the caller's).
                let x = unsafe { V::load_at(r, offsets[col]) };
                for j in 0..M {
                    let kx = col.wrapping_sub(j * S);
                    if kx < K {
                        acc[j] = acc[j].mul_add(x, w[kx]);
                    }
                }
            }
        }
        for j in 0..M {
            // SAFETY: one of this step's points (the caller's).
            unsafe { self.finish::<CLAMP>(acc[j]).store_at(out, offsets[j]) };
        }
    }
}

/// Most columns one step of [`Block::inner`] reads: four points of a 5x5 filter at stride 2.
const MAX_COLUMNS: usize = 11;

/// `x`, through an empty `asm!` on aarch64, so that the optimizer keeps the value in a register
/// rather than folding it into the addresses derived from it.
#[cfg(target_arch = "aarch64")]
#[inline(always)]
fn opaque(mut x: usize) -> usize {
    // SAFETY: an empty instruction sequence that leaves its register as it was.
    unsafe {
        std::arch::asm!("/* {0} */", inout(reg) x, options(pure, nomem, nostack, preserves_flags));
    }
    x
}

/// `x` (elsewhere the portable lanes take their addresses as they come).
#[cfg(not(target_arch = "aarch64"))]
#[inline(always)]
fn opaque(x: usize) -> usize {
    x
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Where an element sits: channel-last (input `[N, H, W, C]`, weights `[k, k, C]`, this
    /// module's) or channel-first (`[N, C, H, W]`, weights `[C, k, k]`, `planar`'s).
    #[derive(Debug, Clone, Copy)]
    pub(in crate::runtime::kernels) enum Layout {
        ChannelLast,
        ChannelFirst,
    }

    impl Layout {
        /// The index of image `i`, channel `ch` of `c`, row `y` of `h`, column `x` of `w`.
        fn at(
            self,
            i: usize,
            ch: usize,
            y: usize,
            x: usize,
            (c, h, w): (usize, usize, usize),
        ) -> usize {
            match self {
                Layout::ChannelLast => ((i * h + y) * w + x) * c + ch,
                Layout::ChannelFirst => ((i * c + ch) * h + y) * w + x,
            }
        }
    }

    /// The definition, element by element, from the unpadded input.
    pub(in crate::runtime::kernels) fn reference(
        g: &Geometry,
        c: usize,
        x: &[f32],
        w: &[f32],
        b: &[f32],
        clamp: Option<(f32, f32)>,
        layout: Layout,
    ) -> Vec<f32> {
        let n = x.len() / (g.h * g.w * c);
        let mut out = vec![0f32; n * g.oh * g.ow * c];
        for i in 0..n {
            for ch in 0..c {
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let mut sum = b[ch];
                        for ky in 0..g.k {
                            for kx in 0..g.k {
                                let iy = (oy * g.s + ky) as isize - g.pad_top as isize;
                                let ix = (ox * g.s + kx) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xi = layout.at(i, ch, iy as usize, ix as usize, (c, g.h, g.w));
                                sum += w[layout.at(0, ch, ky, kx, (c, g.k, g.k))] * x[xi];
                            }
                        }
                        if let Some((lo, hi)) = clamp {
                            sum = sum.max(lo).min(hi);
                        }
                        out[layout.at(i, ch, oy, ox, (c, g.oh, g.ow))] = sum;
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
            channels_first: false,
        }
    }

    /// Deterministic input, weights and bias for `n` images of `c` channels (the same
    /// counts in either layout).
    pub(in crate::runtime::kernels) fn case(
        g: &Geometry,
        c: usize,
        n: usize,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let x = (0..n * g.h * g.w * c)
            .map(|i| (i as f32 * 0.137).sin() * 4.0)
            .collect();
        let w = (0..g.k * g.k * c)
            .map(|i| (i as f32 * 0.091).cos() * 0.8)
            .collect();
        let b = (0..c).map(|i| i as f32 * 0.05 - 0.7).collect();
        (x, w, b)
    }

    /// `got` equals `want` within float rounding, element by element.
    pub(in crate::runtime::kernels) fn assert_matches(
        g: &Geometry,
        c: usize,
        got: &[f32],
        want: &[f32],
    ) {
        for (i, (a, e)) in got.iter().zip(want).enumerate() {
            assert!(
                (a - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{g:?} c={c} at {i}: {a} vs {e}"
            );
        }
    }

    fn check(g: Geometry, c: usize, n: usize, clamp: Option<(f32, f32)>) {
        let (x, w, b) = case(&g, c, n);
        let want = reference(&g, c, &x, &w, &b, clamp, Layout::ChannelLast);
        let mut got = vec![f32::NAN; want.len()];
        let packed = pack_weights(g.k, c, &w).unwrap();
        run(&g, c, &x, &packed, &b, clamp, &mut got).unwrap();
        assert_matches(&g, c, &got, &want);
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

    /// tract's own `DepthWiseConv` + ReLU6 against the substituted graph, on the same input,
    /// channel-last (NHWC) or, straight behind the model's input as EfficientNet's first one
    /// is behind the stem, where tract keeps it, channel-first (NCHW).
    fn against_tract(h: usize, w: usize, c: usize, k: usize, s: usize, nchw: bool) {
        use tract_onnx::tract_core::ops::cnn::{KernelFormat, PaddingSpec, PoolSpec};
        use tract_onnx::tract_core::ops::nn::DataFormat;
        let x: Vec<f32> = (0..h * w * c)
            .map(|i| (i as f32 * 0.37).sin() * 5.0)
            .collect();
        let kernel: Vec<f32> = (0..c * k * k)
            .map(|i| (i as f32 * 0.191).cos() * 0.6)
            .collect();
        let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.03 - 0.4).collect();
        let shape = if nchw { [1, c, h, w] } else { [1, h, w, c] };
        let mut model = TypedModel::default();
        let xv = model.add_source("x", f32::fact(shape)).unwrap();
        let kv = model
            .add_const("k", tensor1(&kernel).into_shape(&[c, 1, k, k]).unwrap())
            .unwrap();
        let bv = model.add_const("b", tensor1(&bias)).unwrap();
        let pool_spec = PoolSpec {
            data_format: if nchw {
                DataFormat::NCHW
            } else {
                DataFormat::NHWC
            },
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
        assert!(
            convs.values().all(|g| g.channels_first == nchw),
            "{convs:?}"
        );
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
        let input = tensor1(&x).into_shape(&shape).unwrap();
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

    /// EfficientNet-Lite0's depthwise convolutions in order (input side, channels, kernel,
    /// stride, padding before and after), the first channel-first and the others channel-last.
    const LITE0: [(usize, usize, usize, usize, usize, usize); 12] = [
        (112, 32, 3, 1, 1, 1),
        (112, 96, 3, 2, 0, 1),
        (56, 144, 3, 1, 1, 1),
        (56, 144, 5, 2, 1, 2),
        (28, 240, 5, 1, 2, 2),
        (28, 240, 3, 2, 0, 1),
        (14, 480, 3, 1, 1, 1),
        (14, 480, 5, 1, 2, 2),
        (14, 672, 5, 1, 2, 2),
        (14, 672, 5, 2, 1, 2),
        (7, 1152, 5, 1, 2, 2),
        (7, 1152, 3, 1, 1, 1),
    ];

    /// One of [`LITE0`]'s convolutions (index `CASCADE_DW_LAYER`) run `CASCADE_DW_REPS` times,
    /// with ReLU6: a workload for per-layer instruction counts, taken as the difference of two
    /// runs at different repetitions under `qemu-aarch64 -cpu cortex-a72` with the counting
    /// plugin (`--ignored --exact --test-threads 1`).
    #[test]
    #[ignore = "a workload for instruction counting, not a check"]
    fn lite0_layer_workload() {
        let var = |name: &str| -> usize {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        };
        let (side, c, k, s, before, after) = LITE0[var("CASCADE_DW_LAYER")];
        let mut g = geometry(side, side, k, s, (before, after, before, after));
        g.channels_first = var("CASCADE_DW_LAYER") == 0;
        let x: Vec<f32> = (0..side * side * c).map(|i| (i % 7) as f32 - 3.0).collect();
        let w: Vec<f32> = (0..k * k * c).map(|i| (i % 5) as f32 * 0.1).collect();
        let b = vec![0.5f32; c];
        let weights = match g.channels_first {
            true => w,
            false => pack_weights(k, c, &w).unwrap(),
        };
        let kernel = match g.channels_first {
            true => super::super::planar::run,
            false => run,
        };
        let mut y = vec![0f32; g.oh * g.ow * c];
        for _ in 0..var("CASCADE_DW_REPS") {
            kernel(&g, c, &x, &weights, &b, Some((0.0, 6.0)), &mut y).unwrap();
        }
        assert!(y.iter().all(|v| (0.0..=6.0).contains(v)));
    }

    #[test]
    fn matches_tracts_depthwise_and_relu6() {
        against_tract(12, 12, 16, 3, 1, false);
        against_tract(13, 12, 24, 3, 2, false);
        against_tract(9, 9, 32, 5, 1, false);
        against_tract(14, 14, 20, 5, 2, false);
        against_tract(12, 12, 16, 3, 1, true);
        against_tract(9, 11, 6, 3, 1, true);
    }
}
