//! A [`Gemm`] plan: which microkernel (see `catalog`), which cache
//! blocking, how many threads, for each call.

pub use super::catalog::{Blocking, Microkernel, Packing};
use super::driver;
use super::precision::{matmul_precision, Precision};
use super::stats;
use super::{MatMut, MatRef};
use crate::isa::Isa;
use crate::{Element, KernelError};

/// Up to this many columns, the narrow kernel runs a product whenever it
/// pads fewer columns than the wide one: 64 = 48 + 16 and 128 = 2·48 + 32
/// on the 8×48 tile, where a third of an 8×48 panel's FMAs would be zeros.
/// Measured when attention's `T × T` and `T × D` blocks were `Gemm` calls
/// (they now run on the 16×16 tile directly, see `nn::attention::tiles`):
/// SmolLM2 LoRA attention 146 -> 127 ms per step with this bound, 137 with
/// 64. Wider products stay on the wide tile, whose loads per FMA are fewer.
const NARROW_MAX_COLUMNS: usize = 128;

/// Whether a product of `n` columns runs on the narrow kernel (`narrow_nr`
/// wide) rather than the wide one (`wide_nr`).
fn prefers_narrow(n: usize, narrow_nr: usize, wide_nr: usize) -> bool {
    let padding = |nr: usize| n.next_multiple_of(nr) - n;
    n <= narrow_nr || (n <= NARROW_MAX_COLUMNS && padding(narrow_nr) < padding(wide_nr))
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
    precision: Precision,
    /// The kernel of bf16 products; `None` rounds while packing for `kernel`.
    bf16: Option<&'static Microkernel>,
    /// The kernel of narrow f32 products (see `prefers_narrow`), when the
    /// plan has its default blocking ([`Microkernel::narrow_for`]).
    narrow: Option<&'static Microkernel>,
}

impl Gemm {
    /// The selected kernel ([`Microkernel::selected`]), its blocking,
    /// rayon's thread pool, and the process-wide [`matmul_precision`].
    pub fn new() -> Result<Gemm, KernelError> {
        let g = Gemm::with_kernel(Microkernel::selected()?).with_bf16_kernel(Microkernel::bf16_selected()?);
        Ok(g.with_precision(matmul_precision()))
    }

    /// Products in precision `p` (see [`super::precision`]).
    pub fn with_precision(mut self, p: Precision) -> Gemm {
        self.precision = p;
        self
    }

    /// The kernel of bf16-precision products (one of [`Microkernel::bf16_kernels`]),
    /// or `None` to round while packing for the f32 kernel.
    pub fn with_bf16_kernel(mut self, k: Option<&'static Microkernel>) -> Gemm {
        self.bf16 = k;
        self
    }

    /// The kernel bf16-precision products run on, `None` when they round while packing.
    pub fn bf16_kernel(&self) -> Option<&'static Microkernel> {
        self.bf16
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// A plan with the kernel of `isa` (an error if the CPU lacks it).
    pub fn with_isa(isa: Isa) -> Result<Gemm, KernelError> {
        Ok(Gemm::with_kernel(Microkernel::for_isa(isa)?))
    }

    fn with_kernel(kernel: &'static Microkernel) -> Gemm {
        let narrow = Microkernel::narrow_for(kernel);
        Gemm { kernel, blocking: kernel.blocking, parallel: true, precision: Precision::F32, bf16: None, narrow }
    }

    /// A plan that runs `kernel` for every f32 product, whatever its shape
    /// (tests and benches of one kernel, such as [`Microkernel::narrow_for`]'s).
    pub fn with_microkernel(kernel: &'static Microkernel) -> Result<Gemm, KernelError> {
        if !kernel.isa.is_supported() || kernel.packing != Packing::F32 {
            return Err(KernelError::UnsupportedKernel { isa: kernel.isa.name() });
        }
        Ok(Gemm { narrow: None, ..Gemm::with_kernel(kernel) })
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
        c: MatMut<'_>,
    ) -> Result<(), KernelError> {
        self.run_extended(alpha, a, b, None, beta, c)
    }

    /// `C <- alpha * (A·B + A2·B2) + beta * C`: two products into one C as
    /// one GEMM whose k are A's followed by A2's. For LoRA's `x·Wᵀ + u·Bᵀ`
    /// (and `G·W + dh·A`), the rank's k are packed into the last K block of
    /// the layer's product, so the low-rank product costs no pass over C of
    /// its own. `a2` is `m × k2` and `b2` is `k2 × n`, f32. Where A's k is not
    /// a multiple of the chosen kernel's packing step (bf16 pairs or tiles),
    /// or is 0, the two products run one after the other.
    #[allow(clippy::too_many_arguments)] // two products' operands
    pub fn run_plus<A: Element, B: Element>(
        &self,
        alpha: f32,
        a: MatRef<'_, A>,
        b: MatRef<'_, B>,
        a2: MatRef<'_, f32>,
        b2: MatRef<'_, f32>,
        beta: f32,
        c: MatMut<'_>,
    ) -> Result<(), KernelError> {
        super::check_shapes(&a2, &b2, beta, &c)?;
        self.run_extended(alpha, a, b, Some((&a2, &b2)), beta, c)
    }

