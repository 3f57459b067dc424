//! Device selection: `cpu`, `cuda`, `cuda:N` or `auto`.

use anyhow::{bail, Result};
use tch::Device;

/// What the user asked for, before checking what the machine has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceRequest {
    /// CUDA device 0 when one exists, else the CPU.
    Auto,
    Cpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceRequest {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        let t = s.trim().to_ascii_lowercase();
        match t.as_str() {
            "auto" => return Ok(Self::Auto),
            "cpu" => return Ok(Self::Cpu),
            "cuda" | "gpu" => return Ok(Self::Cuda(0)),
            _ => {}
        }
        if let Some(n) = t.strip_prefix("cuda:") {
            if let Ok(i) = n.parse::<usize>() {
                return Ok(Self::Cuda(i));
            }
        }
        bail!("unknown device {s:?}: expected auto, cpu, cuda or cuda:N (N = 0, 1, ...)")
    }
}

impl std::fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Auto => write!(f, "auto"),
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

/// A resolved device, plus a note for the user when `auto` had to fall back.
#[derive(Debug)]
pub struct Resolved {
    pub device: Device,
    pub note: Option<String>,
}

/// Resolves a request against the CUDA devices libtorch can see.
pub fn resolve(req: DeviceRequest) -> Result<Resolved> {
    resolve_with(req, tch::Cuda::device_count().max(0) as usize)
}

/// Like [`resolve`], with the number of visible CUDA devices given (for tests).
pub fn resolve_with(req: DeviceRequest, cuda_devices: usize) -> Result<Resolved> {
    match req {
        DeviceRequest::Cpu => Ok(Resolved { device: Device::Cpu, note: None }),
        DeviceRequest::Auto if cuda_devices > 0 => {
            Ok(Resolved { device: Device::Cuda(0), note: None })
        }
        DeviceRequest::Auto => Ok(Resolved {
            device: Device::Cpu,
            note: Some("no CUDA device found; running on the CPU".into()),
        }),
        DeviceRequest::Cuda(i) if cuda_devices == 0 => bail!(
            "device cuda:{i} requested but libtorch sees no CUDA device \
             (use --device cpu or --device auto)"
        ),
        DeviceRequest::Cuda(i) if i >= cuda_devices => bail!(
            "device cuda:{i} requested but only {cuda_devices} CUDA device(s) exist \
             (cuda:0 to cuda:{})",
            cuda_devices - 1
        ),
        DeviceRequest::Cuda(i) => Ok(Resolved { device: Device::Cuda(i), note: None }),
    }
}

/// Waits until the device has finished the work queued so far (for timings); on
/// the CPU, where work is synchronous, it does nothing.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling() {
        assert_eq!("auto".parse::<DeviceRequest>().unwrap(), DeviceRequest::Auto);
        assert_eq!("CPU".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cpu);
        assert_eq!("cuda".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cuda(0));
        assert_eq!("cuda:3".parse::<DeviceRequest>().unwrap(), DeviceRequest::Cuda(3));
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in ["", "cuda:", "cuda:-1", "cuda:x", "tpu", "cuda:1:2", "mps"] {
            let err = bad.parse::<DeviceRequest>().unwrap_err().to_string();
            assert!(err.contains("unknown device"), "{bad:?} gave {err}");
        }
    }

    #[test]
    fn cuda_without_gpu_is_an_error_and_auto_falls_back() {
        let err = resolve_with(DeviceRequest::Cuda(0), 0).unwrap_err().to_string();
        assert!(err.contains("no CUDA device"), "{err}");
        let err = resolve_with(DeviceRequest::Cuda(2), 1).unwrap_err().to_string();
        assert!(err.contains("only 1 CUDA device"), "{err}");
        let r = resolve_with(DeviceRequest::Auto, 0).unwrap();
        assert_eq!(r.device, Device::Cpu);
        assert!(r.note.is_some());
        assert_eq!(resolve_with(DeviceRequest::Auto, 2).unwrap().device, Device::Cuda(0));
        assert_eq!(resolve_with(DeviceRequest::Cuda(1), 2).unwrap().device, Device::Cuda(1));
    }

    #[test]
    fn this_machine_resolves_consistently() {
        // Whatever the machine has, auto never errors and cuda errors exactly when
        // libtorch sees no device.
        assert!(resolve(DeviceRequest::Auto).is_ok());
        assert_eq!(resolve(DeviceRequest::Cuda(0)).is_ok(), tch::Cuda::device_count() > 0);
    }
}
