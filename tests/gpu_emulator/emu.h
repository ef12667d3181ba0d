// CUDA device-side API for the CPU emulator (see tests/gpu_emulator/__init__.py).
//
// build.py compiles every kernels/*.cu with g++ after including this header: the CUDA
// keywords become C++ (or nothing), the built-in variables are globals the runtime
// (emu_runtime.cpp) sets before resuming a CUDA thread, and the synchronising intrinsics call
// into the runtime, which runs the threads of a block as fibers on one OS thread.
//
// Emulated: threadIdx/blockIdx/blockDim/gridDim/warpSize; __syncthreads(_count/_and/_or),
// __syncwarp; __shfl(_up/_down/_xor)_sync, __ballot_sync, __any_sync, __all_sync (warp-scoped
// barriers over the lanes of the mask); static and dynamic __shared__ memory (one copy per block,
// filled with a poison byte at each block start); atomics on int / unsigned / unsigned long long
// / float / double (plain read-modify-write: only one CUDA thread runs at a time); __popc(ll),
// __clz(ll), __ffs(ll), __ldg, min/max, __threadfence*, __trap, assert, printf; vector types
// (char1..double4) with make_* functions.
//
// Not emulated: warp-lockstep execution (a warp's threads run one after another between
// synchronisation points, so code that relies on implicit warp synchrony without *_sync
// intrinsics is not checked), __activemask, cooperative groups, textures/surfaces, __constant__
// memory written from the host, half precision, memory fences beyond sequential consistency,
// and any #include (kernels must be self-contained, as NVRTC sees them without include paths).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <type_traits>
#include <utility>

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

// --- keywords --------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __constant__
#define __forceinline__ inline __attribute__((always_inline))
#define __noinline__ __attribute__((noinline))
#define __align__(n) __attribute__((aligned(n)))
#define __launch_bounds__(...)
// __restrict__ is a GNU keyword already. __shared__ is rewritten by build.py.

// --- vector types ----------------------------------------------------------------------------
template <class T>
struct emu_lanes {  // component type and lane count of a (vector) type
  using type = T;
  static constexpr int lanes = 1;
};

#define EMU_VEC_ALIGN(T, n) ((sizeof(T) * (n)) < 16 ? (sizeof(T) * (n)) : 16)
#define EMU_VECTOR_TYPES(NAME, T)                                                             \
  struct NAME##1 { T x; };                                                                    \
  struct __attribute__((aligned(EMU_VEC_ALIGN(T, 2)))) NAME##2 { T x, y; };                   \
  struct NAME##3 { T x, y, z; };                                                              \
  struct __attribute__((aligned(EMU_VEC_ALIGN(T, 4)))) NAME##4 { T x, y, z, w; };             \
  inline NAME##1 make_##NAME##1(T x) { return {x}; }                                          \
  inline NAME##2 make_##NAME##2(T x, T y) { return {x, y}; }                                  \
  inline NAME##3 make_##NAME##3(T x, T y, T z) { return {x, y, z}; }                          \
  inline NAME##4 make_##NAME##4(T x, T y, T z, T w) { return {x, y, z, w}; }                  \
  template <> struct emu_lanes<NAME##1> { using type = T; static constexpr int lanes = 1; };  \
  template <> struct emu_lanes<NAME##2> { using type = T; static constexpr int lanes = 2; };  \
  template <> struct emu_lanes<NAME##3> { using type = T; static constexpr int lanes = 3; };  \
  template <> struct emu_lanes<NAME##4> { using type = T; static constexpr int lanes = 4; };

EMU_VECTOR_TYPES(char, signed char)
EMU_VECTOR_TYPES(uchar, unsigned char)
EMU_VECTOR_TYPES(short, short)
EMU_VECTOR_TYPES(ushort, unsigned short)
EMU_VECTOR_TYPES(int, int)
EMU_VECTOR_TYPES(uint, unsigned int)
EMU_VECTOR_TYPES(long, long)
EMU_VECTOR_TYPES(ulong, unsigned long)
EMU_VECTOR_TYPES(longlong, long long)
EMU_VECTOR_TYPES(ulonglong, unsigned long long)
EMU_VECTOR_TYPES(float, float)
EMU_VECTOR_TYPES(double, double)
#undef EMU_VECTOR_TYPES

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
  constexpr dim3(unsigned int x_ = 1, unsigned int y_ = 1, unsigned int z_ = 1)
      : x(x_), y(y_), z(z_) {}
};

