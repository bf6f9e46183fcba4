//! Instruction sets: what the CPU can run, which one hone uses, and the
//! handful of vector operations every kernel is written in.
//!
//! Each ISA module (`scalar`, `avx2`, `avx512`, `neon`) implements [`Simd`]
//! for a marker type. Kernels are written once, generically over `Simd`, as
//! `#[inline(always)]` bodies; each ISA module then wraps a body in an
//! `unsafe fn` carrying `#[target_feature(enable = ...)]`, so the body is
//! compiled with that ISA's instructions while the binary as a whole still
//! runs on any x86-64 (or aarch64). Which wrapper is called is decided once,
//! at run time, from CPU feature detection or the `HONE_KERNEL` variable.

pub(crate) mod scalar;

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx2;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512_bf16;
#[cfg(target_arch = "aarch64")]
pub(crate) mod neon;

use crate::KernelError;
use std::fmt;

/// The vector operations the kernels are written in.
///
/// `V` is one register of `LANES` f32 values. Every function is `unsafe`
/// because it compiles to instructions the CPU may lack: callers must only
/// reach them through a `#[target_feature]` wrapper whose ISA was detected.
/// Loads and stores are unaligned and touch exactly `LANES` floats.
pub(crate) trait Simd {
    /// Floats in one register.
    const LANES: usize;
    /// One register.
    type V: Copy;

    /// All lanes zero.
    unsafe fn zero() -> Self::V;
    /// All lanes `x`.
    unsafe fn splat(x: f32) -> Self::V;
    /// `LANES` floats from `p` (any alignment).
    unsafe fn load(p: *const f32) -> Self::V;
    /// `LANES` floats to `p` (any alignment).
    unsafe fn store(p: *mut f32, v: Self::V);
    /// `a * b + c`, fused (one rounding) where the ISA has FMA.
    unsafe fn fma(a: Self::V, b: Self::V, c: Self::V) -> Self::V;
    /// `a * b`.
    unsafe fn mul(a: Self::V, b: Self::V) -> Self::V;
    /// Sum of all lanes.
    unsafe fn sum(v: Self::V) -> f32;
    /// Hint that the cache line holding `p` will soon be used; may do nothing.
    #[inline(always)]
    unsafe fn prefetch(_p: *const f32) {}
}

/// An instruction set hone has kernels for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    /// Plain Rust, no intrinsics: runs everywhere, the readable baseline.
    Scalar,
    /// x86-64 AVX2 with FMA3 (Haswell, Zen 1 and later): 16 × 256-bit registers.
    Avx2,
    /// x86-64 AVX-512F (Skylake-SP, Ice Lake, Sapphire Rapids, Zen 4): 32 × 512-bit registers.
    Avx512,
    /// aarch64 Advanced SIMD: 32 × 128-bit registers.
    Neon,
}

impl Isa {
    /// Every ISA, best first.
    pub const ALL: [Isa; 4] = [Isa::Avx512, Isa::Avx2, Isa::Neon, Isa::Scalar];

    /// The name used by `HONE_KERNEL` and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
            Isa::Neon => "neon",
        }
    }

    /// Parses a `HONE_KERNEL` value.
    pub fn from_name(name: &str) -> Result<Isa, KernelError> {
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == name.trim().to_ascii_lowercase())
            .ok_or_else(|| KernelError::UnknownKernel { requested: name.to_string() })
    }

    /// Whether this CPU can run the ISA (checked at run time).
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => std::arch::is_aarch64_feature_detected!("neon"),
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }

    /// The ISAs this CPU supports, best first.
    pub fn available() -> Vec<Isa> {
        Isa::ALL.into_iter().filter(|i| i.is_supported()).collect()
    }

    /// The best ISA this CPU supports.
    pub fn best() -> Isa {
        Isa::available().first().copied().unwrap_or(Isa::Scalar)
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Asks for the cache lines of `bytes` bytes from `p` to be loaded (a hint;
/// nothing on CPUs without a prefetch instruction hone uses). Safe for any
/// address: a prefetch never faults, and nothing is read.
#[inline(always)]
pub(crate) fn prefetch_bytes(p: *const u8, bytes: usize) {
    #[cfg(target_arch = "x86_64")]
    for line in (0..bytes).step_by(64) {
        // SAFETY: PREFETCHT0 is SSE, part of every x86-64 CPU; it reads no
        // memory and cannot fault, whatever the address.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(line) as *const i8)
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, bytes);
}
