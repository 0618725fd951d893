use burn::module::Module;
use burn::nn::{BatchNorm, Embedding, LayerNorm, Linear};
use burn::prelude::*;

use crate::dropout::Masks;
use crate::init::NormalStream;
use crate::{fused, DropoutStep, FusedOps, InitScheme, Kernels, ModelConfig, NormKind};

/// Embedding → concatenated context → (Linear → \[LayerNorm | BatchNorm\] → tanh → \[dropout\])
/// × n_layers → Linear → logits.
///
/// In the hierarchical model each hidden layer first views its input as pairs of
/// neighbours (part 5's `FlattenConsecutive(2)`): the `[rows, 8·n_embd]` embeddings become
/// `[4·rows, 2·n_embd]`, the first layer's `[4·rows, n_hidden]` becomes `[2·rows, 2·n_hidden]`,
/// and so on down to `[rows, n_hidden]`. In row-major order that is a reshape, so every layer
/// stays a 2-d matrix product, and BatchNorm's statistics run over the batch and the positions
/// together, as the lecture's fixed `BatchNorm1d` does.
///
/// Parameter names (as stored in safetensors): `embedding.weight`, `hidden.{i}.weight`,
/// `hidden.{i}.bias` (not with BatchNorm), `output.weight`, `output.bias`, `direct.weight`
/// when enabled, `norm.{i}.weight`, `norm.{i}.bias` with LayerNorm, and
/// `batch_norm.{i}.weight`, `.bias`, `.running_mean`, `.running_var` with BatchNorm.
#[derive(Module, Debug)]
pub struct Mlp<B: Backend> {
    /// Character embeddings `[vocab, n_embd]` (the notebook's `C`).
    pub embedding: Embedding<B>,
    /// Hidden layers (the notebook's `W1`, `b1`).
    pub hidden: Vec<Linear<B>>,
    /// Output layer (the notebook's `W2`, `b2`).
    pub output: Linear<B>,
    /// Direct embedding-to-output connections (Bengio et al. 2003), without bias.
    pub direct: Option<Linear<B>>,
    /// One LayerNorm per hidden layer, or none.
    pub norm: Vec<LayerNorm<B>>,
    /// One BatchNorm per hidden layer, or none. It normalises with the batch's statistics
    /// on an autodiff backend (training) and with its running statistics otherwise.
    pub batch_norm: Vec<BatchNorm<B>>,
    /// Which tanh and loss kernels [`Mlp::forward`] and [`Mlp::loss`] use (not a parameter).
    #[module(skip)]
    pub kernels: Kernels,
}

impl ModelConfig {
    /// Builds the MLP of this config (whatever its `kind`) with weights drawn from
    /// `init_seed` on the host; [`ModelConfig::init`] builds the model its kind names.
    pub fn init_mlp<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let input = self.block_size * self.n_embd;
        let notebook = self.init == InitScheme::Notebook;
        let embedding = rng.embedding(self.vocab_size, self.n_embd, device);
        let mut hidden = Vec::with_capacity(self.n_layers);
        for i in 0..self.n_layers {
            let fan_in = self.fan_in(i);
            let (w, b) = if notebook {
                (1.0, 1.0)
            } else {
                ((5.0 / 3.0) / (fan_in as f32).sqrt(), 0.01)
            };
            let b = self.hidden_bias().then_some(b);
            hidden.push(rng.linear(fan_in, self.n_hidden, w, b, device));
        }
        let (w, b) = if notebook { (1.0, 1.0) } else { (0.01, 0.0) };
        let output = rng.linear(self.output_fan_in(), self.vocab_size, w, Some(b), device);
        let direct = self.direct.then(|| {
            rng.linear(
                input,
                self.vocab_size,
                if notebook { 1.0 } else { 0.01 },
                None,
                device,
            )
        });
        // Created last, so configs without norms keep their parameter ids.
        let layers = |kind: NormKind| if self.norm == kind { self.n_layers } else { 0 };
        let norm = (0..layers(NormKind::Layer))
            .map(|_| rng.layer_norm(self.n_hidden, device))
            .collect();
        let batch_norm = (0..layers(NormKind::Batch))
            .map(|_| rng.batch_norm(self.n_hidden, device))
            .collect();
        Mlp {
            embedding,
            hidden,
            output,
            direct,
            norm,
            batch_norm,
            kernels: self.kernels,
        }
    }
}

