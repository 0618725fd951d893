//! [`FusedOps`] for `Autodiff<B>`: forward passes through the inner backend's fused ops,
//! backward passes written by hand from the saved outputs.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{unary, Backward, Ops, OpsKind};
use burn::backend::Autodiff;
use burn::tensor::ops::{FloatTensor, IntTensor};

use super::FusedOps;

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

impl<B: FusedOps, C: CheckpointStrategy> FusedOps for Autodiff<B, C> {
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
