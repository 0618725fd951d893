use burn::module::Module;
use burn::nn::{Embedding, LayerNorm, Linear};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::init::NormalStream;
use crate::{fused, FusedOps, InitScheme, Kernels, MlpConfig, NormKind};

/// Embedding → concatenated context → (Linear → [LayerNorm] → tanh → [dropout]) × n_layers
/// → Linear → logits.
///
/// Parameter names (as stored in safetensors): `embedding.weight`, `hidden.{i}.weight`,
/// `hidden.{i}.bias`, `output.weight`, `output.bias`, `direct.weight` when enabled, and
/// `norm.{i}.weight`, `norm.{i}.bias` with LayerNorm.
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
    /// Which tanh and loss kernels [`Mlp::forward`] and [`Mlp::loss`] use (not a parameter).
    #[module(skip)]
    pub kernels: Kernels,
}

/// Dropout during one training step: the probability, and a seed that fixes the masks
/// (so a resumed run draws the same masks as an uninterrupted one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DropoutStep {
    /// Probability of zeroing each hidden unit.
    pub p: f64,
    /// Seed of this step's masks.
    pub seed: u64,
}

impl MlpConfig {
    /// Builds the model with weights drawn from `init_seed` on the host.
    pub fn init<B: Backend>(&self, device: &B::Device) -> Mlp<B> {
        let mut rng = NormalStream::new(self.init_seed);
        let input = self.block_size * self.n_embd;
        let notebook = self.init == InitScheme::Notebook;
        let embedding = rng.embedding(self.vocab_size, self.n_embd, device);
        let mut hidden = Vec::with_capacity(self.n_layers);
        let mut fan_in = input;
        for _ in 0..self.n_layers {
            let (w, b) = if notebook {
                (1.0, 1.0)
            } else {
                ((5.0 / 3.0) / (fan_in as f32).sqrt(), 0.01)
            };
            hidden.push(rng.linear(fan_in, self.n_hidden, w, Some(b), device));
            fan_in = self.n_hidden;
        }
        let (w, b) = if notebook { (1.0, 1.0) } else { (0.01, 0.0) };
        let output = rng.linear(fan_in, self.vocab_size, w, Some(b), device);
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
        let norm = match self.norm {
            NormKind::None => Vec::new(),
            NormKind::Layer => (0..self.n_layers)
                .map(|_| rng.layer_norm(self.n_hidden, device))
                .collect(),
        };
        Mlp {
            embedding,
            hidden,
            output,
            direct,
            norm,
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
        let mut rng = dropout.map(|d| ChaCha8Rng::seed_from_u64(d.seed));
        for (i, layer) in self.hidden.iter().enumerate() {
            h = match self.norm.get(i) {
                None => self.dense(layer, h, true),
                Some(norm) => self.tanh(norm.forward(self.dense(layer, h, false))),
            };
            if let (Some(d), Some(rng)) = (dropout.filter(|d| d.p > 0.0), rng.as_mut()) {
                let [rows, cols] = h.dims();
                let keep = 1.0 - d.p;
                let scale = (1.0 / keep) as f32;
                let mask: Vec<f32> = (0..rows * cols)
                    .map(|_| {
                        if rng.random::<f64>() < keep {
                            scale
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let device = h.device();
                h = h * Tensor::from_data(TensorData::new(mask, [rows, cols]), &device);
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

impl<B: Backend> Mlp<B> {
    /// Embedding table as host values, `[vocab][n_embd]`, for plots.
    pub fn embedding_table(&self) -> Vec<Vec<f32>> {
        let table = self.embedding.weight.val();
        let [_, n_embd] = table.dims();
        let values: Vec<f32> = table
            .into_data()
            .convert::<f32>()
            .to_vec()
            .unwrap_or_default();
        values.chunks(n_embd.max(1)).map(<[f32]>::to_vec).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cross_entropy;
    use burn::backend::NdArray;

    type B = NdArray<f32>;

    #[test]
    fn param_count_matches_config() {
        let device = Default::default();
        for (layers, direct, norm) in [
            (1, false, NormKind::None),
            (2, true, NormKind::Layer),
            (3, false, NormKind::Layer),
        ] {
            let config = MlpConfig::new(27, 4)
                .with_n_layers(layers)
                .with_direct(direct)
                .with_norm(norm);
            assert_eq!(config.init::<B>(&device).num_params(), config.num_params());
        }
    }

    #[test]
    fn same_seed_same_weights_and_scaled_init_starts_near_uniform() {
        let device = Default::default();
        let config = MlpConfig::new(27, 3);
        let a = config.init::<B>(&device).embedding_table();
        let b = config.init::<B>(&device).embedding_table();
        assert_eq!(a, b);
        let model = config.init::<B>(&device);
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
        let model = MlpConfig::new(27, 3)
            .with_norm(NormKind::Layer)
            .init::<B>(&device);
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
    fn config_validation_names_the_field() {
        assert!(MlpConfig::new(27, 3)
            .with_dropout(1.0)
            .validate()
            .unwrap_err()
            .contains("dropout"));
        assert!(MlpConfig::new(27, 0)
            .validate()
            .unwrap_err()
            .contains("block_size"));
        assert!(MlpConfig::new(27, 3)
            .with_n_hidden(0)
            .validate()
            .unwrap_err()
            .contains("n_hidden"));
        assert!(MlpConfig::new(27, 3)
            .with_n_embd(1 << 19)
            .with_n_hidden(1 << 19)
            .validate()
            .is_err());
        assert!(MlpConfig::new(27, 3).validate().is_ok());
    }
}
