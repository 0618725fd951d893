//! [`FusedOps`] for `Autodiff<B>`: forward passes through the inner backend's fused ops,
//! backward passes written by hand from the saved outputs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::autodiff::NodeId;
use burn::backend::Autodiff;
use burn::tensor::backend::AutodiffBackend;
use burn::tensor::ops::{FloatTensor, IntTensor};
use burn::tensor::TensorMetadata;

use super::recurrence::RecurrenceShape;
use super::{
    AttentionOps, DeviceOps, FusedOps, LinearOps, LossOps, NormOps, OptimizerOps, RecurrenceOps,
    SamplingOps,
};

/// tanh whose backward pass uses the saved output `y` (burn's generic one recomputes tanh).
#[derive(Debug)]
struct Tanh;

impl<B: FusedOps> Backward<B, 1> for Tanh {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let y = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_tanh_backward(y, grad)
        });
    }
}

/// GELU whose backward pass uses the saved input.
#[derive(Debug)]
struct Gelu;

impl<B: FusedOps> Backward<B, 1> for Gelu {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let x = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_gelu_backward(x, grad)
        });
    }
}

/// Causal softmax whose backward pass uses the saved output.
#[derive(Debug)]
struct CausalSoftmax;

impl<B: FusedOps> Backward<B, 1> for CausalSoftmax {
    type State = (FloatTensor<B>, f64);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (y, scale) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_causal_softmax_backward(y, grad, scale)
        });
    }
}

/// The running mean over positions, whose backward pass needs only the length.
#[derive(Debug)]
struct CausalMean;

impl<B: FusedOps> Backward<B, 1> for CausalMean {
    type State = usize;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let t = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_causal_mean_backward(grad, t)
        });
    }
}

/// Hands each tracked parent its gradient (the others' are dropped).
fn register<B: FusedOps, const N: usize>(
    parents: impl IntoIterator<Item = Option<NodeId>>,
    gradients: [FloatTensor<B>; N],
    grads: &mut Gradients,
) {
    for (parent, g) in parents.into_iter().zip(gradients) {
        if let Some(parent) = parent {
            grads.register::<B>(parent, g);
        }
    }
}

/// Cross-entropy whose backward pass is `softmax − onehot` from the saved probabilities.
#[derive(Debug)]
struct CrossEntropy;

impl<B: FusedOps> Backward<B, 1> for CrossEntropy {
    /// The softmax probabilities and the targets.
    type State = (FloatTensor<B>, IntTensor<B>);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (probs, targets) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_cross_entropy_backward(probs, targets, grad)
        });
    }
}

/// A linear layer (and tanh) whose backward pass is three matrix products and a column sum.
#[derive(Debug)]
struct Linear;

impl<B: FusedOps> Backward<B, 3> for Linear {
    /// The input, the weight, and the output when the layer ends in tanh.
    type State = (FloatTensor<B>, FloatTensor<B>, Option<FloatTensor<B>>);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, w, y) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let gradients = B::fused_linear_backward(x, w, y, grad);
        register::<B, 3>(ops.parents.map(|p| p.map(|p| p.id)), gradients, grads);
    }
}

/// Embedding lookup whose backward pass adds each gradient row to the row it was read from.
#[derive(Debug)]
struct Embedding;

impl<B: FusedOps> Backward<B, 1> for Embedding {
    /// The contexts and the vocabulary size.
    type State = (IntTensor<B>, usize);

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (contexts, vocab) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_embedding_backward(contexts, grad, vocab)
        });
    }
}

/// LayerNorm and tanh whose backward pass works from the saved normalised rows, their
/// inverse deviations and the output.
#[derive(Debug)]
struct LayerNormTanh;

impl<B: FusedOps> Backward<B, 3> for LayerNormTanh {
    /// `x̂`, `1 / √(var + ε)`, `γ` and the output.
    type State = [FloatTensor<B>; 4];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_hat, rstd, gamma, y] = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let gradients = B::fused_layer_norm_tanh_backward(x_hat, rstd, gamma, y, grad);
        register::<B, 3>(ops.parents.map(|p| p.map(|p| p.id)), gradients, grads);
    }
}

/// Attention whose backward pass works from the saved weights.
#[derive(Debug)]
struct Attention;

