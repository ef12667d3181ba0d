// Per-record base composition: counts[row] = (G + C bases, A + C + G + T bases), either case.
// gc_class: 256-byte table of each byte's class (sequence/alphabet.py gc_classes): a base adds
// to the A+C+G+T count from class 1 up and to the G+C count from class 2 up.
// One block per record (grid-stride over records); each thread counts a strided share of the
// record's bases, then warp shuffles and shared memory reduce the block's counts.
// counts: (n_rows, 2) int64. blockDim.x must be a multiple of 32 and at most 1024.

extern "C" __global__ void gc_counts(const unsigned char* __restrict__ data,
                                     const long long* __restrict__ offsets,
                                     const unsigned char* __restrict__ gc_class,
                                     const long long n_rows, long long* __restrict__ counts) {
  __shared__ unsigned char s_class[256];
  __shared__ long long s_gc[32];
  __shared__ long long s_acgt[32];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s_class[i] = gc_class[i];
  __syncthreads();
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  for (long long row = blockIdx.x; row < n_rows; row += gridDim.x) {
    const long long start = offsets[row];
    const long long end = offsets[row + 1];
    long long gc = 0, acgt = 0;
    for (long long p = start + threadIdx.x; p < end; p += blockDim.x) {
      const int c = s_class[data[p]];
      gc += c >= 2;
      acgt += c >= 1;
    }
    for (int delta = 16; delta > 0; delta >>= 1) {
      gc += __shfl_down_sync(0xffffffffu, gc, delta);
      acgt += __shfl_down_sync(0xffffffffu, acgt, delta);
    }
    if (lane == 0) {
      s_gc[warp] = gc;
      s_acgt[warp] = acgt;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      long long total_gc = 0, total_acgt = 0;
      for (int w = 0; w < (int)(blockDim.x >> 5); ++w) {
        total_gc += s_gc[w];
        total_acgt += s_acgt[w];
      }
      counts[2 * row] = total_gc;
      counts[2 * row + 1] = total_acgt;
    }
    __syncthreads();
  }
}
