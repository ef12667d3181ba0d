// Per-chunk genotype figures (gpu_genomics/variants/genotypes.py chunk_figures) in one pass over
// the calls; the same integers as the numba kernel _chunk_figures_cpu.
//
// gt: (n_rows, n_samples, ploidy) int8, C order: allele index >= 0, -1 missing allele, -2 fill
// (a call of lower ploidy). A call is missing when it has a -1 or only fill. For row i:
//
//   missing_calls[i]   int64 (n_rows): the row's missing calls;
//   counts[i, k]       int64 (n_rows, width): the row's alleles equal to k, 0 <= k < width;
//   dosage[i, j]       int8 (n_rows, n_samples): alleles > 0 of call (i, j), -1 when it is
//                      missing (only when want_dosage != 0);
//   sample_missing[j]  int64 (n_samples): missing calls (i, j) of the rows with
//                      sample_rows[i] != 0 (uint8, n_rows; only when want_samples != 0).
//
// missing_calls, counts and sample_missing are added to with atomics: they must be zeroed.
// dosage and sample_rows may be empty (null) when their flag is 0.
//
// Grid: x covers the samples (one thread per sample, a warp reads consecutive calls), y covers
// tiles of tile_rows consecutive rows; both stride when the grid is smaller. A thread reads the
// calls of a few rows before reducing them, adds its sample's missing calls over every row the
// block visits in a register, and makes one atomicAdd per sample at the end. Per row, each
// warp sums its calls' figures with ballots (a count of 0..ploidy one bit at a time) into
// shared memory; after a tile the block sums the warps and makes one atomicAdd per row and
// counter. Alleles 2 .. width - 1 (multi-allelic rows) go into a shared-memory histogram per
// tile row, added to counts once per tile.
//
// Dynamic shared memory: (3 * warps + bins) * tile_rows unsigned long long, where warps =
// blockDim.x / 32 and bins = max(0, min(width, 128) - 2). blockDim.x must be a multiple of 32
// (at most 1024).

constexpr int GT_BATCH = 4;  // rows whose calls a thread reads before reducing them

struct CallFigures {
  int missing;  // 0 or 1
  int zeros;    // alleles == 0
  int ones;     // alleles == 1
  int nonref;   // alleles > 0
};

// The figures of one call of `ploidy` alleles (P: the ploidy at compile time, 0 = unknown);
// alleles 2 .. width - 1 are counted into hist[allele - 2].
template <int P>
__device__ __forceinline__ CallFigures read_call(const signed char* __restrict__ call,
                                                 const int ploidy, const int width,
                                                 unsigned long long* hist) {
  const int n = P > 0 ? P : ploidy;
  bool missing = false, present = false;
  int zeros = 0, ones = 0, nonref = 0;
  for (int a = 0; a < n; ++a) {
    const int v = call[a];
    missing |= v == -1;
    present |= v != -2;
    zeros += v == 0;
    ones += v == 1;
    nonref += v > 0;
    if (v >= 2 && v < width) atomicAdd(hist + (v - 2), 1ull);
  }
  return {(missing || !present) ? 1 : 0, zeros, ones, nonref};
}

// Sum over the warp's lanes of a per-lane count in 0 .. 2**bits - 1 (every lane must call it).
__device__ __forceinline__ unsigned long long warp_sum(const int value, const int bits) {
  unsigned long long sum = 0;
  for (int b = 0; b < bits; ++b) {
    sum += (unsigned long long)__popc(__ballot_sync(0xffffffffu, (value >> b) & 1)) << b;
  }
  return sum;
}