    fn run_extended<A: Element, B: Element>(
        &self,
        alpha: f32,
        a: MatRef<'_, A>,
        b: MatRef<'_, B>,
        extra: super::driver::ExtraK<'_, '_>,
        beta: f32,
        mut c: MatMut<'_>,
    ) -> Result<(), KernelError> {
        let (m, k1, n) = super::check_shapes(&a, &b, beta, &c)?;
        let k = k1 + extra.map_or(0, |(a2, _)| a2.cols());
        let flops = 2usize.saturating_mul(m).saturating_mul(n).saturating_mul(k);
        let plan = self.plan(n, flops);
        if let Some((a2, b2)) = extra.filter(|_| k1 == 0 || !k1.is_multiple_of(plan.kernel.packing.k_step())) {
            // A2's k cannot follow A's in the same panels: a pair or tile
            // would straddle the two. Two products instead.
            self.run(alpha, a, b, beta, c.reborrow())?;
            c.mark_written(); // the product above wrote every element
            return self.run(alpha, *a2, *b2, 1.0, c);
        }
        if extra.is_none() && super::transposed::runs_transposed(m, n, &b, |cols| self.plan(cols, flops)) {
            // Cᵀ = Bᵀ·Aᵀ: B, the big operand, read in place (see `transposed`).
            let mut ct = super::transposed::c_transposed(&mut c, beta);
            self.run(alpha, b.t(), a.t(), beta, MatMut::new(&mut ct, n, m, m)?)?;
            super::transposed::write_back(&ct, &mut c);
            return Ok(());
        }
        stats::count_call();
        let start = self.parallel.then(std::time::Instant::now);
        driver::gemm(&plan, alpha, &a, &b, extra, beta, &mut c);
        if let Some(t) = start {
            let key = stats::ShapeKey {
                m,
                k,
                n,
                a_transposed: a.col_stride() != 1,
                b_transposed: b.col_stride() != 1,
                beta_zero: beta == 0.0,
            };
            stats::record(key, flops, t.elapsed().as_secs_f64());
        }
        Ok(())
    }

    /// The kernel, blocking and threads of a product of `n` columns and `flops` FLOPs.
    fn plan(&self, n: usize, flops: usize) -> driver::Plan {
        let threads = if self.parallel && flops >= PARALLEL_MIN_FLOPS { rayon::current_num_threads() } else { 1 };
        // Few columns: the narrow kernel, unless the caller chose the blocking.
        let narrow =
            self.narrow.filter(|nk| prefers_narrow(n, nk.nr, self.kernel.nr) && self.blocking == self.kernel.blocking);
        let (kernel, blocking) = match narrow {
            Some(nk) => (nk, nk.blocking),
            None => (self.kernel, self.blocking),
        };
        let f32_plan = |round_bf16| driver::Plan { kernel, blocking, threads, round_bf16 };
        match (self.precision, self.bf16) {
            (Precision::F32, _) => f32_plan(false),
            (Precision::Bf16, None) => f32_plan(true),
            // Narrow bf16 products round while packing for the narrow f32
            // kernel: the bf16 kernels' 48-column tiles would be two thirds
            // padding, and these products are bound by reading their
            // operands, not by FMAs. The rounding, and so the result, is the
            // same (see `precision`). Measured on SmolLM2 LoRA bf16 (Zen 4,
            // 2 threads), with the vectorised rounding of
            // `convert::round_to_bf16`: the rank-16 GEMMs 295-349 -> 248 ms
            // per step, attention unchanged. (LoRA's rank-r products have
            // since left bf16 altogether: `autograd::lora_linear` asks for
            // f32, which reads A in place and rounds nothing.)
            (Precision::Bf16, Some(_)) if narrow.is_some() => f32_plan(true),
            (Precision::Bf16, Some(k)) => {
                // The kernel's own blocking, or the caller's (tests use tiny
                // blocks) rounded to its tile.
                let b = self.blocking;
                let blocking = if b == self.kernel.blocking {
                    k.blocking
                } else {
                    Blocking { mc: b.mc.next_multiple_of(k.mr), kc: b.kc, nc: b.nc.next_multiple_of(k.nr) }
                };
                driver::Plan { kernel: k, blocking, threads, round_bf16: false }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::prefers_narrow;

    #[test]
    fn narrow_kernel_takes_products_it_pads_less() {
        // (n, narrow?) with a 16-wide narrow tile and a 48-wide wide one.
        let cases = [
            (1, true),
            (16, true),
            (17, true),
            (48, false),
            (64, true),
            (96, false),
            (128, true),
            (130, false),
            (576, false),
        ];
        for (n, want) in cases {
            assert_eq!(prefers_narrow(n, 16, 48), want, "n = {n}");
        }
    }
}
