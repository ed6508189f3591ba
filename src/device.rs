//! Device choice (`cpu`, `cuda:N`, `metal:N`) → a Candle device. The CPU is always there; a
//! GPU backend is there only when the crate is built with its feature (`cuda`, `metal`), and
//! choosing one that is not compiled in is an [`Error::DeviceNotCompiled`] naming the feature.
//!
//! On the CPU no choice is needed at build time: on x86-64, vlm's kernels (quantized and BF16
//! matrix products, attention, vector math) check for AVX-512 and AVX2/FMA when they run and
//! fall back to portable code, and Candle's f32 matrix products (the `gemm` crate) do the same;
//! NEON is part of every aarch64 CPU. One binary runs on every CPU of its architecture.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

/// Where a model computes: [`crate::EngineOptions::device`].
///
/// ```
/// use vlm::DeviceChoice;
///
/// assert_eq!("cpu".parse::<DeviceChoice>()?, DeviceChoice::Cpu);
/// assert_eq!("cuda:1".parse::<DeviceChoice>()?, DeviceChoice::Cuda(1));
/// assert_eq!(DeviceChoice::Metal(0).to_string(), "metal:0");
/// assert!("tpu".parse::<DeviceChoice>().is_err());
/// # Ok::<(), vlm::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DeviceChoice {
    /// The CPU (the default).
    #[default]
    Cpu,
    /// The NVIDIA GPU with this ordinal; needs the `cuda` feature.
    Cuda(usize),
    /// The Apple GPU with this ordinal; needs the `metal` feature.
    Metal(usize),
}

impl DeviceChoice {
    /// Opens the device. A GPU whose backend is not compiled in is an
    /// [`Error::DeviceNotCompiled`]; one that is compiled in but cannot be opened (no such
    /// GPU, no driver) is an [`Error::Device`].
    ///
    /// ```
    /// # use vlm::{DeviceChoice, Error};
    /// assert!(DeviceChoice::Cpu.open()?.is_cpu());
    /// # #[cfg(not(feature = "cuda"))]
    /// assert!(matches!(
    ///     DeviceChoice::Cuda(0).open(),
    ///     Err(Error::DeviceNotCompiled { feature: "cuda", .. })
    /// ));
    /// # Ok::<(), vlm::Error>(())
    /// ```
    pub fn open(self) -> Result<candle_core::Device> {
        match self {
            DeviceChoice::Cpu => Ok(candle_core::Device::Cpu),
            DeviceChoice::Cuda(ordinal) => open_cuda(ordinal),
            DeviceChoice::Metal(ordinal) => open_metal(ordinal),
        }
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<candle_core::Device> {
    candle_core::Device::new_cuda(ordinal).map_err(|e| Error::Device {
        device: DeviceChoice::Cuda(ordinal).to_string(),
        problem: e.to_string(),
    })
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(ordinal: usize) -> Result<candle_core::Device> {
    Err(Error::DeviceNotCompiled {
        device: DeviceChoice::Cuda(ordinal).to_string(),
        feature: "cuda",
    })
}

#[cfg(feature = "metal")]
fn open_metal(ordinal: usize) -> Result<candle_core::Device> {
    candle_core::Device::new_metal(ordinal).map_err(|e| Error::Device {
        device: DeviceChoice::Metal(ordinal).to_string(),
        problem: e.to_string(),
    })
}

#[cfg(not(feature = "metal"))]
fn open_metal(ordinal: usize) -> Result<candle_core::Device> {
    Err(Error::DeviceNotCompiled {
        device: DeviceChoice::Metal(ordinal).to_string(),
        feature: "metal",
    })
}

impl fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda(i) => write!(f, "cuda:{i}"),
            DeviceChoice::Metal(i) => write!(f, "metal:{i}"),
        }
    }
}

/// `cpu`, `cuda`, `cuda:N`, `metal` or `metal:N` (the ordinal defaults to 0).
impl FromStr for DeviceChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidOption {
            name: "device",
            reason,
        };
        let (kind, ordinal) = match s.split_once(':') {
            Some((kind, n)) => {
                let n = n
                    .parse::<usize>()
                    .map_err(|_| bad(format!("`{s}`: the ordinal after `:` must be a number")))?;
                (kind, n)
            }
            None => (s, 0),
        };
        match (kind, s.contains(':')) {
            ("cpu", false) => Ok(DeviceChoice::Cpu),
            ("cuda", _) => Ok(DeviceChoice::Cuda(ordinal)),
            ("metal", _) => Ok(DeviceChoice::Metal(ordinal)),
            _ => Err(bad(format!(
                "`{s}` is not a device; use cpu, cuda[:N] or metal[:N]"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for d in [
            DeviceChoice::Cpu,
            DeviceChoice::Cuda(0),
            DeviceChoice::Cuda(3),
            DeviceChoice::Metal(1),
        ] {
            assert_eq!(d.to_string().parse::<DeviceChoice>().unwrap(), d);
        }
        assert_eq!(
            "metal".parse::<DeviceChoice>().unwrap(),
            DeviceChoice::Metal(0)
        );
    }

    #[test]
    fn bad_names_are_option_errors() {
        for s in ["", "gpu", "cpu:0", "cuda:x", "cuda:-1", "Metal"] {
            let e = s.parse::<DeviceChoice>().unwrap_err();
            assert!(
                matches!(e, Error::InvalidOption { name: "device", .. }),
                "{s}: {e}"
            );
        }
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_names_it() {
        let e = DeviceChoice::Cuda(0).open().unwrap_err();
        assert_eq!(
            e.to_string(),
            "device `cuda:0` is not compiled in; rebuild vlm with `--features cuda`"
        );
    }

    #[cfg(not(feature = "metal"))]
    #[test]
    fn metal_without_the_feature_names_it() {
        let e = DeviceChoice::Metal(2).open().unwrap_err();
        assert!(matches!(
            e,
            Error::DeviceNotCompiled {
                feature: "metal",
                ..
            }
        ));
        assert!(e.to_string().contains("metal:2"), "{e}");
    }
}
