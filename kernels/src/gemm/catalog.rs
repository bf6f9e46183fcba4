//! The microkernels hone has: their tile shapes, operand layouts and
//! default cache blocking, and which one runs here (chosen once per process).

use super::microkernel::{InPlaceKernelFn, KernelFn};
use crate::isa::{self, Isa};
use crate::KernelError;
use std::sync::OnceLock;
/// Cache-blocking sizes, named after the BLIS loop each one bounds.
///
/// ```text
/// loop 5  for jc in 0..n step NC      B block (KC × NC) packed once, shared by all threads (L3)
/// loop 4    for pc in 0..k step KC
/// loop 3      for ic in 0..m step MC  A block (MC × KC) packed per thread (L2)
/// loop 2        for jr step NR        B micro-panel (KC × NR) reused MC/MR times (L1)
/// loop 1          for ir step MR      microkernel: MR × NR tile of C in registers
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Blocking {
    /// Rows of A packed at once (loop 3); a multiple of the kernel's MR.
    pub mc: usize,
    /// Depth of one packed block (loop 4): the `k` each microkernel call sees.
    pub kc: usize,
    /// Columns of B packed at once (loop 5); a multiple of the kernel's NR.
    pub nc: usize,
}

/// How a kernel's operands are packed, and so what its `k` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// One f32 per element (`pack`): `k` counts elements.
    F32,
    /// bf16 pairs along k (`pack_bf16::pack_panel_pairs`, for `VDPBF16PS`): `k` counts pairs.
    Bf16Pairs,
    /// bf16 pairs in AMX tile blocks of 32 k (`pack_bf16::pack_panel_tiles`): `k` counts pair slots.
    Bf16Tiles,
}

impl Packing {
    /// K blocks start at multiples of this, so no pair or tile block straddles two.
    pub(crate) fn k_step(self) -> usize {
        match self {
            Packing::F32 => 1,
            Packing::Bf16Pairs => 2,
            Packing::Bf16Tiles => 32,
        }
    }

    /// The kernel's `k` (and packed slots per panel row) for `kc` elements of k.
    pub(crate) fn slots(self, kc: usize) -> usize {
        match self {
            Packing::F32 => kc,
            Packing::Bf16Pairs => kc.div_ceil(2),
            Packing::Bf16Tiles => super::pack_bf16::tile_slots(kc),
        }
    }
}

/// A microkernel with its tile shape and default blocking.
#[derive(Clone, Copy)]
pub struct Microkernel {
    /// The instruction set it is written in (AVX-512 for the bf16 kernels, whose epilogues use it).
    pub isa: Isa,
    /// A name for reports: the ISA, and for bf16 kernels which instructions.
    pub name: &'static str,
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Blocking tuned for this kernel (see `gemm-compare`).
    pub blocking: Blocking,
    /// The operand layout it reads.
    pub packing: Packing,
    pub(crate) run: KernelFn,
    /// The same tile reading its operands in place, for products whose
    /// panels it reads once (see [`InPlaceKernelFn`]); `None` where there is none.
    pub(crate) run_in_place: Option<InPlaceKernelFn>,
}

/// The largest `MR * NR` of any kernel (AMX's 32×32): the size of the
/// driver's scratch edge tile. Each ISA module asserts its tile fits.
pub(crate) const MAX_TILE: usize = 32 * 32;

/// The blocking of the AVX-512 f32 tiles, shared by the 8×48 kernel and
/// its 16×16 narrow twin (MC = 336 is 42 tiles of 8 and 21 of 16); the
/// comment in [`Microkernel::for_isa`] says how KC was chosen.
#[cfg(target_arch = "x86_64")]
const AVX512_F32_BLOCKING: Blocking = Blocking { mc: 336, kc: 768, nc: 4608 };

