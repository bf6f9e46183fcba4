//! Which microkernel, which cache blocking, how many threads: a [`Gemm`] plan.

use super::driver;
use super::microkernel::KernelFn;
use super::{MatMut, MatRef};
use crate::isa::{self, Isa};
use crate::{Element, KernelError};
use std::sync::atomic::{AtomicU64, Ordering};
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

/// A microkernel with its tile shape and default blocking.
#[derive(Clone, Copy)]
pub struct Microkernel {
    /// The instruction set it is written in.
    pub isa: Isa,
    /// Rows of the register tile.
    pub mr: usize,
    /// Columns of the register tile.
    pub nr: usize,
    /// Blocking tuned for this kernel (see `gemm-compare`).
    pub blocking: Blocking,
    pub(crate) run: KernelFn,
}

/// The largest `MR * NR` of any kernel (AVX-512's 8×48): the size of the
/// driver's scratch edge tile. Each ISA module asserts its tile fits.
pub(crate) const MAX_TILE: usize = 8 * 48;

impl Microkernel {
    /// The kernel for `isa`, or an error if this CPU cannot run it.
    pub fn for_isa(isa: Isa) -> Result<&'static Microkernel, KernelError> {
        if !isa.is_supported() {
            return Err(KernelError::UnsupportedKernel { isa: isa.name() });
        }
        // KC: as deep as the L2 budget allows, because every K block costs a
        // read-modify-write pass over C. AVX-512 parts have 1-2 MiB of L2 per
        // core: an A block of MC*KC*4 = 336*576*4 bytes = 774 KiB leaves room
        // for the B micro-panels streaming through; 576 also makes SmolLM2's
        // hidden size a single pass. AVX2 parts have 256 KiB-1.25 MiB:
        // 192*256*4 = 192 KiB. Measured with `gemm-compare --blocking`; the
        // B micro-panel (KC*NR*4 bytes) then streams from L2, which measured
        // as fast as keeping it in L1 with a shallower KC.
        static SCALAR: Microkernel = Microkernel {
            isa: Isa::Scalar,
            mr: isa::scalar::MR,
            nr: isa::scalar::NR,
            blocking: Blocking { mc: 64, kc: 256, nc: 1024 },
            run: isa::scalar::GEMM,
        };
        #[cfg(target_arch = "x86_64")]
        static AVX2: Microkernel = Microkernel {
            isa: Isa::Avx2,
            mr: isa::avx2::MR,
            nr: isa::avx2::NR,
            blocking: Blocking { mc: 192, kc: 256, nc: 4096 },
            run: isa::avx2::GEMM,
        };
        #[cfg(target_arch = "x86_64")]
        static AVX512: Microkernel = Microkernel {
            isa: Isa::Avx512,
            mr: isa::avx512::MR,
            nr: isa::avx512::NR,
            blocking: Blocking { mc: 336, kc: 576, nc: 4608 },
            run: isa::avx512::GEMM,
        };
        #[cfg(target_arch = "aarch64")]
        static NEON: Microkernel = Microkernel {
            isa: Isa::Neon,
            mr: isa::neon::MR,
            nr: isa::neon::NR,
            blocking: Blocking { mc: 128, kc: 256, nc: 3072 },
            run: isa::neon::GEMM,
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

/// Process-wide GEMM statistics, for profiling and for tests that must show
/// a product was skipped (a frozen weight costs no weight-gradient GEMM).
struct Counters {
    calls: AtomicU64,
    flops: AtomicU64,
    /// Wall time inside multi-threaded GEMMs (those run from one caller thread).
    nanos: AtomicU64,
}

static COUNTERS: Counters = Counters { calls: AtomicU64::new(0), flops: AtomicU64::new(0), nanos: AtomicU64::new(0) };

/// `(calls, FLOPs, seconds)` of the GEMMs run so far that used the thread
/// pool (the big products of a training step; per-head products inside
/// fused attention run single-threaded and are not timed here).
pub fn gemm_stats() -> (u64, u64, f64) {
    (
        COUNTERS.calls.load(Ordering::Relaxed),
        COUNTERS.flops.load(Ordering::Relaxed),
        COUNTERS.nanos.load(Ordering::Relaxed) as f64 * 1e-9,
    )
}

/// How many GEMMs this process has run (every [`Gemm::run`], any size).
pub fn gemm_calls() -> u64 {
    COUNTERS.calls.load(Ordering::Relaxed)
}

/// Below this many FLOPs (2·m·n·k) a GEMM runs on the calling thread: waking
/// the pool costs more than it saves.
const PARALLEL_MIN_FLOPS: usize = 1 << 21;

/// A GEMM plan: microkernel, blocking and threading. Cheap to make and copy.
///
/// ```
/// use kernels::gemm::{Gemm, MatMut, MatRef};
/// let a = [1.0f32, 2.0, 3.0, 4.0]; // 2x2
/// let b = [1.0f32, 0.0, 0.0, 1.0]; // identity
/// let mut c = [0.0f32; 4];
/// Gemm::new()?.run(1.0, MatRef::new(&a, 2, 2, 2)?.t(), MatRef::new(&b, 2, 2, 2)?, 0.0,
///                  MatMut::new(&mut c, 2, 2, 2)?)?;
/// assert_eq!(c, [1.0, 3.0, 2.0, 4.0]); // Aᵀ
/// # Ok::<(), kernels::KernelError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Gemm {
    kernel: &'static Microkernel,
    blocking: Blocking,
    parallel: bool,
}

impl Gemm {
    /// The selected kernel ([`Microkernel::selected`]), its blocking, and rayon's thread pool.
    pub fn new() -> Result<Gemm, KernelError> {
        Ok(Gemm::with_kernel(Microkernel::selected()?))
    }