impl<B: FusedOps> Backward<B, 1> for Attention {
    /// `qkv`, the weights, the dropout mask, the batch and the heads.
    type State = (
        FloatTensor<B>,
        FloatTensor<B>,
        Option<FloatTensor<B>>,
        usize,
        usize,
    );

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (qkv, probs, mask, batch, n_head) = ops.state;
        unary::<B, _>(ops.parents, ops.node, grads, |grad| {
            B::fused_attention_backward(qkv, probs, mask, grad, batch, n_head)
        });
    }
}

/// LayerNorm (no tanh) whose backward pass works from the saved normalised rows and their
/// inverse deviations.
#[derive(Debug)]
struct LayerNorm;

impl<B: FusedOps> Backward<B, 3> for LayerNorm {
    /// `x̂`, `1 / √(var + ε)` and `γ`.
    type State = [FloatTensor<B>; 3];

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [x_hat, rstd, gamma] = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let gradients = B::fused_layer_norm_backward(x_hat, rstd, gamma, grad);
        register::<B, 3>(ops.parents.map(|p| p.map(|p| p.id)), gradients, grads);
    }
}

/// A whole recurrence whose backward pass runs back through the positions from the saved
/// states and gates.
#[derive(Debug)]
struct Recurrence;

impl<B: FusedOps> Backward<B, 4> for Recurrence {
    /// The shape, `x`, `start`, `w`, the hidden states and the gates.
    type State = (
        RecurrenceShape,
        [FloatTensor<B>; 3],
        FloatTensor<B>,
        FloatTensor<B>,
    );

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (shape, [x, start, w], hidden, gates) = ops.state;
        let grad = grads.consume::<B>(&ops.node);
        let gradients = B::fused_recurrence_backward(shape, x, start, w, hidden, gates, grad);
        register::<B, 4>(ops.parents.map(|p| p.map(|p| p.id)), gradients, grads);
    }
}

impl<B: FusedOps, C: CheckpointStrategy> DeviceOps for Autodiff<B, C> {
    fn is_accelerator() -> bool {
        B::is_accelerator()
    }
}