impl Microkernel {
    /// The kernel for `isa`, or an error if this CPU cannot run it.
    pub fn for_isa(isa: Isa) -> Result<&'static Microkernel, KernelError> {
        if !isa.is_supported() {
            return Err(KernelError::UnsupportedKernel { isa: isa.name() });
        }
        // KC: as deep as the L2 budget allows, because every K block costs a
        // read-modify-write pass over C. AVX-512 parts have 1-2 MiB of L2 per
        // core. KC = 768 makes GPT-2's hidden size (and SmolLM2's 576) a
        // single pass: on Zen 4 (1 MiB L2), 2 threads, alternated in one
        // process, the K = 768 products ran 1.5-3.5 points of peak faster
        // than with KC = 576 (which split them as 2 x 384) and the others
        // the same. A task's A block is then MC_task*768*4 bytes: 768 KiB for
        // the 256-row tasks B*T = 512 gives two threads; 1008 KiB only for a
        // task of the full MC = 336 rows, which measured no slower (2048³,
        // 1536x768x1536). AVX2 parts have 256 KiB-1.25 MiB:
        // 192*256*4 = 192 KiB. Measured with `gemm-compare --blocking`; the
        // B micro-panel (KC*NR*4 bytes) then streams from L2, which measured
        // as fast as keeping it in L1 with a shallower KC.
        static SCALAR: Microkernel = Microkernel {
            isa: Isa::Scalar,
            name: "scalar",
            mr: isa::scalar::MR,
            nr: isa::scalar::NR,
            blocking: Blocking { mc: 64, kc: 256, nc: 1024 },
            packing: Packing::F32,
            run: isa::scalar::GEMM,
            run_in_place: None,
        };
        #[cfg(target_arch = "x86_64")]
        static AVX2: Microkernel = Microkernel {
            isa: Isa::Avx2,
            name: "avx2",
            mr: isa::avx2::MR,
            nr: isa::avx2::NR,
            blocking: Blocking { mc: 192, kc: 256, nc: 4096 },
            packing: Packing::F32,
            run: isa::avx2::GEMM,
            run_in_place: Some(isa::avx2::GEMM_IN_PLACE),
        };
        #[cfg(target_arch = "x86_64")]
        static AVX512: Microkernel = Microkernel {
            isa: Isa::Avx512,
            name: "avx512",
            mr: isa::avx512::MR,
            nr: isa::avx512::NR,
            blocking: AVX512_F32_BLOCKING,
            packing: Packing::F32,
            run: isa::avx512::GEMM,
            run_in_place: Some(isa::avx512::GEMM_IN_PLACE),
        };
        #[cfg(target_arch = "aarch64")]
        static NEON: Microkernel = Microkernel {
            isa: Isa::Neon,
            name: "neon",
            mr: isa::neon::MR,
            nr: isa::neon::NR,
            blocking: Blocking { mc: 128, kc: 256, nc: 3072 },
            packing: Packing::F32,
            run: isa::neon::GEMM,
            run_in_place: None,
        };
        Ok(match isa {
            Isa::Scalar => &SCALAR,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => &AVX2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => &AVX512,
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => &NEON,
            #[allow(unreachable_patterns)]
            _ => unreachable!("is_supported() is false for ISAs of other architectures"),
        })
    }

    /// The kernel for narrow products (at most its `nr` columns, or up to
    /// 128 where it pads fewer columns) that goes with `main`, if there is
    /// one: AVX-512's 16×16 (see `isa::avx512::NARROW_GEMM`).
    pub fn narrow_for(main: &Microkernel) -> Option<&'static Microkernel> {
        #[cfg(target_arch = "x86_64")]
        if main.isa == Isa::Avx512 && main.packing == Packing::F32 {
            static NARROW: Microkernel = Microkernel {
                isa: Isa::Avx512,
                name: "avx512-narrow",
                mr: isa::avx512::NARROW_MR,
                nr: isa::avx512::NARROW_NR,
                blocking: AVX512_F32_BLOCKING,
                packing: Packing::F32,
                run: isa::avx512::NARROW_GEMM,
                run_in_place: Some(isa::avx512::NARROW_GEMM_IN_PLACE),
            };
            return Some(&NARROW);
        }
        let _ = main;
        None
    }

    /// The bf16 kernels this CPU can run, best first: AMX tiles, then
    /// `VDPBF16PS` pairs. Empty elsewhere (bf16 products then round while
    /// packing for the f32 kernel).
    pub fn bf16_kernels() -> Vec<&'static Microkernel> {
        #[allow(unused_mut)]
        let mut out: Vec<&'static Microkernel> = Vec::new();
        #[cfg(target_arch = "x86_64")]
        {
            static AMX: Microkernel = Microkernel {
                isa: Isa::Avx512,
                name: "amx-bf16",
                mr: isa::amx::MR,
                nr: isa::amx::NR,
                // bf16 halves the bytes per k, so the A block can be twice
                // as deep as the f32 kernel's for the same L2 share.
                blocking: Blocking { mc: 256, kc: 1024, nc: 4608 },
                packing: Packing::Bf16Tiles,
                run: isa::amx::GEMM,
                run_in_place: None,
            };
            static AVX512_BF16: Microkernel = Microkernel {
                isa: Isa::Avx512,
                name: "avx512-bf16",
                mr: isa::avx512_bf16::MR,
                nr: isa::avx512_bf16::NR,
                blocking: Blocking { mc: 336, kc: 1152, nc: 4608 },
                packing: Packing::Bf16Pairs,
                run: isa::avx512_bf16::GEMM,
                run_in_place: None,
            };
            if isa::amx::is_supported() {
                out.push(&AMX);
            }
            if isa::avx512_bf16::is_supported() {
                out.push(&AVX512_BF16);
            }
        }
        out
    }

    /// The bf16 kernel hone uses: `HONE_BF16_KERNEL` (a kernel name, or
    /// `round` for none) if set, else the best available. `None`: round while
    /// packing. Decided once per process.
    pub fn bf16_selected() -> Result<Option<&'static Microkernel>, KernelError> {
        static SELECTED: OnceLock<Result<Option<&'static Microkernel>, KernelError>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var("HONE_BF16_KERNEL") {
                Ok(name) if name.trim() == "round" => Ok(None),
                Ok(name) if !name.trim().is_empty() => Microkernel::bf16_kernels()
                    .into_iter()
                    .find(|k| k.name == name.trim())
                    .map(Some)
                    .ok_or(KernelError::UnknownKernel { requested: name }),
                _ => Ok(Microkernel::bf16_kernels().first().copied()),
            })
            .clone()
    }

    /// Runs the microkernel once on one full tile: `c` (`MR` rows of stride
    /// `ldc`) `<- alpha * a·b + beta * c`, with `a` and `b` already packed
    /// (see [`super::microkernel`] for the layout). A safe door to the raw
    /// kernel, for benches that time it alone and for readers who step into it.
    #[allow(clippy::too_many_arguments)] // the BLAS microkernel signature, spelled out
    pub fn run_tile(
        &self,
        k: usize,
        a: &[f32],
        b: &[f32],
        c: &mut [f32],
        ldc: usize,
        alpha: f32,
        beta: f32,
    ) -> Result<(), KernelError> {
        let (mr, nr) = (self.mr, self.nr);
        if self.packing == Packing::Bf16Tiles && !k.is_multiple_of(16) {
            return Err(KernelError::BadBlocking {
                reason: format!(
                    "run_tile({}): k = {k} pair slots, but tile kernels take whole blocks of 16",
                    self.name
                ),
            });
        }
        let c_len = (mr - 1) * ldc + nr;
        if a.len() < k * mr || b.len() < k * nr || ldc < nr || c.len() < c_len {
            return Err(KernelError::BadBlocking {
                reason: format!(
                    "run_tile({mr}x{nr}, k={k}): needs a >= {}, b >= {}, ldc >= {nr}, c >= {c_len}; got {}, {}, {ldc}, {}",
                    k * mr,
                    k * nr,
                    a.len(),
                    b.len(),
                    c.len()
                ),
            });
        }
        // SAFETY: lengths checked above; the kernel's ISA was checked when `self` was made.
        unsafe { (self.run)(k, a.as_ptr(), b.as_ptr(), c.as_mut_ptr(), ldc, alpha, beta) };
        Ok(())
    }

    /// The kernel hone uses: `HONE_KERNEL` if set, else the best this CPU
    /// supports. Decided once per process.
    pub fn selected() -> Result<&'static Microkernel, KernelError> {
        static SELECTED: OnceLock<Result<&'static Microkernel, KernelError>> = OnceLock::new();
        SELECTED
            .get_or_init(|| match std::env::var("HONE_KERNEL") {
                Ok(name) if !name.trim().is_empty() => Microkernel::for_isa(Isa::from_name(&name)?),
                _ => Microkernel::for_isa(Isa::best()),
            })
            .clone()
    }
}