// --- built-in variables (defined in emu_runtime.cpp) -----------------------------------------
extern uint3 threadIdx;
extern uint3 blockIdx;
extern dim3 blockDim;
extern dim3 gridDim;
constexpr int warpSize = 32;

// --- runtime entry points used by the intrinsics ----------------------------------------------
namespace emu {
void block_barrier();
// Deposits `value`, waits for the lanes of `mask`, and returns the value deposited by lane
// `src_lane` of this warp (a poison value when that lane does not exist, has exited or is not
// in `mask`). src_lane < 0: no exchange, only the barrier.
unsigned long long warp_exchange(unsigned mask, unsigned long long value, int src_lane);
// Block-wide reduction of a predicate: 0 = count, 1 = and, 2 = or.
int block_reduce(int predicate, int op);
// Warp-wide ballot over the lanes of `mask`.
unsigned warp_ballot(unsigned mask, int predicate);
unsigned lane_id();
void* dynamic_shared();
void shared_declared(void* address, std::size_t bytes);
[[noreturn]] void trap(const char* what, const char* file, int line);
}  // namespace emu

// --- synchronisation --------------------------------------------------------------------------
inline void __syncthreads() { emu::block_barrier(); }
inline int __syncthreads_count(int p) { return emu::block_reduce(p, 0); }
inline int __syncthreads_and(int p) { return emu::block_reduce(p, 1); }
inline int __syncthreads_or(int p) { return emu::block_reduce(p, 2); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { emu::warp_exchange(mask, 0, -1); }
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}

template <class T>
inline T emu_shuffle(unsigned mask, T var, int src_lane) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>, "shuffle of a >8-byte type");
  unsigned long long bits = 0;
  std::memcpy(&bits, &var, sizeof(T));
  bits = emu::warp_exchange(mask, bits, src_lane);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}
template <class T>
inline T __shfl_sync(unsigned mask, T var, int src, int width = warpSize) {
  const int lane = (int)emu::lane_id();
  return emu_shuffle(mask, var, (lane & ~(width - 1)) + (src & (width - 1)));
}
template <class T>
inline T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = (int)emu::lane_id();
  const int in_segment = lane & (width - 1);
  return emu_shuffle(mask, var, in_segment >= (int)delta ? lane - (int)delta : lane);
}
template <class T>
inline T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  const int lane = (int)emu::lane_id();
  const int in_segment = lane & (width - 1);
  return emu_shuffle(mask, var, in_segment + (int)delta < width ? lane + (int)delta : lane);
}
template <class T>
inline T __shfl_xor_sync(unsigned mask, T var, int lane_mask, int width = warpSize) {
  const int lane = (int)emu::lane_id();
  const int src = lane ^ lane_mask;
  return emu_shuffle(mask, var, src < (lane & ~(width - 1)) + width ? src : lane);
}
inline unsigned __ballot_sync(unsigned mask, int p) { return emu::warp_ballot(mask, p); }
inline int __any_sync(unsigned mask, int p) { return emu::warp_ballot(mask, p) != 0; }
inline int __all_sync(unsigned mask, int p) {
  return emu::warp_ballot(mask, !p) == 0;  // no lane of mask has !p
}

// --- atomics (one CUDA thread runs at a time, so plain read-modify-write is atomic) -----------
#define EMU_ATOMIC(NAME, T, EXPR)                 \
  inline T NAME(T* address, T val) {              \
    const T old = *address;                       \
    *address = (EXPR);                            \
    return old;                                   \
  }
#define EMU_ATOMIC_INT_FAMILY(T)                                       \
  EMU_ATOMIC(atomicAdd, T, old + val)                                  \
  EMU_ATOMIC(atomicExch, T, val)                                       \
  EMU_ATOMIC(atomicMin, T, val < old ? val : old)                      \
  EMU_ATOMIC(atomicMax, T, val > old ? val : old)                      \
  EMU_ATOMIC(atomicAnd, T, old & val)                                  \
  EMU_ATOMIC(atomicOr, T, old | val)                                   \
  EMU_ATOMIC(atomicXor, T, old ^ val)                                  \
  inline T atomicCAS(T* address, T compare, T val) {                   \
    const T old = *address;                                            \
    if (old == compare) *address = val;                                \
    return old;                                                        \
  }
