// Gather records of a sequence batch into fixed-width rows through a 256-entry lookup table.
//
// Serves one-hot encoding (a table of packed one-hot rows: 4 x uint8 = one 32-bit word,
// 4 x float16 = 64 bits, 4 x float32 = 128 bits) and per-base tokenisation (a table of
// 32-bit token ids). Each thread writes one output slot with a single word store, so a warp
// reads 32 consecutive bytes and writes 32 consecutive words (coalesced both ways).
//
// Layout: data uint8 (a batch's bases back to back, or a whole chromosome), and per row the
// placement (int64): slots dst..dst+count-1 take bytes data[first..first+count-1]; other slots
// get the pad word. out is (n_rows, width) words. Grid: x covers the width, y strides over rows.

#define GG_DEFINE_GATHER(NAME, WORD)                                                          \
  extern "C" __global__ void NAME(                                                            \
      const unsigned char* __restrict__ data, const long long* __restrict__ first,            \
      const long long* __restrict__ dst, const long long* __restrict__ count,                 \
      const WORD* __restrict__ lut,                                                           \
      const WORD* __restrict__ pad, const long long n_rows, const int width,                  \
      WORD* __restrict__ out) {                                                               \
    __shared__ WORD s_lut[256];                                                               \
    for (int i = threadIdx.x; i < 256; i += blockDim.x) s_lut[i] = lut[i];                    \
    __syncthreads();                                                                          \
    const WORD pad_word = pad[0];                                                             \
    for (long long row = blockIdx.y; row < n_rows; row += gridDim.y) {                        \
      const long long slot0 = dst[row];                                                       \
      const long long n_bases = count[row];                                                   \
      const long long base = first[row];                                                      \
      WORD* out_row = out + row * (long long)width;                                           \
      for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < width;                          \
           j += gridDim.x * blockDim.x) {                                                     \
        const long long rel = (long long)j - slot0;                                           \
        out_row[j] = (rel >= 0 && rel < n_bases) ? s_lut[data[base + rel]] : pad_word;      \
      }                                                                                       \
    }                                                                                         \
  }

GG_DEFINE_GATHER(gather_words32, unsigned int)
GG_DEFINE_GATHER(gather_words64, uint2)
GG_DEFINE_GATHER(gather_words128, uint4)
