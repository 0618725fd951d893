//! Reusing `makemore-data` in another project: its own word list, its own burn model.
//!
//! The data crate gives the vocabulary, a split that matches Python's `random.shuffle`,
//! context windows and seeded minibatches; the model here is a few lines of plain burn (a
//! bigram-like table of logits per previous character), not makemore's.
//!
//! `cargo run --release -p makemore-data --features burn --example own_words` (it also runs
//! with the tests: `cargo test --workspace --all-features`).

use burn::backend::{Autodiff, NdArray};
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::optim::{GradientsParams, Optimizer, SgdConfig};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;
use makemore_data::{parse_words, ContextBatcher, Examples, MinibatchSampler, Split, SplitRatios};
use makemore_vocab::Vocab;

/// The chemical elements: a word list that is not names.
const ELEMENTS: &str =
    "hydrogen helium lithium beryllium boron carbon nitrogen oxygen fluorine neon \
    sodium magnesium aluminium silicon phosphorus sulfur chlorine argon potassium calcium scandium \
    titanium vanadium chromium manganese iron cobalt nickel copper zinc gallium germanium arsenic \
    selenium bromine krypton rubidium strontium yttrium zirconium niobium molybdenum technetium \
    ruthenium rhodium palladium silver cadmium indium tin antimony tellurium iodine xenon caesium \
    barium lanthanum cerium praseodymium neodymium promethium samarium europium gadolinium terbium \
    dysprosium holmium erbium thulium ytterbium lutetium hafnium tantalum tungsten rhenium osmium \
    iridium platinum gold mercury thallium lead bismuth polonium astatine radon francium radium";

/// Logits of the next character from the previous one: one embedding row per character.
#[derive(Module, Debug)]
struct Bigram<B: Backend> {
    table: Embedding<B>,
}

impl<B: Backend> Bigram<B> {
    fn loss(&self, contexts: Tensor<B, 2, Int>, targets: Tensor<B, 1, Int>) -> Tensor<B, 1> {
        let [rows, block] = contexts.dims();
        let previous = contexts.slice([0..rows, block - 1..block]);
        let logits = self.table.forward(previous).reshape([rows as i32, -1]);
        burn::nn::loss::CrossEntropyLossConfig::new()
            .init(&logits.device())
            .forward(logits, targets)
    }
}

fn train<B: AutodiffBackend>(train: &Examples, dev: &Examples, vocab: usize) -> (f32, f32) {
    let device = B::Device::default();
    let mut model = Bigram::<B> {
        table: EmbeddingConfig::new(vocab, vocab).init(&device),
    };
    let mut optim = SgdConfig::new().init();
    let sampler = MinibatchSampler::new(42);
    let eval = |model: &Bigram<B>, ex: &Examples| -> f32 {
        let batch = ContextBatcher::from_flat::<B>(ex.inputs(), ex.targets(), &device);
        model.loss(batch.inputs, batch.targets).into_scalar().elem()
    };
    let first = eval(&model, dev);
    let (mut indices, mut inputs, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for step in 0..300 {
        sampler.fill(step, 64, train.len(), &mut indices);
        train.gather_into(&indices, &mut inputs, &mut targets);
        let batch = ContextBatcher::from_flat::<B>(&inputs, &targets, &device);
        let grads =
            GradientsParams::from_grads(model.loss(batch.inputs, batch.targets).backward(), &model);
        model = optim.step(1.0, model, grads);
    }
    (first, eval(&model, dev))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let words = parse_words(ELEMENTS.replace(' ', "\n").as_bytes(), "elements")?;
    let vocab = Vocab::from_words(&words)?;
    let split = Split::new(words, 42, SplitRatios::default())?;
    let train_ex = Examples::from_words(&split.train, &vocab, 2)?;
    let dev_ex = Examples::from_words(&split.dev, &vocab, 2)?;
    println!(
        "{} words, {} characters, {} train / {} dev examples",
        split.train.len() + split.dev.len() + split.test.len(),
        vocab.len(),
        train_ex.len(),
        dev_ex.len()
    );
    let (before, after) = train::<Autodiff<NdArray>>(&train_ex, &dev_ex, vocab.len());
    println!("dev loss {before:.3} before training, {after:.3} after 300 steps");
    assert!(after < before, "training lowered the dev loss");
    Ok(())
}
