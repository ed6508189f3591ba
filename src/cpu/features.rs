//! This CPU → the instruction families the kernels may use, read once per process, and the
//! name of the kernel family each stage runs on (for `vlm bench` and `-v`).
//!
//! AMX (Sapphire Rapids and later) is read from CPUID directly: the standard library's
//! detection of it is not stable. A CPU that has AMX still faults on the first tile instruction
//! under Linux until the process asks for the tile-data state, so [`TilePermission::request`] makes
//! that request once and says how it went; a VM may also hide AMX from CPUID altogether.

use std::sync::OnceLock;

/// The instruction families on this CPU that matter to the kernels.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX2 with FMA (the 256-bit kernels).
    pub avx2_fma: bool,
    /// F16C (half-precision conversions).
    pub f16c: bool,
    /// AVX-512 F and BW (the 512-bit kernels).
    pub avx512: bool,
    /// AVX-512 VNNI (`vpdpbusd`, int8 dot products).
    pub avx512_vnni: bool,
    /// AVX-512 BF16 (`vdpbf16ps`).
    pub avx512_bf16: bool,
    /// AMX tiles.
    pub amx_tile: bool,
    /// AMX BF16 (`tdpbf16ps`).
    pub amx_bf16: bool,
    /// AMX INT8 (`tdpbssd` and friends).
    pub amx_int8: bool,
    /// ARM NEON.
    pub neon: bool,
}

#[cfg(target_arch = "x86_64")]
fn read() -> CpuFeatures {
    let (amx_tile, amx_bf16, amx_int8) = amx_cpuid();
    CpuFeatures {
        avx2_fma: is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
        f16c: is_x86_feature_detected!("f16c"),
        avx512: is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bw"),
        avx512_vnni: is_x86_feature_detected!("avx512vnni"),
        avx512_bf16: is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512bf16"),
        amx_tile,
        amx_bf16,
        amx_int8,
        neon: false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn read() -> CpuFeatures {
    CpuFeatures {
        neon: cfg!(target_arch = "aarch64"),
        ..CpuFeatures::default()
    }
}

/// `(amx_tile, amx_bf16, amx_int8)` from CPUID leaf 7, sub-leaf 0, EDX bits 24, 22 and 25.
#[cfg(target_arch = "x86_64")]
fn amx_cpuid() -> (bool, bool, bool) {
    // Leaf 7 is read only when the maximum leaf (leaf 0's EAX) reaches it.
    let max_leaf = std::arch::x86_64::__cpuid(0).eax;
    if max_leaf < 7 {
        return (false, false, false);
    }
    let edx = std::arch::x86_64::__cpuid_count(7, 0).edx;
    let bit = |n: u32| edx & (1 << n) != 0;
    (bit(24), bit(22), bit(25))
}

impl CpuFeatures {
    /// This CPU's features, detected on first use.
    pub fn detect() -> CpuFeatures {
        static FEATURES: OnceLock<CpuFeatures> = OnceLock::new();
        *FEATURES.get_or_init(read)
    }

    /// The features' names as `/proc/cpuinfo` spells them, for reports.
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.avx2_fma, "avx2 fma"),
            (self.f16c, "f16c"),
            (self.avx512, "avx512f avx512bw"),
            (self.avx512_vnni, "avx512_vnni"),
            (self.avx512_bf16, "avx512_bf16"),
            (self.amx_tile, "amx_tile"),
            (self.amx_bf16, "amx_bf16"),
            (self.amx_int8, "amx_int8"),
            (self.neon, "neon"),
        ]
        .into_iter()
        .filter(|(on, _)| *on)
        .flat_map(|(_, names)| names.split(' '))
        .collect()
    }

    /// The kernel family of the block × f32 dot products (quantized decode): the choice
    /// `cpu::qmatmul` makes, `avx512`, `avx2` or `portable`.
    pub fn block_dot_family() -> &'static str {
        super::qmatmul::family_name()
    }

    /// The kernel family of the block × 8-bit activation dot products
    /// ([`crate::DecodeCompute::Int8Dot`]): `vnni-int8` or `avx2-int8`; `None` without AVX2.
    pub fn int8_block_dot_family() -> Option<&'static str> {
        super::qmatmul::int8_act::Isa::detect().map(|isa| isa.name())
    }
}

/// Whether this process may run AMX tile instructions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TilePermission {
    /// The CPU (or the VM) does not offer AMX.
    Absent,
    /// The kernel granted the tile-data state: tile instructions run.
    Granted,
    /// The CPU offers AMX but the operating system refused it (the reason), so tile
    /// instructions would fault; the kernels use the other families.
    Refused(String),
}

impl std::fmt::Display for TilePermission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TilePermission::Absent => f.write_str("absent"),
            TilePermission::Granted => f.write_str("tile data granted"),
            TilePermission::Refused(why) => write!(f, "refused by the OS ({why})"),
        }
    }
}

impl TilePermission {
    /// Asks the OS, once per process, for the AMX tile-data state. The grant covers every
    /// thread of the process, those of thread pools started before it included.
    pub fn request() -> TilePermission {
        static PERMISSION: OnceLock<TilePermission> = OnceLock::new();
        PERMISSION
            .get_or_init(|| {
                if !CpuFeatures::detect().amx_tile {
                    return TilePermission::Absent;
                }
                request_tile_data()
            })
            .clone()
    }
}

#[cfg(all(target_os = "linux", target_arch = "x86_64"))]
fn request_tile_data() -> TilePermission {
    // arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA), Linux 5.16 and later.
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with these arguments only changes this process's permitted XSAVE
    // state; it reads and writes no memory of ours.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    if ret == 0 {
        TilePermission::Granted
    } else {
        TilePermission::Refused(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
fn request_tile_data() -> TilePermission {
    TilePermission::Refused("tile permission is requested on Linux only".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detection_agrees_with_the_standard_library() {
        let f = CpuFeatures::detect();
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(
                f.avx2_fma,
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma")
            );
            assert_eq!(f.avx512_bf16, is_x86_feature_detected!("avx512bf16"));
        }
        // Each AMX part implies the tiles.
        assert!(!(f.amx_bf16 || f.amx_int8) || f.amx_tile, "{f:?}");
        let names = f.names();
        assert_eq!(names.contains(&"amx_tile"), f.amx_tile);
        // The 512-bit block-dot kernels are only chosen where AVX-512 is present.
        assert!(f.avx512 || CpuFeatures::block_dot_family() != "avx512");
    }

    #[test]
    fn tile_permission_follows_detection() {
        let p = TilePermission::request();
        match (CpuFeatures::detect().amx_tile, &p) {
            (false, TilePermission::Absent) => eprintln!("note: no AMX on this CPU"),
            (true, TilePermission::Granted) => {}
            (true, TilePermission::Refused(why)) => eprintln!("note: AMX refused: {why}"),
            other => panic!("unexpected {other:?}"),
        }
        // Asked once: the answer does not change.
        assert_eq!(TilePermission::request(), p);
    }
}
