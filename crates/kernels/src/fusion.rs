//! [`FusedOps`] for burn's fusion backends (`Fusion<B>`, what `burn::backend::Wgpu` and
//! `Cuda` are when burn's default `fusion` feature is on).
//!
//! Fusion records operations lazily and compiles chains of element-wise ones into single
//! kernels. The fused operations that are chains of element-wise burn operations (tanh and
//! its backward, the linear layer's bias and tanh, LayerNorm, GELU, AdamW's update) keep the
//! trait's default bodies here, which fusion then fuses itself. The ones fusion cannot fuse
//! (the row-wise cross-entropy, the embedding gather and scatter, the categorical draw) and
//! the dropout mask (whose default body is computed on the host) are forwarded to the inner
//! backend's kernels: their inputs are resolved to the inner backend's tensors (which runs the
//! operations queued before them, on the device; nothing is read back) and their outputs are
//! registered with fusion as new tensors.

use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::{Shape, TensorMetadata};
use burn_fusion::client::GlobalFusionClient;
use burn_fusion::stream::OperationStreams;
use burn_fusion::{Fusion, FusionBackend, NoOp};
use burn_ir::{InitOperationIr, OperationIr, OperationOutput};

use super::{
    AttentionOps, DeviceOps, FusedOps, LinearOps, LossOps, NormOps, OptimizerOps, RecurrenceOps,
    SamplingOps,
};

type Client<B> = GlobalFusionClient<<B as FusionBackend>::FusionRuntime>;

/// The inner backend's tensor behind a fusion float tensor.
fn inner_float<B: FusionBackend>(t: FloatTensor<Fusion<B>>) -> FloatTensor<B> {
    t.client.clone().resolve_tensor_float::<B>(t)
}

/// The inner backend's tensor behind a fusion int tensor.
fn inner_int<B: FusionBackend>(t: IntTensor<Fusion<B>>) -> IntTensor<B> {
    t.client.clone().resolve_tensor_int::<B>(t)
}

/// An inner backend's float tensor, registered with fusion.
fn outer_float<B: FusionBackend>(client: &Client<B>, t: FloatTensor<B>) -> FloatTensor<Fusion<B>> {
    let (shape, dtype) = (t.shape(), t.dtype());
    let handle = B::float_tensor_handle(t);
    register::<B>(client, shape, dtype, handle)
}

/// An inner backend's int tensor, registered with fusion.
fn outer_int<B: FusionBackend>(client: &Client<B>, t: IntTensor<B>) -> IntTensor<Fusion<B>> {
    let (shape, dtype) = (t.shape(), t.dtype());
    let handle = B::int_tensor_handle(t);
    register::<B>(client, shape, dtype, handle)
}

/// What burn-fusion's own `float_from_data` does with a tensor made by the inner backend.
fn register<B: FusionBackend>(
    client: &Client<B>,
    shape: Shape,
    dtype: burn::tensor::DType,
    handle: B::Handle,
) -> burn_fusion::FusionTensor<B::FusionRuntime> {
    let desc = InitOperationIr::create(shape, dtype, || client.register_tensor_handle(handle));
    client
        .register(
            OperationStreams::default(),
            OperationIr::Init(desc),
            NoOp::<B>::new(),
        )
        .output()
}

impl<B: FusedOps + FusionBackend> DeviceOps for Fusion<B> {
    fn is_accelerator() -> bool {
        B::is_accelerator()
    }
}

impl<B: FusedOps + FusionBackend> LinearOps for Fusion<B> {
    fn fused_embedding(table: FloatTensor<Self>, contexts: IntTensor<Self>) -> FloatTensor<Self> {
        let client = table.client.clone();
        let out = B::fused_embedding(inner_float::<B>(table), inner_int::<B>(contexts));
        outer_float::<B>(&client, out)
    }

    fn fused_embedding_backward(
        contexts: IntTensor<Self>,
        grad: FloatTensor<Self>,
        vocab: usize,
    ) -> FloatTensor<Self> {
        let client = grad.client.clone();
        let out =
            B::fused_embedding_backward(inner_int::<B>(contexts), inner_float::<B>(grad), vocab);
        outer_float::<B>(&client, out)
    }
}

impl<B: FusedOps + FusionBackend> NormOps for Fusion<B> {}

impl<B: FusedOps + FusionBackend> AttentionOps for Fusion<B> {}

impl<B: FusedOps + FusionBackend> RecurrenceOps for Fusion<B> {}

impl<B: FusedOps + FusionBackend> LossOps for Fusion<B> {
    fn fused_cross_entropy_forward(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        let client = logits.client.clone();
        let (loss, saved) =
            B::fused_cross_entropy_forward(inner_float::<B>(logits), inner_int::<B>(targets));
        (
            outer_float::<B>(&client, loss),
            outer_float::<B>(&client, saved),
        )
    }

    fn fused_cross_entropy_backward(
        saved: FloatTensor<Self>,
        targets: IntTensor<Self>,
        grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        let client = saved.client.clone();
        let out = B::fused_cross_entropy_backward(
            inner_float::<B>(saved),
            inner_int::<B>(targets),
            inner_float::<B>(grad),
        );
        outer_float::<B>(&client, out)
    }
}

impl<B: FusedOps + FusionBackend> OptimizerOps for Fusion<B> {}

impl<B: FusedOps + FusionBackend> SamplingOps for Fusion<B> {
    fn fused_dropout_mask(
        shape: Shape,
        key: [u32; 8],
        start: u64,
        keep: f64,
        device: &burn::tensor::Device<Self>,
    ) -> FloatTensor<Self> {
        let client = burn_fusion::get_client::<B>(device);
        outer_float::<B>(
            &client,
            B::fused_dropout_mask(shape, key, start, keep, device),
        )
    }

    fn fused_categorical(probs: FloatTensor<Self>, u: FloatTensor<Self>) -> IntTensor<Self> {
        let client = probs.client.clone();
        let out = B::fused_categorical(inner_float::<B>(probs), inner_float::<B>(u));
        outer_int::<B>(&client, out)
    }
}
