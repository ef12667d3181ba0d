// Reverse-complement every record of a sequence batch: out[start + len - 1 - j] =
// complement[data[start + j]]. data/out uint8 (total bases), offsets int64 (n_rows + 1),
// complement a 256-byte table (IUPAC complements, case kept). Grid: x covers a record,
// y strides over records.

extern "C" __global__ void reverse_complement_bytes(
    const unsigned char* __restrict__ data, const long long* __restrict__ offsets,
    const unsigned char* __restrict__ complement, const long long n_rows,
    unsigned char* __restrict__ out) {
  __shared__ unsigned char s_comp[256];
  for (int i = threadIdx.x; i < 256; i += blockDim.x) s_comp[i] = complement[i];
  __syncthreads();
  for (long long row = blockIdx.y; row < n_rows; row += gridDim.y) {
    const long long start = offsets[row];
    const long long length = offsets[row + 1] - start;
    for (long long j = blockIdx.x * (long long)blockDim.x + threadIdx.x; j < length;
         j += (long long)gridDim.x * blockDim.x) {
      out[start + length - 1 - j] = s_comp[data[start + j]];
    }
  }
}