impl<B: FusedOps> Mlp<B> {
    /// Logits for the next character of each context.
    ///
    /// # Shapes
    /// - `contexts`: `[batch, block_size]` character indices
    /// - returns: `[batch, vocab_size]`
    pub fn forward(&self, contexts: Tensor<B, 2, Int>) -> Tensor<B, 2> {
        self.forward_train(contexts, None)
    }

    /// [`Mlp::forward`] with dropout after each tanh when `dropout` is given (training).
    /// The masks are drawn on the host from `dropout.seed`, the same on every backend.
    pub fn forward_train(
        &self,
        contexts: Tensor<B, 2, Int>,
        dropout: Option<DropoutStep>,
    ) -> Tensor<B, 2> {
        let table = self.embedding.weight.val();
        let emb = match self.kernels {
            Kernels::Fused => fused::embedding(table, contexts),
            Kernels::Plain => {
                // One gather of all context characters, then view as the concatenation.
                let [batch, block] = contexts.dims();
                let [_, n_embd] = table.dims();
                table
                    .select(0, contexts.reshape([batch * block]))
                    .reshape([batch, block * n_embd])
            }
        };
        let mut h = emb.clone();
        let mut masks = Masks::new(dropout);
        for (i, layer) in self.hidden.iter().enumerate() {
            // The hierarchical model's pairs of neighbours; the flat model's rows already
            // have the layer's width.
            let [rows, cols] = h.dims();
            let [fan_in, _] = layer.weight.dims();
            if cols != fan_in {
                h = h.reshape([rows * cols / fan_in, fan_in]);
            }
            h = match (self.norm.get(i), self.batch_norm.get(i)) {
                (Some(norm), _) => self.layer_norm_tanh(norm, self.dense(layer, h, false)),
                (_, Some(norm)) => self.tanh(norm.forward(self.dense(layer, h, false))),
                _ => self.dense(layer, h, true),
            };
            if let Some(masks) = masks.as_mut() {
                h = masks.apply(h);
            }
        }
        let logits = self.dense(&self.output, h, false);
        match &self.direct {
            Some(direct) => logits + direct.forward(emb),
            None => logits,
        }
    }

    /// `layer(x)`, then tanh when `tanh`: one fused operation with fused kernels.
    fn dense(&self, layer: &Linear<B>, x: Tensor<B, 2>, tanh: bool) -> Tensor<B, 2> {
        match (self.kernels, &layer.bias) {
            (Kernels::Fused, Some(bias)) => fused::linear(x, layer.weight.val(), bias.val(), tanh),
            _ if tanh => self.tanh(layer.forward(x)),
            _ => layer.forward(x),
        }
    }

    /// LayerNorm, then tanh, with this model's kernels.
    fn layer_norm_tanh(&self, norm: &LayerNorm<B>, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match (self.kernels, &norm.beta) {
            (Kernels::Fused, Some(beta)) => {
                fused::layer_norm_tanh(x, norm.gamma.val(), beta.val(), LAYER_NORM_EPSILON)
            }
            _ => self.tanh(norm.forward(x)),
        }
    }

    /// tanh with this model's kernels.
    fn tanh(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        match self.kernels {
            Kernels::Plain => x.tanh(),
            Kernels::Fused => fused::tanh(x),
        }
    }

    /// Mean cross-entropy of `logits` against `targets` with this model's kernels.
    ///
    /// # Shapes
    /// - `logits`: `[batch, vocab_size]`
    /// - `targets`: `[batch]`
    /// - returns: `[1]`
    pub fn loss(&self, logits: Tensor<B, 2>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        match self.kernels {
            Kernels::Plain => crate::cross_entropy(logits, targets),
            Kernels::Fused => fused::cross_entropy(logits, targets),
        }
    }
}

/// The ε of every LayerNorm here: burn's default, which `LayerNormConfig::new` gives
/// ([`LayerNorm`] keeps its own copy private).
pub(crate) const LAYER_NORM_EPSILON: f64 = 1e-5;