    /// A plan with the kernel of `isa` (an error if the CPU lacks it).
    pub fn with_isa(isa: Isa) -> Result<Gemm, KernelError> {
        Ok(Gemm::with_kernel(Microkernel::for_isa(isa)?))
    }

    fn with_kernel(kernel: &'static Microkernel) -> Gemm {
        Gemm { kernel, blocking: kernel.blocking, parallel: true }
    }

    /// Run everything on the calling thread; never touch rayon's pool.
    pub fn single_threaded(mut self) -> Gemm {
        self.parallel = false;
        self
    }

    /// Other cache blocking (tests use tiny blocks to cross every block edge
    /// with small matrices).
    pub fn with_blocking(mut self, blocking: Blocking) -> Result<Gemm, KernelError> {
        let Blocking { mc, kc, nc } = blocking;
        let (mr, nr) = (self.kernel.mr, self.kernel.nr);
        if mc == 0 || kc == 0 || nc == 0 || !mc.is_multiple_of(mr) || !nc.is_multiple_of(nr) {
            return Err(KernelError::BadBlocking {
                reason: format!(
                    "mc={mc}, kc={kc}, nc={nc}: all must be positive, mc a multiple of MR={mr}, nc of NR={nr}"
                ),
            });
        }
        self.blocking = blocking;
        Ok(self)
    }

    pub fn kernel(&self) -> &'static Microkernel {
        self.kernel
    }

    pub fn blocking(&self) -> Blocking {
        self.blocking
    }

    /// `C <- alpha * A * B + beta * C`, where `a` is `m × k`, `b` is `k × n`
    /// and `c` is `m × n`. Pass `x.t()` for a transposed operand. A and B may
    /// be f32, bf16 or f16 (widened while packing); C is f32. With
    /// `beta == 0`, C is not read.
    pub fn run<A: Element, B: Element>(
        &self,
        alpha: f32,
        a: MatRef<'_, A>,
        b: MatRef<'_, B>,
        beta: f32,
        mut c: MatMut<'_>,
    ) -> Result<(), KernelError> {
        let (m, k, n) = super::check_shapes(&a, &b, &c)?;
        COUNTERS.calls.fetch_add(1, Ordering::Relaxed);
        let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
        let threads = if self.parallel && flops >= PARALLEL_MIN_FLOPS { rayon::current_num_threads() } else { 1 };
        let plan = driver::Plan { kernel: self.kernel, blocking: self.blocking, threads };
        let start = self.parallel.then(std::time::Instant::now);
        driver::gemm(&plan, alpha, &a, &b, beta, &mut c);
        if let Some(t) = start {
            COUNTERS.flops.fetch_add(flops as u64, Ordering::Relaxed);
            COUNTERS.nanos.fetch_add(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}
