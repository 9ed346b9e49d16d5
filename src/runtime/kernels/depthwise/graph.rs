//! Finding the depthwise convolutions of a model and substituting the project's operator.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::binary::OptBinChain;
use tract_onnx::tract_core::ops::cnn::Conv;

use super::op::DepthwiseClamp;
use super::{pack_weights, Geometry};

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
