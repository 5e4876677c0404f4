//! The backend is picked at run time: `--backend flex|wgpu|cuda|tch|tch-cuda`. Burn's modules are
//! not generic over a backend; the [`Device`] decides.

use crate::error::{ExperimentError, Result};
use burn::tensor::{Device, Tensor};
use clap::ValueEnum;

/// A compute backend gatelab can run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Pure-Rust CPU (always built).
    Flex,
    /// wgpu: Vulkan/Metal/DX12 GPUs, or Mesa's lavapipe on a CPU (cargo feature `wgpu`, default).
    Wgpu,
    /// Burn's CUDA backend, CubeCL on CUDA, device `--device-index` (cargo feature `cuda`; needs an
    /// NVIDIA driver at run time, and nothing of CUDA to build: docs/backends.md).
    Cuda,
    /// libtorch CPU (cargo feature `tch`; see scripts/setup-libtorch.sh).
    Tch,
    /// libtorch CUDA device `--device-index` (cargo feature `tch` with a CUDA libtorch).
    TchCuda,
    /// A real GPU through wgpu (discrete, then integrated) if there is one, else flex.
    Auto,
}

impl Backend {
    /// Every backend this binary was built with.
    pub fn compiled() -> Vec<Backend> {
        let mut out = vec![Backend::Flex];
        if cfg!(feature = "wgpu") {
            out.push(Backend::Wgpu);
        }
        if cfg!(feature = "cuda") {
            out.push(Backend::Cuda);
        }
        if cfg!(feature = "tch") {
            out.extend([Backend::Tch, Backend::TchCuda]);
        }
        out.push(Backend::Auto);
        out
    }

    /// The device for this backend (not yet touched; see [`probe`]). burn-tch is deprecated
    /// upstream but part of gatelab's promise, hence the `allow`.
    #[allow(deprecated)]
    pub fn device(self, index: usize) -> Result<Device> {
        match self {
            Backend::Flex | Backend::Auto => Ok(Device::flex()),
            #[cfg(feature = "wgpu")]
            Backend::Wgpu => Ok(if index == 0 {
                Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)
            } else {
                Device::wgpu(burn::tensor::DeviceKind::DiscreteGpu(index))
            }),
            #[cfg(feature = "cuda")]
            Backend::Cuda => Ok(Device::cuda(index)),
            #[cfg(feature = "tch")]
            Backend::Tch => Ok(Device::libtorch()),
            #[cfg(feature = "tch")]
            Backend::TchCuda => Ok(Device::libtorch_cuda(index)),
            #[allow(unreachable_patterns)]
            other => Err(ExperimentError::Backend {
                backend: other.name().into(),
                message: format!(
                    "this gatelab was built without the cargo feature `{}` (GATELAB_FEATURES={0} scripts/gatelab …; docs/backends.md)",
                    other.feature()
                ),
            }),
        }
    }

    /// The cargo feature that builds this backend in (flex and auto: always built).
    pub fn feature(self) -> &'static str {
        match self {
            Backend::Flex | Backend::Auto => "",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
            Backend::Tch | Backend::TchCuda => "tch",
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Flex => "flex",
            Backend::Wgpu => "wgpu",
            Backend::Cuda => "cuda",
            Backend::Tch => "tch",
            Backend::TchCuda => "tch-cuda",
            Backend::Auto => "auto",
        }
    }
}

/// Runs one tiny computation on `device`, turning a backend's panic (no Vulkan adapter, no CUDA)
/// into an error.
pub fn probe(device: &Device) -> Result<()> {
    let device = device.clone();
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(move || {
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        x.sum().into_scalar::<f32>()
    });
    std::panic::set_hook(prev);
    match result {
        Ok(v) if (v - 6.0).abs() < 1e-6 => Ok(()),
        Ok(v) => Err(ExperimentError::Training(format!("computed 1+2+3 = {v}"))),
        Err(e) => Err(ExperimentError::Training(panic_message(e))),
    }
}

/// Whether the NVIDIA driver's library loads: CubeCL's CUDA runtime loads it on first use and
/// panics without it, so `open` asks first and says so in one line.
pub fn nvidia_driver() -> bool {
    #[cfg(unix)]
    {
        // SAFETY: dlopen with a constant, NUL-terminated name; the handle is closed at once.
        unsafe {
            let handle = libc::dlopen(c"libcuda.so.1".as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL);
            if handle.is_null() {
                return false;
            }
            libc::dlclose(handle);
        }
        true
    }
    #[cfg(not(unix))]
    true
}

/// A real GPU through wgpu: discrete GPU `index`, else integrated GPU `index` (lavapipe, a CPU
/// adapter, does not count).
#[cfg(feature = "wgpu")]
fn real_gpu(index: usize) -> Option<Device> {
    use burn::tensor::DeviceKind;
    [DeviceKind::DiscreteGpu(index), DeviceKind::IntegratedGpu(index)]
        .into_iter()
        .map(Device::wgpu)
        .find(|d| probe(d).is_ok())
}

#[cfg(not(feature = "wgpu"))]
fn real_gpu(_index: usize) -> Option<Device> {
    None
}

/// The first sentence of a panic's message. Libraries embed their own traces (libtorch: escaped
/// newlines), so it is cut at the first line break of either kind, and at 240 characters.
pub fn panic_message(e: Box<dyn std::any::Any + Send>) -> String {
    let text = e
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into());
    let first = text.lines().next().unwrap_or_default();
    // A library error unwrapped by Burn reads `called `Result::unwrap()` on an `Err` value:
    // Torch("<libtorch's sentence>…`: keep the sentence.
    let first = first.trim_start_matches("called `Result::unwrap()` on an `Err` value: ");
    let first = first.strip_prefix("Torch(\"").unwrap_or(first);
    first.split("\\n").next().unwrap_or_default().chars().take(240).collect()
}

/// Resolves `--backend` and `--device-index` to a working device, or a one-line reason. `auto`
/// reports what it chose on stderr.
pub fn open(backend: Backend, index: usize) -> Result<Device> {
    if backend == Backend::Auto {
        return Ok(match real_gpu(index) {
            Some(d) => {
                eprintln!("backend auto: wgpu GPU {index}");
                d
            }
            None => {
                eprintln!("backend auto: no GPU found through wgpu; flex");
                Device::flex()
            }
        });
    }
    let device = backend.device(index)?;
    if backend == Backend::Cuda && !nvidia_driver() {
        return Err(ExperimentError::Backend {
            backend: backend.name().into(),
            message: "no NVIDIA driver here (libcuda.so.1 does not load): cuda needs an NVIDIA GPU and its driver"
                .into(),
        });
    }
    probe(&device).map_err(|e| {
        let message = if index > 0 && !matches!(backend, Backend::TchCuda | Backend::Cuda) {
            format!("no device {index} here (--device-index counts the GPUs this backend sees, from 0): {e}")
        } else {
            format!("not usable here: {e}")
        };
        ExperimentError::Backend { backend: backend.name().into(), message }
    })?;
    Ok(device)
}
