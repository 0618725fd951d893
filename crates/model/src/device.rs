//! Is there a device for this backend? Detection that answers with an error instead of the
//! panic burn's GPU runtimes raise when they find no adapter or no driver.
//!
//! Each function returns the device burn will pick, in words (for `makemore bench` and logs).

/// Why a GPU backend has no device on this machine.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// wgpu found no adapter for the platform's graphics API.
    #[error("no {api} adapter found on this machine; install a GPU driver with {api} support (on Linux without a GPU, Mesa's lavapipe: `apt-get install mesa-vulkan-drivers`)")]
    NoWgpuAdapter {
        /// The graphics API wgpu asked (Vulkan on Linux).
        api: String,
    },
    /// libcuda could not be loaded.
    #[error("no CUDA driver (libcuda.so) found; install the NVIDIA driver, or use --backend wgpu or ndarray")]
    NoCudaDriver,
    /// The CUDA driver loaded but reports no GPU.
    #[error("the CUDA driver found no NVIDIA GPU on this machine")]
    NoCudaDevice,
    /// The CUDA driver loaded but failed.
    #[error("the CUDA driver failed to start: {0}")]
    CudaDriver(String),
    /// The driver is there but NVRTC, CUDA's runtime compiler (which compiles the CubeCL
    /// kernels when they are first used), is not.
    #[error("CUDA's runtime compiler NVRTC was not found (tried {tried}); install the CUDA toolkit's libnvrtc or add its directory to LD_LIBRARY_PATH, or use --backend wgpu")]
    NoNvrtc {
        /// The library names looked for, as the CUDA runtime will look for them.
        tried: String,
    },
}

/// The adapter that burn's wgpu backend will use by default: the platform's graphics API
/// (Vulkan on Linux), a discrete GPU before an integrated one before a software one.
#[cfg(feature = "wgpu")]
pub fn wgpu_adapter() -> Result<String, DeviceError> {
    use cubecl::wgpu::{AutoGraphicsApi, GraphicsApi};
    let api = AutoGraphicsApi::backend();
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor {
        backends: api.into(),
        ..wgpu::InstanceDescriptor::new_without_display_handle()
    });
    let adapters = futures_lite::future::block_on(instance.enumerate_adapters(api.into()));
    let rank = |t: wgpu::DeviceType| match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    };
    adapters
        .iter()
        .map(|a| a.get_info())
        .min_by_key(|info| rank(info.device_type))
        .map(|info| {
            format!(
                "{} ({:?}, {:?}, {})",
                info.name, info.backend, info.device_type, info.driver_info
            )
        })
        .ok_or(DeviceError::NoWgpuAdapter {
            api: format!("{api:?}"),
        })
}

/// CUDA device 0, which burn's CUDA backend uses by default.
#[cfg(feature = "cuda")]
pub fn cuda_device() -> Result<String, DeviceError> {
    use cudarc::driver::CudaContext;
    // cudarc loads libcuda at its first call and panics when it is absent: that panic is its
    // only way of saying "no driver", so it is caught here, around that call alone.
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let count = std::panic::catch_unwind(CudaContext::device_count);
    std::panic::set_hook(previous);
    let count = count
        .map_err(|_| DeviceError::NoCudaDriver)?
        .map_err(|e| DeviceError::CudaDriver(e.to_string()))?;
    if count == 0 {
        return Err(DeviceError::NoCudaDevice);
    }
    // The first kernel launch loads libnvrtc, and cudarc panics when it is missing; look for
    // it now, by the names cudarc will try.
    #[allow(unsafe_code)]
    // SAFETY: only loads (and unloads) the library, as cudarc itself would on first use; no
    // symbol of it is called.
    let nvrtc = unsafe { cudarc::nvrtc::sys::is_culib_present() };
    if !nvrtc {
        let mut tried = cudarc::get_lib_name_candidates("nvrtc");
        // The sonames (libnvrtc.so, .so.12, …); the other spellings are for other systems.
        tried.retain(|name| name.starts_with("libnvrtc.so"));
        return Err(DeviceError::NoNvrtc {
            tried: tried.join(", "),
        });
    }
    let name = CudaContext::new(0)
        .and_then(|c| c.name())
        .map_err(|e| DeviceError::CudaDriver(e.to_string()))?;
    Ok(format!("{name} (CUDA device 0 of {count})"))
}