EMU_ATOMIC_INT_FAMILY(int)
EMU_ATOMIC_INT_FAMILY(unsigned int)
EMU_ATOMIC_INT_FAMILY(unsigned long long)
EMU_ATOMIC(atomicSub, int, old - val)
EMU_ATOMIC(atomicSub, unsigned int, old - val)
EMU_ATOMIC(atomicMin, long long, val < old ? val : old)
EMU_ATOMIC(atomicMax, long long, val > old ? val : old)
EMU_ATOMIC(atomicAdd, float, old + val)
EMU_ATOMIC(atomicAdd, double, old + val)
EMU_ATOMIC(atomicExch, float, val)
EMU_ATOMIC(atomicInc, unsigned int, old >= val ? 0u : old + 1)
EMU_ATOMIC(atomicDec, unsigned int, (old == 0 || old > val) ? val : old - 1)
#undef EMU_ATOMIC_INT_FAMILY
#undef EMU_ATOMIC

// --- integer intrinsics and helpers -----------------------------------------------------------
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __clz(int x) { return x == 0 ? 32 : __builtin_clz((unsigned)x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
template <class T>
inline T __ldg(const T* p) {
  return *p;
}
template <class A, class B>
inline std::common_type_t<A, B> min(A a, B b) {
  return b < a ? b : a;
}
template <class A, class B>
inline std::common_type_t<A, B> max(A a, B b) {
  return a < b ? b : a;
}
inline void __trap() { emu::trap("__trap()", "", 0); }
#define assert(cond) ((cond) ? (void)0 : emu::trap("assert(" #cond ")", __FILE__, __LINE__))

// --- kernel launch glue (used by the wrappers build.py appends to each module) ---------------
extern "C" {
struct EmuLaunch {  // mirrors cupy/_emulator.py
  unsigned grid[3], block[3];
  unsigned long long dynamic_shared;  // bytes
  int reverse;                        // 1: run blocks and threads in reverse order
  int poison;                         // byte written into shared memory at each block start
};
struct EmuResult {  // mirrors cupy/_emulator.py
  int status;       // 0 ok, 1 memory fault, 2 arithmetic fault, 3 sync error, 4 trap, 5 config
  int fault_write;  // 1 write, 0 read, -1 unknown
  unsigned long long fault_address;
  unsigned block[3], thread[3];
  unsigned long long static_shared;  // bytes of __shared__ variables the kernel declared
  char message[1024];
};
struct EmuParam {  // mirrors cupy/_emulator.py
  int pointer;     // 1: T*, 0: a value
  int constant;    // pointer to const
  int kind;        // 'i', 'u', 'f', 'b' of the (pointed-to) component type; '?' unsupported
  int size;        // bytes of that component
  int lanes;       // components per element (vector types), 1 otherwise
};
}

namespace emu {
using Thunk = void (*)(void**);
int launch(const EmuLaunch* config, void** args, EmuResult* result, Thunk thunk);

template <class... P, std::size_t... I>
inline void call_kernel(void (*kernel)(P...), void** args, std::index_sequence<I...>) {
  kernel(*static_cast<std::remove_cv_t<P>*>(args[I])...);
}
// The per-kernel entry point: args[i] points at the value of parameter i.
template <auto Kernel>
void thunk(void** args) {
  [&]<class... P>(void (*kernel)(P...)) {
    call_kernel(kernel, args, std::index_sequence_for<P...>{});
  }(Kernel);
}

template <class T>
inline void describe_type(EmuParam* out) {
  using C = typename emu_lanes<std::remove_cv_t<T>>::type;
  out->lanes = emu_lanes<std::remove_cv_t<T>>::lanes;
  out->size = (int)sizeof(C);
  if constexpr (std::is_same_v<C, bool>) {
    out->kind = 'b';
  } else if constexpr (std::is_floating_point_v<C>) {
    out->kind = 'f';
  } else if constexpr (std::is_integral_v<C>) {
    out->kind = std::is_signed_v<C> ? 'i' : 'u';
  } else {
    out->kind = '?';
  }
}
template <class P>
inline void describe_param(EmuParam* out) {
  out->pointer = std::is_pointer_v<P>;
  if constexpr (std::is_pointer_v<P>) {
    using T = std::remove_pointer_t<P>;
    out->constant = std::is_const_v<T>;
    describe_type<T>(out);
  } else {
    out->constant = 0;
    describe_type<P>(out);
  }
}
template <class... P>
inline int describe(void (*)(P...), EmuParam* out, int capacity) {
  int i = 0;
  ((i < capacity ? describe_param<P>(out + i) : (void)0, ++i), ...);
  return (int)sizeof...(P);
}
}  // namespace emu
