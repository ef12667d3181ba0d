// Kernels for the GPU emulator's own tests (tests/gpu_emulator/test_emulator.py): a few
// correct ones whose results are checked, and one per kind of bug the emulator must report.
// Launched with 1-D blocks of 64 threads unless a check says otherwise.

extern "C" __global__ void copy(const int* __restrict__ in, const int n, int* __restrict__ out) {
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    out[i] = in[i];
  }
}

// Per warp: the sum (shuffles), the lanes with odd values (ballot), the xor-butterfly maximum.
extern "C" __global__ void warp_ops(const int* __restrict__ in, int* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  const int v = in[i];
  int sum = v;
  for (int delta = 16; delta > 0; delta >>= 1) sum += __shfl_down_sync(0xffffffffu, sum, delta);
  const unsigned odd = __ballot_sync(0xffffffffu, v & 1);
  int best = v;
  for (int m = 16; m > 0; m >>= 1) best = max(best, __shfl_xor_sync(0xffffffffu, best, m));
  const int first = __shfl_sync(0xffffffffu, v, 0);
  if ((threadIdx.x & 31) == 0) {
    const int warp = i / 32;
    out[4 * warp] = sum;
    out[4 * warp + 1] = (int)odd;
    out[4 * warp + 2] = best;
    out[4 * warp + 3] = first;
  }
}

// Block-wide histogram of in (values 0..15) in shared memory, then added to out atomically.
extern "C" __global__ void histogram(const int* __restrict__ in, const int n,
                                     int* __restrict__ out) {
  __shared__ int s_hist[16];
  if (threadIdx.x < 16) s_hist[threadIdx.x] = 0;
  __syncthreads();
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    atomicAdd(&s_hist[in[i]], 1);
  }
  __syncthreads();
  if (threadIdx.x < 16) atomicAdd(&out[threadIdx.x], s_hist[threadIdx.x]);
  const int live = __syncthreads_count(1);
  if (threadIdx.x == 0 && live != (int)blockDim.x) out[0] = -1;
}

// Sums in[0..n) per block through dynamic shared memory (blockDim.x ints).
extern "C" __global__ void block_sum(const int* __restrict__ in, const int n,
                                     long long* __restrict__ out) {
  extern __shared__ int s_part[];
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  s_part[threadIdx.x] = i < n ? in[i] : 0;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long total = 0;
    for (unsigned t = 0; t < blockDim.x; ++t) total += s_part[t];
    out[blockIdx.x] = total;
  }
}

// --- bugs ------------------------------------------------------------------------------------
extern "C" __global__ void read_past_end(const int* __restrict__ in, const int n,
                                         int* __restrict__ out) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = in[i] + in[i + 1];  // in[n] is one past the end
}

extern "C" __global__ void write_before_start(int* __restrict__ out) {
  out[(int)threadIdx.x - 1] = 1;  // thread 0 writes out[-1]
}

extern "C" __global__ void write_to_const(const int* __restrict__ in, int* __restrict__ out) {
  const_cast<int*>(in)[threadIdx.x] = 0;
  out[threadIdx.x] = 1;
}

extern "C" __global__ void missing_syncthreads(const int* __restrict__ in,
                                               int* __restrict__ out) {
  __shared__ int s_value[64];
  s_value[threadIdx.x] = in[threadIdx.x];
  // no __syncthreads(): the neighbour's slot may not be written yet
  out[threadIdx.x] = s_value[(threadIdx.x + 1) % blockDim.x];
}

extern "C" __global__ void blocks_race(int* __restrict__ out) {
  if (threadIdx.x == 0) out[0] = blockIdx.x;  // the last block to run wins
}

extern "C" __global__ void uninitialised_shared(int* __restrict__ out) {
  __shared__ int s_value[64];
  out[threadIdx.x] = s_value[threadIdx.x];
}

extern "C" __global__ void divergent_barrier(int* __restrict__ out) {
  if (threadIdx.x < 16) {
    __syncthreads();
  } else {
    __syncwarp();
  }
  out[threadIdx.x] = 1;
}

extern "C" __global__ void dynamic_shared_overrun(int* __restrict__ out) {
  extern __shared__ int s_data[];
  s_data[threadIdx.x] = 1;  // launched with fewer than blockDim.x ints of dynamic shared memory
  out[threadIdx.x] = 1;
}

extern "C" __global__ void divide_by_zero(const int* __restrict__ in, int* __restrict__ out) {
  out[threadIdx.x] = 100 / in[threadIdx.x];
}

extern "C" __global__ void failed_assert(const int* __restrict__ in, int* __restrict__ out) {
  assert(in[threadIdx.x] >= 0);
  out[threadIdx.x] = in[threadIdx.x];
}

__device__ int deep(int depth) {
  volatile char local[4096];
  local[0] = (char)depth;
  return depth > 0 ? deep(depth - 1) + local[0] : 0;
}

extern "C" __global__ void stack_overflow(int* __restrict__ out) {
  out[threadIdx.x] = deep(1000);  // ~4 MiB of local memory per thread
}