template <int P>
__device__ __forceinline__ void genotype_figures_body(
    const signed char* __restrict__ gt, const unsigned char* __restrict__ sample_rows,
    const long long n_rows, const long long n_samples, const int ploidy, const int width,
    const int tile_rows, const int want_dosage, const int want_samples,
    signed char* __restrict__ dosage, long long* __restrict__ missing_calls,
    long long* __restrict__ counts, long long* __restrict__ sample_missing,
    unsigned long long* s_warps, unsigned long long* s_hist) {
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  const int warps = blockDim.x >> 5;
  const int bins = width > 128 ? 126 : (width > 2 ? width - 2 : 0);  // alleles 2 .. width - 1
  const int count_bits = 32 - __clz(P > 0 ? P : ploidy);  // bits of a count 0 .. ploidy
  for (long long j0 = (long long)blockIdx.x * blockDim.x; j0 < n_samples;
       j0 += (long long)gridDim.x * blockDim.x) {
    const long long j = j0 + threadIdx.x;
    const bool active = j < n_samples;
    long long lost = 0;  // this sample's missing calls in the rows of sample_rows
    for (long long r0 = (long long)blockIdx.y * tile_rows; r0 < n_rows;
         r0 += (long long)gridDim.y * tile_rows) {
      const int rows = n_rows - r0 < tile_rows ? (int)(n_rows - r0) : tile_rows;
      for (int e = threadIdx.x; e < rows * bins; e += blockDim.x) s_hist[e] = 0;
      __syncthreads();
      for (int r = 0; r < rows; r += GT_BATCH) {
        CallFigures f[GT_BATCH];
#pragma unroll
        for (int b = 0; b < GT_BATCH; ++b) {
          f[b] = {0, 0, 0, 0};
          if (active && r + b < rows) {
            const long long call = ((r0 + r + b) * n_samples + j) * (P > 0 ? P : ploidy);
            f[b] = read_call<P>(gt + call, ploidy, width, s_hist + (long long)(r + b) * bins);
          }
        }
#pragma unroll
        for (int b = 0; b < GT_BATCH; ++b) {
          if (r + b >= rows) break;  // the same for every thread of the block
          const long long i = r0 + r + b;
          if (active && want_dosage) {
            dosage[i * n_samples + j] = f[b].missing ? (signed char)-1 : (signed char)f[b].nonref;
          }
          if (want_samples && sample_rows[i]) lost += f[b].missing;
          const unsigned long long missing = __popc(__ballot_sync(0xffffffffu, f[b].missing));
          const unsigned long long zeros = warp_sum(f[b].zeros, count_bits);
          const unsigned long long ones = warp_sum(f[b].ones, count_bits);
          if (lane == 0) {
            s_warps[(0 * warps + warp) * tile_rows + r + b] = missing;
            s_warps[(1 * warps + warp) * tile_rows + r + b] = zeros;
            s_warps[(2 * warps + warp) * tile_rows + r + b] = ones;
          }
        }
      }
      __syncthreads();
      for (int e = threadIdx.x; e < 3 * rows; e += blockDim.x) {
        const int c = e / rows, r = e - c * rows;
        unsigned long long sum = 0;
        for (int w = 0; w < warps; ++w) sum += s_warps[(c * warps + w) * tile_rows + r];
        const long long i = r0 + r;
        const int allele = c - 1;  // c 0: missing calls, c 1: allele 0, c 2: allele 1
        if (sum == 0 || allele >= width) continue;
        long long* to = c == 0 ? missing_calls + i : counts + i * width + allele;
        atomicAdd((unsigned long long*)to, sum);
      }
      for (int e = threadIdx.x; e < rows * bins; e += blockDim.x) {
        const int r = e / bins, k = 2 + (e - r * bins);
        if (s_hist[e]) atomicAdd((unsigned long long*)(counts + (r0 + r) * width + k), s_hist[e]);
      }
      __syncthreads();  // the shared counts are reused by the next tile
    }
    if (want_samples && active && lost) {
      atomicAdd((unsigned long long*)(sample_missing + j), (unsigned long long)lost);
    }
  }
}

extern "C" __global__ void genotype_figures(
    const signed char* __restrict__ gt, const unsigned char* __restrict__ sample_rows,
    const long long n_rows, const long long n_samples, const int ploidy, const int width,
    const int tile_rows, const int want_dosage, const int want_samples,
    signed char* __restrict__ dosage, long long* __restrict__ missing_calls,
    long long* __restrict__ counts, long long* __restrict__ sample_missing) {
  extern __shared__ unsigned long long s_figures[];
  unsigned long long* s_warps = s_figures;  // [3][warps][tile_rows]
  unsigned long long* s_hist = s_figures + 3 * (blockDim.x >> 5) * tile_rows;  // [tile_rows][bins]
  if (ploidy == 2) {  // the common case, unrolled
    genotype_figures_body<2>(gt, sample_rows, n_rows, n_samples, ploidy, width, tile_rows,
                             want_dosage, want_samples, dosage, missing_calls, counts,
                             sample_missing, s_warps, s_hist);
  } else {
    genotype_figures_body<0>(gt, sample_rows, n_rows, n_samples, ploidy, width, tile_rows,
                             want_dosage, want_samples, dosage, missing_calls, counts,
                             sample_missing, s_warps, s_hist);
  }
}
