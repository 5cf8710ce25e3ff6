// Probes of the execution model and kernels with planted defects, for the emulated device's own tests
// (test/emulator.test.ts). See selftest.h. Each probe returns what it computed, or the CUDA error it
// provoked; probes that provoke a sticky error are run by the tests in a child process.
#if defined(AXN_CUDA_SELFTEST)
#include "selftest.h"

#include <cstring>
#include <functional>
#include <map>

#include "../common.h"
#include "../scratch.h"
#include "context.h"
#include "launch.h"

namespace axn::cuda::selftest {
namespace {

// Block sum of blockDim.x (a power of 2, ≤ 1024) values by a shared-memory tree. `racy` leaves out the
// barrier after the loads: a thread then adds a neighbour's slot before the neighbour has written it.
__global__ void reduce_kernel(const float* x, float* out, bool racy) {
  __shared__ float sh[1024];
  const unsigned t = threadIdx.x;
  sh[t] = x[t];
  if (!racy) __syncthreads();
  for (unsigned s = blockDim.x / 2; s > 0; s >>= 1) {
    if (t < s) sh[t] += sh[t + s];
    __syncthreads();
  }
  if (t == 0) out[0] = sh[0];
}

constexpr int kShuffleOutputs = 15;

// Every warp intrinsic once; out[k·n + t] is thread t's k-th result (n = blockDim.x).
__global__ void shuffle_kernel(float* out) {
  const int t = threadIdx.x, lane = t & 31, n = blockDim.x;
  const float v = (float)(t + 1);
  int k = 0;
  out[k++ * n + t] = __shfl_sync(0xffffffffu, v, (lane * 7 + 3) % 32);
  out[k++ * n + t] = __shfl_sync(0xffffffffu, v, lane + 40, 16);
  out[k++ * n + t] = __shfl_up_sync(0xffffffffu, v, 3, 16);
  out[k++ * n + t] = __shfl_down_sync(0xffffffffu, v, 5, 8);
  out[k++ * n + t] = __shfl_xor_sync(0xffffffffu, v, 1);
  out[k++ * n + t] = __shfl_xor_sync(0xffffffffu, v, 16, 16);
  out[k++ * n + t] = (float)__any_sync(0xffffffffu, lane == 5);
  out[k++ * n + t] = (float)__all_sync(0xffffffffu, lane < 31);
  const unsigned ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
  out[k++ * n + t] = (float)(ballot & 0xffffu);
  out[k++ * n + t] = (float)(ballot >> 16);
  const unsigned half = lane < 16 ? 0x0000ffffu : 0xffff0000u;
  out[k++ * n + t] = __shfl_xor_sync(half, v, 2);
  const double d = (double)t + 0.25;
  out[k++ * n + t] = (float)__shfl_down_sync(0xffffffffu, d, 1);
  out[k++ * n + t] = (float)__syncthreads_count(t % 4 == 0);
  out[k++ * n + t] = (float)__syncthreads_and(t < n);
  out[k++ * n + t] = (float)__syncthreads_or(t == n - 1);
}

__global__ void atomics_kernel(int* count, float* sum, int* maxT) {
  atomicAdd(count, 1);
  atomicAdd(sum, 1.0f);
  atomicMax(maxT, (int)threadIdx.x);
}

// Dynamic shared memory of n floats: written by all threads, then read at the next index.
__global__ void dynamic_shared_kernel(float* out, int n) {
  float* s = dynamicShared<float>();
  for (int i = threadIdx.x; i < n; i += blockDim.x) s[i] = (float)i;
  __syncthreads();
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = s[(i + 1) % n];
}

__global__ void fill_kernel(float* p, int n, float v) {
  for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < n; i += blockDim.x * gridDim.x) p[i] = v;
}

// Planted: writes one element past the end of p (n elements).
__global__ void out_of_bounds_kernel(float* p, int n) {
  if (threadIdx.x == 0) p[n] = 1.0f;
}

// Planted: lanes 16–31 execute a shuffle whose mask names only lanes 0–15.
__global__ void mask_leaves_out_kernel(float* p) {
  float v = p[threadIdx.x];
  v = __shfl_xor_sync(0x0000ffffu, v, 1);
  p[threadIdx.x] = v;
}

// Planted: lanes 16–31 exit, the others shuffle with a full mask.
__global__ void mask_names_exited_kernel(float* p) {
  if ((threadIdx.x & 31) >= 16) return;
  float v = p[threadIdx.x];
  v = __shfl_xor_sync(0xffffffffu, v, 1);
  p[threadIdx.x] = v;
}

// Planted: half of the block returns before a __syncthreads the other half waits at.
__global__ void barrier_divergence_kernel(float* p) {
  if (threadIdx.x >= blockDim.x / 2) return;
  p[threadIdx.x] = 1.0f;
  __syncthreads();
  p[threadIdx.x] += 1.0f;
}

// Planted: the two halves of the block wait at different __syncthreads.
__global__ void barrier_sites_kernel(float* p) {
  if (threadIdx.x < blockDim.x / 2) {
    p[threadIdx.x] = 1.0f;
    __syncthreads();
  } else {
    p[threadIdx.x] = 2.0f;
    __syncthreads();
  }
}

std::vector<float> download(const float* d, size_t n) {
  std::vector<float> h(n);
  copyDeviceToHost(h.data(), d, n * sizeof(float));
  return h;
}

Result fromFloats(const std::vector<float>& v) {
  Result r;
  r.values.assign(v.begin(), v.end());
  return r;
}

using Probe = std::function<Result(const std::vector<double>&)>;

double arg(const std::vector<double>& a, size_t i, double dflt) { return i < a.size() ? a[i] : dflt; }

const std::map<std::string, Probe>& probes() {
  static const std::map<std::string, Probe> m = {
      // [threads = 256, racy = 0] -> [sum of 1..threads]
      {"reduce",
       [](const std::vector<double>& a) {
         const int n = (int)arg(a, 0, 256);
         std::vector<float> x(n);
         for (int i = 0; i < n; i++) x[i] = (float)(i + 1);
         Scratch dx(true, n * sizeof(float)), dout(true, sizeof(float));
         copyHostToDevice(dx.as<float>(), x.data(), n * sizeof(float));
         AXN_LAUNCH("selftest.reduce", reduce_kernel, 1, n, 0, dx.as<float>(), dout.as<float>(), arg(a, 1, 0) != 0);
         return fromFloats(download(dout.as<float>(), 1));
       }},
      // [threads = 64] -> kShuffleOutputs × threads results
      {"shuffle",
       [](const std::vector<double>& a) {
         const int n = (int)arg(a, 0, 64);
         Scratch out(true, sizeof(float) * kShuffleOutputs * n);
         AXN_LAUNCH("selftest.shuffle", shuffle_kernel, 1, n, 0, out.as<float>());
         return fromFloats(download(out.as<float>(), (size_t)kShuffleOutputs * n));
       }},
      // [blocks = 8, threads = 128] -> [count, float sum, max threadIdx]
      {"atomics",
       [](const std::vector<double>& a) {
         Scratch c(true, 3 * sizeof(int));
         memsetZero(c.as<void>(), 3 * sizeof(int));
         int* ci = c.as<int>();
         AXN_LAUNCH("selftest.atomics", atomics_kernel, (int)arg(a, 0, 8), (int)arg(a, 1, 128), 0, ci,
                    reinterpret_cast<float*>(ci + 1), ci + 2);
         int h[3];
         copyDeviceToHost(h, ci, sizeof h);
         float s;
         std::memcpy(&s, &h[1], 4);
         Result r;
         r.values = {(double)h[0], (double)s, (double)h[2]};
         return r;
       }},
      // [floats, opt-in bytes = 0 (none)] -> the rotated indices, or the launch error
      {"dynamicShared",
       [](const std::vector<double>& a) {
         const int n = (int)arg(a, 0, 1000);
         const int optin = (int)arg(a, 1, 0);
         Result r;
         try {
           if (optin > 0)
             AXN_CUDA_CHECK(cudaFuncSetAttribute(dynamic_shared_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin),
                            "selftest.dynamicShared");
           Scratch out(true, sizeof(float) * n);
           AXN_LAUNCH("selftest.dynamicShared", dynamic_shared_kernel, 1, 128, sizeof(float) * n, out.as<float>(), n);
           r = fromFloats(download(out.as<float>(), n));
         } catch (const Error& e) {
           r.error = e.what();
         }
         return r;
       }},
      // [gx, gy, gz, bx, by, bz, shmem] -> the launch error ("" when it ran) and [value written]
      {"config",
       [](const std::vector<double>& a) {
         Result r;
         Scratch p(true, sizeof(float));
         memsetZero(p.as<void>(), sizeof(float));
         try {
           AXN_LAUNCH("selftest.config", fill_kernel,
                      dim3((unsigned)arg(a, 0, 1), (unsigned)arg(a, 1, 1), (unsigned)arg(a, 2, 1)),
                      dim3((unsigned)arg(a, 3, 1), (unsigned)arg(a, 4, 1), (unsigned)arg(a, 5, 1)), (size_t)arg(a, 6, 0),
                      p.as<float>(), 1, 3.0f);
         } catch (const Error& e) {
           r.error = e.what();
         }
         r.values.push_back(download(p.as<float>(), 1)[0]);
         return r;
       }},
      // [] -> the launch error of a kernel handed a host pointer (sticky: run in a child process)
      {"hostPointer",
       [](const std::vector<double>&) {
         Result r;
         std::vector<float> host(16, 0.0f);
         try {
           AXN_LAUNCH("selftest.hostPointer", fill_kernel, 1, 16, 0, host.data(), 16, 1.0f);
           synchronize();
         } catch (const Error& e) {
           r.error = e.what();
         }
         return r;
       }},
      // [n] -> writes p[n] on a device buffer of n floats (AddressSanitizer aborts the process)
      {"outOfBounds",
       [](const std::vector<double>& a) {
         const int n = (int)arg(a, 0, 100);
         Scratch p(true, sizeof(float) * n);
         AXN_LAUNCH("selftest.outOfBounds", out_of_bounds_kernel, 1, 32, 0, p.as<float>(), n);
         synchronize();
         return Result{};
       }},
      // [which] -> the error of a misused shuffle or barrier (sticky: run in a child process)
      {"planted",
       [](const std::vector<double>& a) {
         const int which = (int)arg(a, 0, 0);
         Result r;
         Scratch p(true, sizeof(float) * 128);
         memsetZero(p.as<void>(), sizeof(float) * 128);
         try {
           if (which == 0) AXN_LAUNCH("selftest.maskLeavesOut", mask_leaves_out_kernel, 1, 32, 0, p.as<float>());
           if (which == 1) AXN_LAUNCH("selftest.maskNamesExited", mask_names_exited_kernel, 1, 32, 0, p.as<float>());
           if (which == 2) AXN_LAUNCH("selftest.barrierDivergence", barrier_divergence_kernel, 1, 128, 0, p.as<float>());
           if (which == 3) AXN_LAUNCH("selftest.barrierSites", barrier_sites_kernel, 1, 128, 0, p.as<float>());
           synchronize();
         } catch (const Error& e) {
           r.error = e.what();
         }
         return r;
       }},
      // [] -> [pinned value read without waiting, after waiting]: the device runs when the host waits
      {"unsyncedRead",
       [](const std::vector<double>&) {
         Scratch d(true, sizeof(float));
         float* pinned = nullptr;
         AXN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned), sizeof(float)), "selftest.unsyncedRead");
         *pinned = -1.0f;
         AXN_LAUNCH("selftest.unsyncedRead", fill_kernel, 1, 1, 0, d.as<float>(), 1, 7.0f);
         AXN_CUDA_CHECK(cudaMemcpyAsync(pinned, d.as<float>(), sizeof(float), cudaMemcpyDeviceToHost, stream()),
                        "selftest.unsyncedRead");
         const float before = *pinned;  // the planted defect: no synchronisation
         synchronize();
         const float after = *pinned;
         AXN_CUDA_CHECK(cudaFreeHost(pinned), "selftest.unsyncedRead");
         Result r;
         r.values = {before, after};
         return r;
       }},
      // [] -> the cuBLAS statuses of calls with bad arguments, then of a good one
      {"cublasArgs",
       [](const std::vector<double>&) {
         Scratch A(true, sizeof(float) * 8), B(true, sizeof(float) * 6), C(true, sizeof(float) * 12);
         const float* a = A.as<float>();
         const float* b = B.as<float>();
         float* c = C.as<float>();
         const float one = 1.0f, zero = 0.0f;
         cublasHandle_t h = cublas();
         const cublasOperation_t N = CUBLAS_OP_N, T = CUBLAS_OP_T;
         Result r;
         // C (4×3) = A (4×2) · B (2×3), column-major
         r.values = {
             (double)cublasSgemm(h, N, N, 4, 3, 2, &one, a, 3, b, 2, &zero, c, 4),        // lda < m
             (double)cublasSgemm(h, N, N, 4, 3, 2, &one, a, 4, b, 1, &zero, c, 4),        // ldb < k
             (double)cublasSgemm(h, N, N, 4, 3, 2, &one, a, 4, b, 2, &zero, c, 3),        // ldc < m
             (double)cublasSgemm(h, T, N, 4, 3, 2, &one, a, 1, b, 2, &zero, c, 4),        // lda < k (A transposed)
             (double)cublasSgemm(h, N, N, -1, 3, 2, &one, a, 4, b, 2, &zero, c, 4),       // m < 0
             (double)cublasSgemm(h, N, N, 4, 3, 2, nullptr, a, 4, b, 2, &zero, c, 4),     // no alpha
             (double)cublasSgemmStridedBatched(h, N, N, 4, 3, 2, &one, a, 4, 0, b, 2, 0, &zero, c, 4, 0, -1),
             (double)cublasSgemm(nullptr, N, N, 4, 3, 2, &one, a, 4, b, 2, &zero, c, 4),  // no handle
             (double)cublasSgemm(h, N, N, 4, 3, 2, &one, a, 4, b, 2, &zero, c, 4),        // good
         };
         synchronize();
         return r;
       }},
      // [] -> the status and error of a GEMM whose A runs past its allocation (sticky: child process)
      {"cublasOutOfRange",
       [](const std::vector<double>&) {
         Scratch A(true, sizeof(float) * 7), B(true, sizeof(float) * 6), C(true, sizeof(float) * 12);
         const float one = 1.0f, zero = 0.0f;
         Result r;
         r.values = {(double)cublasSgemm(cublas(), CUBLAS_OP_N, CUBLAS_OP_N, 4, 3, 2, &one, A.as<float>(), 4,
                                         B.as<float>(), 2, &zero, C.as<float>(), 4)};
         try {
           synchronize();
         } catch (const Error& e) {
           r.error = e.what();
         }
         return r;
       }},
  };
  return m;
}

}  // namespace

Result run(const std::string& name, const std::vector<double>& args) {
  auto it = probes().find(name);
  if (it == probes().end()) throw Error("cudaSelfTest: no probe named '" + name + "'");
  return it->second(args);
}

}  // namespace axn::cuda::selftest
#endif  // AXN_CUDA_SELFTEST
