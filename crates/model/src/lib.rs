//! The makemore MLP: Bengio et al. (2003) as in Karpathy's "makemore part 2".
//!
//! Each of the `block_size` previous characters is looked up in an embedding table, the
//! embeddings are concatenated, passed through a tanh hidden layer, and a final linear
//! layer gives logits over the vocabulary. The model is a burn [`Module`](burn::module::Module)
//! generic over any [`Backend`](burn::tensor::backend::Backend); only the binary picks one.
//! Initial weights are drawn on the host from a seeded ChaCha generator, so the same
//! config and seed give the same model on every backend.
//!
//! ```
//! use burn::backend::NdArray;
//! use burn::prelude::*;
//! use makemore_model::{InitScheme, ModelConfig};
//!
//! // The notebook's model: 27 characters, 3 of context, 10-d embeddings, 200 hidden.
//! let config = ModelConfig::new(27, 3).with_init(InitScheme::Notebook);
//! let device = Default::default();
//! let model = config.init::<NdArray>(&device);
//! assert_eq!(model.num_params(), 11_897);
//!
//! let contexts = Tensor::<NdArray, 2, Int>::zeros([4, 3], &device);
//! let targets = Tensor::<NdArray, 1, Int>::zeros([4], &device);
//! let logits = model.forward(contexts);
//! assert_eq!(logits.dims(), [4, 27]);
//! let loss = makemore_model::cross_entropy(logits, targets).into_scalar();
//! assert!(loss > 0.0);
//! ```

mod bigram;
mod bow;
mod config;
mod dense;
pub mod device;
pub mod dropout;
mod init;
#[cfg(all(
    debug_assertions,
    not(test),
    any(feature = "ndarray", feature = "wgpu", feature = "cuda")
))]
#[doc(hidden)]
pub mod instances;
mod loss;
mod mlp;
mod model;
mod rnn;
pub mod threads;
mod transformer;

pub use bigram::Bigram;
pub use bow::{Bow, BowBlock, BowMlp};
pub use config::{
    activation_floats, InitScheme, ModelConfig, ModelKind, NormKind, MAX_DIM, MAX_PARAMS,
};
pub use dropout::DropoutStep;
pub use loss::cross_entropy;
/// The fused operations ([`makemore_kernels`]): how each backend computes the models.
pub use makemore_kernels as fused;
pub use makemore_kernels::{
    AdamWStep, AttentionOps, DeviceOps, FusedAutodiff, FusedOps, Kernels, LinearOps, LossOps,
    NormOps, OptimizerOps, RecurrenceOps, SamplingOps,
};
pub use mlp::Mlp;
pub use model::Model;
pub use rnn::{Cell, GruCell, Rnn, RnnCell};
pub use transformer::{Block, BlockMlp, CausalSelfAttention, Transformer, TransformerBody};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
