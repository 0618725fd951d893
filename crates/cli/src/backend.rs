//! The one place that picks a burn backend. Everything below is generic.

use anyhow::Result;
use clap::ValueEnum;
use makemore_model::FusedAutodiff;

/// Backends this tool knows; which ones are usable depends on the cargo features it was
/// built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    /// CPU through ndarray (feature `ndarray`, the default).
    Ndarray,
    /// GPU through wgpu (feature `wgpu`).
    Wgpu,
}

impl Default for BackendChoice {
    fn default() -> Self {
        if cfg!(feature = "ndarray") {
            BackendChoice::Ndarray
        } else {
            BackendChoice::Wgpu
        }
    }
}

/// Work that runs on any autodiff backend; [`dispatch`] calls it with the chosen one.
pub trait WithBackend {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`.
    fn run<B: FusedAutodiff>(self, device: B::Device) -> Result<Self::Output>;
}

/// Runs `work` on the chosen backend, or says that this build lacks it.
pub fn dispatch<W: WithBackend>(choice: BackendChoice, work: W) -> Result<W::Output> {
    match choice {
        BackendChoice::Ndarray => {
            #[cfg(feature = "ndarray")]
            {
                use burn::backend::{ndarray::NdArrayDevice, Autodiff, NdArray};
                work.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu)
            }
            #[cfg(not(feature = "ndarray"))]
            {
                let _ = work;
                anyhow::bail!("this makemore was built without the ndarray backend; rebuild with `--features ndarray`")
            }
        }
        BackendChoice::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::{wgpu::WgpuDevice, Autodiff, Wgpu};
                work.run::<Autodiff<Wgpu>>(WgpuDevice::default())
            }
            #[cfg(not(feature = "wgpu"))]
            {
                let _ = work;
                anyhow::bail!("this makemore was built without the wgpu backend; rebuild with `--features wgpu`")
            }
        }
    }
}
