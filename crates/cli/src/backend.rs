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
    /// GPU through wgpu: Vulkan, Metal or DX12 (feature `wgpu`).
    Wgpu,
    /// NVIDIA GPU through CUDA (feature `cuda`).
    Cuda,
}

impl Default for BackendChoice {
    fn default() -> Self {
        if cfg!(feature = "ndarray") {
            BackendChoice::Ndarray
        } else if cfg!(feature = "wgpu") {
            BackendChoice::Wgpu
        } else {
            BackendChoice::Cuda
        }
    }
}

impl BackendChoice {
    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendChoice::Ndarray => "ndarray",
            BackendChoice::Wgpu => "wgpu",
            BackendChoice::Cuda => "cuda",
        }
    }
}

/// Work that runs on any autodiff backend; [`dispatch`] calls it with the chosen one.
pub trait WithBackend {
    /// What the work returns.
    type Output;
    /// Runs the work on backend `B`, on the device that [`describe`] named.
    fn run<B: FusedAutodiff>(self, device: B::Device, device_name: &str) -> Result<Self::Output>;
}

/// Runs `work` on the chosen backend, or says in one line that this build lacks it or that
/// the machine has no device for it.
pub fn dispatch<W: WithBackend>(choice: BackendChoice, work: W) -> Result<W::Output> {
    let name = describe(choice)?;
    match choice {
        BackendChoice::Ndarray => {
            #[cfg(feature = "ndarray")]
            {
                use burn::backend::{ndarray::NdArrayDevice, Autodiff, NdArray};
                work.run::<Autodiff<NdArray<f32>>>(NdArrayDevice::Cpu, &name)
            }
            #[cfg(not(feature = "ndarray"))]
            {
                let _ = (work, name);
                unreachable!("describe() refuses backends this build lacks")
            }
        }
        BackendChoice::Wgpu => {
            #[cfg(feature = "wgpu")]
            {
                use burn::backend::{wgpu::WgpuDevice, Autodiff, Wgpu};
                work.run::<Autodiff<Wgpu>>(WgpuDevice::default(), &name)
            }
            #[cfg(not(feature = "wgpu"))]
            {
                let _ = (work, name);
                unreachable!("describe() refuses backends this build lacks")
            }
        }
        BackendChoice::Cuda => {
            #[cfg(feature = "cuda")]
            {
                use burn::backend::{cuda::CudaDevice, Autodiff, Cuda};
                work.run::<Autodiff<Cuda>>(CudaDevice::default(), &name)
            }
            #[cfg(not(feature = "cuda"))]
            {
                let _ = (work, name);
                unreachable!("describe() refuses backends this build lacks")
            }
        }
    }
}

/// The device the chosen backend will run on, in words (the GPU adapter's name, or the CPU
/// and its threads). Fails with one line when this build lacks the backend or the machine
/// has no device for it.
pub fn describe(choice: BackendChoice) -> Result<String> {
    match choice {
        BackendChoice::Ndarray => {
            if !cfg!(feature = "ndarray") {
                anyhow::bail!(
                    "this makemore was built without the ndarray backend; rebuild with `--features ndarray`"
                );
            }
            let threads = makemore_model::threads::count();
            let label = if threads == 1 { "thread" } else { "threads" };
            Ok(format!("CPU ({threads} {label})"))
        }
        BackendChoice::Wgpu => wgpu_device(),
        BackendChoice::Cuda => cuda_device(),
    }
}

#[cfg(feature = "wgpu")]
fn wgpu_device() -> Result<String> {
    makemore_model::device::wgpu_adapter().map_err(|e| anyhow::anyhow!("--backend wgpu: {e}"))
}

#[cfg(not(feature = "wgpu"))]
fn wgpu_device() -> Result<String> {
    anyhow::bail!(
        "this makemore was built without the wgpu backend; rebuild with `--features wgpu`"
    )
}

#[cfg(feature = "cuda")]
fn cuda_device() -> Result<String> {
    makemore_model::device::cuda_device().map_err(|e| anyhow::anyhow!("--backend cuda: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn cuda_device() -> Result<String> {
    anyhow::bail!(
        "this makemore was built without the cuda backend; rebuild with `--features cuda`"
    )
}