impl<B: Backend> Mlp<B> {
    /// Folds BatchNorm's latest running-statistics update into the value that is saved and
    /// read at evaluation (burn keeps the latest update aside until it is asked for it).
    /// Checkpoints call it before saving; `valid()` does it by itself.
    pub fn sync_running_stats(&self) {
        for norm in &self.batch_norm {
            norm.running_mean.value_sync();
            norm.running_var.value_sync();
        }
    }

    /// [`crate::activation_floats`] of this model for contexts of `block_size`.
    pub fn activation_floats(&self, block_size: usize) -> u64 {
        let [_, n_embd] = self.embedding.weight.dims();
        let layers = self.hidden.iter().map(|l| {
            let [fan_in, out] = l.weight.dims();
            (fan_in, out)
        });
        let [_, vocab] = self.output.weight.dims();
        crate::activation_floats(block_size * n_embd, layers, vocab)
    }

    /// Embedding table as host values, `[vocab][n_embd]`, for plots; a failed read-back
    /// from the device is an error with its cause.
    pub fn embedding_table(&self) -> Result<Vec<Vec<f32>>, String> {
        let table = self.embedding.weight.val();
        let [_, n_embd] = table.dims();
        let values: Vec<f32> = table
            .try_into_data()
            .map_err(|e| format!("cannot read the embeddings back: {e:?}"))?
            .convert::<f32>()
            .to_vec()
            .map_err(|e| format!("cannot read the embeddings back: {e:?}"))?;
        Ok(values.chunks(n_embd.max(1)).map(<[f32]>::to_vec).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross_entropy;
    use burn::backend::NdArray;
    use makemore_kernels::mask::dropout_mask;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    type B = NdArray<f32>;

    #[test]
    fn param_count_matches_config() {
        let device = Default::default();
        for (block, layers, direct, norm, hierarchical) in [
            (4, 1, false, NormKind::None, false),
            (4, 2, true, NormKind::Layer, false),
            (4, 3, false, NormKind::Layer, false),
            (4, 2, false, NormKind::Batch, false),
            (8, 3, false, NormKind::Batch, true),
            (4, 2, true, NormKind::None, true),
        ] {
            let config = ModelConfig::new(27, block)
                .with_n_layers(layers)
                .with_direct(direct)
                .with_norm(norm)
                .with_hierarchical(hierarchical);
            config.validate().unwrap();
            // burn counts BatchNorm's running mean and variance too; they are not trained.
            let running = if norm == NormKind::Batch {
                2 * layers * 200
            } else {
                0
            };
            assert_eq!(
                config.init_mlp::<B>(&device).num_params(),
                config.num_params() + running
            );
        }
        // makemore part 5's hierarchical model: 76,579 parameters.
        let wavenet = ModelConfig::new(27, 8)
            .with_n_embd(24)
            .with_n_hidden(128)
            .with_n_layers(3)
            .with_norm(NormKind::Batch)
            .with_hierarchical(true);
        assert_eq!(wavenet.num_params(), 76_579);
        let bad = wavenet.clone().with_n_layers(2).validate().unwrap_err();
        assert!(bad.contains("block_size must be 2^n_layers"), "{bad}");
    }

    #[test]
    fn hierarchical_batch_norm_model_runs_and_evaluates_with_running_statistics() {
        use burn::backend::Autodiff;
        use burn::module::AutodiffModule;
        let device = Default::default();
        let config = ModelConfig::new(27, 8)
            .with_n_embd(4)
            .with_n_hidden(16)
            .with_n_layers(3)
            .with_norm(NormKind::Batch)
            .with_hierarchical(true);
        let model = config.init_mlp::<Autodiff<B>>(&device);
        let contexts = Tensor::<Autodiff<B>, 2, Int>::from_data(
            TensorData::new(
                (0..80i64).map(|i| (i * 7) % 27).collect::<Vec<_>>(),
                [10, 8],
            ),
            &device,
        );
        // Fresh running statistics are mean 0, variance 1: evaluation is then the plain
        // affine map, training normalises by the batch: the two differ.
        let before = model.valid().forward(contexts.clone().inner()).into_data();
        let train = model.forward(contexts.clone());
        assert_eq!(train.dims(), [10, 27]);
        let after = model.valid().forward(contexts.inner()).into_data();
        assert_ne!(train.inner().into_data(), before);
        // One training forward moved the running statistics (momentum 0.1).
        assert_ne!(before, after);
        let mean: Vec<f32> = model.valid().batch_norm[0]
            .running_mean
            .value()
            .into_data()
            .to_vec()
            .unwrap();
        assert!(mean.iter().any(|m| *m != 0.0));
    }

    #[test]
    fn same_seed_same_weights_and_scaled_init_starts_near_uniform() {
        let device = Default::default();
        let config = ModelConfig::new(27, 3);
        let a = config.init_mlp::<B>(&device).embedding_table().unwrap();
        let b = config.init_mlp::<B>(&device).embedding_table().unwrap();
        assert_eq!(a, b);
        let model = config.init_mlp::<B>(&device);
        let contexts = Tensor::<B, 2, Int>::from_data(
            TensorData::new(vec![0i64, 1, 2, 3, 4, 5], [2, 3]),
            &device,
        );
        let targets = Tensor::<B, 1, Int>::from_data(TensorData::new(vec![1i64, 2], [2]), &device);
        let loss: f32 = cross_entropy(model.forward(contexts), targets).into_scalar();
        assert!((loss - 27f32.ln()).abs() < 0.1, "initial loss {loss}");
    }

    #[test]
    fn dropout_is_seeded_and_off_by_default() {
        let device = Default::default();
        let model = ModelConfig::new(27, 3)
            .with_norm(NormKind::Layer)
            .init_mlp::<B>(&device);
        let contexts = Tensor::<B, 2, Int>::from_data(
            TensorData::new((0..24i64).map(|i| i % 27).collect::<Vec<_>>(), [8, 3]),
            &device,
        );
        let plain = model.forward(contexts.clone()).into_data();
        let off = model
            .forward_train(contexts.clone(), Some(DropoutStep { p: 0.0, seed: 1 }))
            .into_data();
        assert_eq!(plain, off);
        let a = model
            .forward_train(contexts.clone(), Some(DropoutStep { p: 0.5, seed: 1 }))
            .into_data();
        let b = model
            .forward_train(contexts.clone(), Some(DropoutStep { p: 0.5, seed: 1 }))
            .into_data();
        let c = model
            .forward_train(contexts, Some(DropoutStep { p: 0.5, seed: 2 }))
            .into_data();
        assert_eq!(a, b, "same seed, same masks");
        assert_ne!(a, plain);
        assert_ne!(a, c);
    }

    #[test]
    fn bulk_dropout_masks_are_the_value_at_a_time_masks() {
        use rand::Rng;
        for (seed, keep) in [(1u64, 0.8), (7, 0.5), (2147483647, 0.75)] {
            let mut bulk = ChaCha8Rng::seed_from_u64(seed);
            let mut one = ChaCha8Rng::seed_from_u64(seed);
            // Two masks from one stream, as two layers draw them; sizes not multiples of
            // a ChaCha block.
            // Then two large enough to be drawn in pieces on two threads.
            for n in [1000usize, 777, 70_001, 33_333] {
                let slow: Vec<f32> = (0..n)
                    .map(|_| {
                        if one.random::<f64>() < keep {
                            (1.0 / keep) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(2)
                    .build()
                    .unwrap();
                assert_eq!(pool.install(|| dropout_mask(&mut bulk, n, keep)), slow);
            }
        }
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(ModelConfig::new(27, 3)
            .with_dropout(1.0)
            .validate()
            .unwrap_err()
            .contains("dropout"));
        assert!(ModelConfig::new(27, 0)
            .validate()
            .unwrap_err()
            .contains("block_size"));
        assert!(ModelConfig::new(27, 3)
            .with_n_hidden(0)
            .validate()
            .unwrap_err()
            .contains("n_hidden"));
        assert!(ModelConfig::new(27, 3)
            .with_n_embd(1 << 19)
            .with_n_hidden(1 << 19)
            .validate()
            .is_err());
        assert!(ModelConfig::new(27, 3).validate().is_ok());
    }
}