impl<B: FusedOps, C: CheckpointStrategy> LinearOps for Autodiff<B, C> {
    fn fused_embedding(table: FloatTensor<Self>, contexts: IntTensor<Self>) -> FloatTensor<Self> {
        match Embedding
            .prepare::<C>([table.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let vocab = table.primitive.shape()[0];
                let out = B::fused_embedding(table.primitive, contexts.clone());
                prep.finish((contexts, vocab), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_embedding(table.primitive, contexts)),
        }
    }

    fn fused_linear(
        x: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
        tanh: bool,
    ) -> FloatTensor<Self> {
        match Linear
            .prepare::<C>([x.node.clone(), w.node.clone(), b.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let out =
                    B::fused_linear(x.primitive.clone(), w.primitive.clone(), b.primitive, tanh);
                let y = tanh.then(|| out.clone());
                prep.finish((x.primitive, w.primitive, y), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_linear(x.primitive, w.primitive, b.primitive, tanh))
            }
        }
    }

    fn fused_tanh(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match Tanh
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::fused_tanh(x.primitive);
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_tanh(x.primitive)),
        }
    }

    fn fused_gelu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match Gelu
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::fused_gelu(x.primitive.clone());
                prep.finish(x.primitive, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_gelu(x.primitive)),
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> NormOps for Autodiff<B, C> {
    fn fused_layer_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
        let [y, x_hat, rstd] = B::fused_layer_norm(
            x.primitive,
            gamma.primitive.clone(),
            beta.primitive,
            epsilon,
        );
        let constant = <Self as AutodiffBackend>::from_inner;
        match LayerNorm.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = [x_hat.clone(), rstd.clone(), gamma.primitive];
                [prep.finish(state, y), constant(x_hat), constant(rstd)]
            }
            OpsKind::UnTracked(prep) => [prep.finish(y), constant(x_hat), constant(rstd)],
        }
    }

    fn fused_layer_norm_tanh(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> [FloatTensor<Self>; 3] {
        let nodes = [x.node.clone(), gamma.node.clone(), beta.node.clone()];
        let [y, x_hat, rstd] = B::fused_layer_norm_tanh(
            x.primitive,
            gamma.primitive.clone(),
            beta.primitive,
            epsilon,
        );
        // The saved rows leave the graph as constants: only `y` has a backward pass.
        let constant = <Self as AutodiffBackend>::from_inner;
        match LayerNormTanh.prepare::<C>(nodes).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let state = [x_hat.clone(), rstd.clone(), gamma.primitive, y.clone()];
                [prep.finish(state, y), constant(x_hat), constant(rstd)]
            }
            OpsKind::UnTracked(prep) => [prep.finish(y), constant(x_hat), constant(rstd)],
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> AttentionOps for Autodiff<B, C> {
    fn fused_attention(
        qkv: FloatTensor<Self>,
        batch: usize,
        n_head: usize,
        mask: Option<FloatTensor<Self>>,
    ) -> [FloatTensor<Self>; 2] {
        // The mask is a constant: only `qkv` has a gradient.
        let mask = mask.map(|m| m.primitive);
        let [y, probs] = B::fused_attention(qkv.primitive.clone(), batch, n_head, mask.clone());
        let constant = <Self as AutodiffBackend>::from_inner;
        match Attention
            .prepare::<C>([qkv.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let state = (qkv.primitive, probs.clone(), mask, batch, n_head);
                [prep.finish(state, y), constant(probs)]
            }
            OpsKind::UnTracked(prep) => [prep.finish(y), constant(probs)],
        }
    }

    fn fused_causal_softmax(x: FloatTensor<Self>, scale: f64) -> FloatTensor<Self> {
        match CausalSoftmax
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = B::fused_causal_softmax(x.primitive, scale);
                prep.finish((y.clone(), scale), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::fused_causal_softmax(x.primitive, scale)),
        }
    }

    fn fused_causal_mean(x: FloatTensor<Self>, t: usize) -> FloatTensor<Self> {
        match CausalMean
            .prepare::<C>([x.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => prep.finish(t, B::fused_causal_mean(x.primitive, t)),
            OpsKind::UnTracked(prep) => prep.finish(B::fused_causal_mean(x.primitive, t)),
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> RecurrenceOps for Autodiff<B, C> {
    fn fused_recurrence(
        shape: RecurrenceShape,
        x: FloatTensor<Self>,
        start: FloatTensor<Self>,
        w: FloatTensor<Self>,
        b: FloatTensor<Self>,
    ) -> Option<[FloatTensor<Self>; 2]> {
        let nodes = [
            x.node.clone(),
            start.node.clone(),
            w.node.clone(),
            b.node.clone(),
        ];
        let [hidden, gates] = B::fused_recurrence(
            shape,
            x.primitive.clone(),
            start.primitive.clone(),
            w.primitive.clone(),
            b.primitive,
        )?;
        let constant = <Self as AutodiffBackend>::from_inner;
        Some(
            match Recurrence.prepare::<C>(nodes).compute_bound().stateful() {
                OpsKind::Tracked(prep) => {
                    let inputs = [x.primitive, start.primitive, w.primitive];
                    let state = (shape, inputs, hidden.clone(), gates.clone());
                    [prep.finish(state, hidden), constant(gates)]
                }
                OpsKind::UnTracked(prep) => [prep.finish(hidden), constant(gates)],
            },
        )
    }
}

impl<B: FusedOps, C: CheckpointStrategy> LossOps for Autodiff<B, C> {
    fn fused_cross_entropy(
        logits: FloatTensor<Self>,
        targets: IntTensor<Self>,
    ) -> FloatTensor<Self> {
        match CrossEntropy
            .prepare::<C>([logits.node.clone()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, probs) =
                    B::fused_cross_entropy_forward(logits.primitive, targets.clone());
                prep.finish((probs, targets), loss)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::fused_cross_entropy(logits.primitive, targets))
            }
        }
    }
}

impl<B: FusedOps, C: CheckpointStrategy> OptimizerOps for Autodiff<B, C> {}

impl<B: FusedOps, C: CheckpointStrategy> SamplingOps for Autodiff<B, C> {
    fn fused_dropout_mask(
        shape: burn::tensor::Shape,
        key: [u32; 8],
        start: u64,
        keep: f64,
        device: &burn::tensor::Device<Self>,
    ) -> FloatTensor<Self> {
        // A constant: the inner backend's, outside the graph.
        <Self as AutodiffBackend>::from_inner(B::fused_dropout_mask(
            shape, key, start, keep, device,
        ))
    }

    fn fused_categorical(probs: FloatTensor<Self>, u: FloatTensor<Self>) -> IntTensor<Self> {
        // A draw has no gradient: the inner backend's.
        B::fused_categorical(probs.primitive, u.primitive)
    }
}
