// k-mer counting. Bases map to 2-bit digits in A,C,G,T order through a 256-byte table
// (4 = not A/C/G/T); a window containing such a base is skipped. A k-mer's code is its digits
// read as a base-4 number (first base most significant), so codes sort lexicographically.
// With canonical != 0 a k-mer and its reverse complement share the smaller code.
// column_of_code (int32, 4**k) maps a code to its output column.

__device__ __forceinline__ bool kmer_key(const unsigned char* __restrict__ bases,
                                         const unsigned char* __restrict__ digits, int k,
                                         int canonical, unsigned long long* key) {
  unsigned long long code = 0, rc = 0;
  for (int i = 0; i < k; ++i) {
    const unsigned long long d = digits[bases[i]];
    if (d > 3) return false;
    code = (code << 2) | d;
    rc |= (3ull - d) << (2 * i);
  }
  *key = (canonical && rc < code) ? rc : code;
  return true;
}

// Dense counts: one block per record (grid-stride over records). With use_shared != 0 the
// block builds its histogram in shared memory (n_columns ints of dynamic shared memory) and
// writes the row once; otherwise it adds with global atomics into out, which must be zeroed.
// out: (n_rows, n_columns) int32.
extern "C" __global__ void kmer_counts_dense(
    const unsigned char* __restrict__ data, const long long* __restrict__ offsets,
    const unsigned char* __restrict__ digits, const int* __restrict__ column_of_code,
    const int k, const int canonical, const long long n_rows, const int n_columns,
    const int use_shared, int* __restrict__ out) {
  extern __shared__ int s_hist[];
  __shared__ unsigned char s_digits[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s_digits[i] = digits[i];
  for (long long row = blockIdx.x; row < n_rows; row += gridDim.x) {
    int* hist = use_shared ? s_hist : out + row * (long long)n_columns;
    if (use_shared) {
      for (int c = threadIdx.x; c < n_columns; c += blockDim.x) s_hist[c] = 0;
    }
    __syncthreads();
    const long long start = offsets[row];
    const long long n_windows = offsets[row + 1] - start - k + 1;
    for (long long p = threadIdx.x; p < n_windows; p += blockDim.x) {
      unsigned long long key;
      if (kmer_key(data + start + p, s_digits, k, canonical, &key)) {
        atomicAdd(&hist[column_of_code[key]], 1);
      }
    }
    __syncthreads();
    if (use_shared) {
      int* out_row = out + row * (long long)n_columns;
      for (int c = threadIdx.x; c < n_columns; c += blockDim.x) out_row[c] = s_hist[c];
      __syncthreads();
    }
  }
}

// Per-base codes for the sparse path: codes[start + p] = key of the window starting at base p
// of its record, or -1 when the window has a non-ACGT base or runs past the record's end.
// codes: int64, one per base. Grid: x covers a record, y strides over records.
extern "C" __global__ void kmer_codes(
    const unsigned char* __restrict__ data, const long long* __restrict__ offsets,
    const unsigned char* __restrict__ digits, const int k, const int canonical,
    const long long n_rows, long long* __restrict__ codes) {
  __shared__ unsigned char s_digits[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s_digits[i] = digits[i];
  __syncthreads();
  for (long long row = blockIdx.y; row < n_rows; row += gridDim.y) {
    const long long start = offsets[row];
    const long long length = offsets[row + 1] - start;
    for (long long p = blockIdx.x * (long long)blockDim.x + threadIdx.x; p < length;
         p += (long long)gridDim.x * blockDim.x) {
      unsigned long long key;
      const bool ok = p + k <= length && kmer_key(data + start + p, s_digits, k, canonical, &key);
      codes[start + p] = ok ? (long long)key : -1ll;
    }
  }
}
