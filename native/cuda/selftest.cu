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

__global__ void copy_kernel(const float* src, float* dst, int n) {
  for (int i = threadIdx.x + blockIdx.x * blockDim.x; i < n; i += blockDim.x * gridDim.x) dst[i] = src[i];
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

// A launch on a stream of the probe's choosing (AXN_LAUNCH launches on the compute stream).
template <class... P, class... A>
void launchOnStream(cudaStream_t s, const char* op, const char* name, void (*kernel)(P...), unsigned grid,
                    unsigned block, A&&... args) {
  ::axn::emu::launch(op, name, kernel, dim3(grid), dim3(block), 0, s, std::forward<A>(args)...);
  AXN_CUDA_LAUNCH_CHECK(op);
}
#define launchOn(s, op, kernel, grid, block, ...) launchOnStream((s), (op), #kernel, (kernel), (grid), (block), __VA_ARGS__)

// A device float set to `v` with nothing left pending on the device, so that the stream choices a probe
// makes after it are its own (the same on every run for one order and seed).
void setAndSettle(float* d, float v) {
  copyHostToDevice(d, &v, sizeof v);
  synchronize();
}

float readBack(const float* d) {
  float v = 0;
  copyDeviceToHost(&v, d, sizeof v);
  return v;
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
      // [case, wait = 1] -> [what the reader saw (-1: stale, 7: the write), the case's check]: one stream
      // writes a buffer that the other reads, with cuda::streamWait between them (wait = 1) or not.
      //  0: a kernel on the compute stream writes, a copy on the copy stream reads;
      //  1: the copy stream uploads, a kernel on the compute stream reads;
      //  2: the allocator's rule: a compute kernel reads x (-1) into y; x is freed and handed out again
      //     as z (check: 1 when it is the same block); the copy stream uploads 7 into z. y must stay -1:
      //     without wait 1 the upload can overwrite the block before the earlier reader ran.
      {"crossStream",
       [](const std::vector<double>& a) {
         const int which = (int)arg(a, 0, 0);
         const bool wait = arg(a, 1, 1) != 0;
         const char* op = "selftest.crossStream";
         cudaStream_t compute = stream(), copy = copyStream();
         Scratch x(true, sizeof(float)), y(true, sizeof(float));
         float* pinned = nullptr;
         AXN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned), sizeof(float)), op);
         *pinned = 7.0f;
         setAndSettle(y.as<float>(), -1.0f);
         setAndSettle(x.as<float>(), -1.0f);
         Result r;
         if (which == 0) {
           AXN_LAUNCH(op, fill_kernel, 1, 1, 0, x.as<float>(), 1, 7.0f);
           if (wait) streamWait(copy, compute);
           *pinned = 0.0f;
           AXN_CUDA_CHECK(cudaMemcpyAsync(pinned, x.as<float>(), sizeof(float), cudaMemcpyDeviceToHost, copy), op);
           AXN_CUDA_CHECK(cudaStreamSynchronize(copy), op);
           r.values = {*pinned, 1};
         } else if (which == 1) {
           if (wait) streamWait(copy, compute);
           AXN_CUDA_CHECK(cudaMemcpyAsync(x.as<float>(), pinned, sizeof(float), cudaMemcpyHostToDevice, copy), op);
           if (wait) streamWait(compute, copy);
           AXN_LAUNCH(op, copy_kernel, 1, 1, 0, x.as<float>(), y.as<float>(), 1);
           r.values = {readBack(y.as<float>()), 1};
         } else {
           emptyCache();  // so the block freed below is the only one the next allocation can get
           float* xb = static_cast<float*>(deviceAlloc(sizeof(float)));
           setAndSettle(xb, -1.0f);
           AXN_LAUNCH(op, copy_kernel, 1, 1, 0, xb, y.as<float>(), 1);
           deviceFree(xb);
           float* z = static_cast<float*>(deviceAlloc(sizeof(float)));
           if (wait) streamWait(copy, compute);
           AXN_CUDA_CHECK(cudaMemcpyAsync(z, pinned, sizeof(float), cudaMemcpyHostToDevice, copy), op);
           if (wait) streamWait(compute, copy);
           r.values = {readBack(y.as<float>()), z == xb ? 1.0 : 0.0};
           synchronize();
           deviceFree(z);
         }
         synchronize();
         AXN_CUDA_CHECK(cudaFreeHost(pinned), op);
         return r;
       }},
      // [blocking, direction] -> [what the reader saw (-1: stale, 7: the write)]: the legacy default
      // stream against a created stream, blocking (cudaStreamDefault) or not (cudaStreamNonBlocking).
      //  0: a kernel on the stream writes, a blocking cudaMemcpy (legacy stream) reads;
      //  1: a cudaMemcpyAsync on the legacy stream writes, a kernel on the stream reads.
      {"legacyStream",
       [](const std::vector<double>& a) {
         const bool blocking = arg(a, 0, 1) != 0;
         const int direction = (int)arg(a, 1, 0);
         const char* op = "selftest.legacyStream";
         Scratch x(true, sizeof(float)), y(true, sizeof(float));
         setAndSettle(y.as<float>(), -1.0f);
         setAndSettle(x.as<float>(), -1.0f);
         cudaStream_t s = nullptr;
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, blocking ? cudaStreamDefault : cudaStreamNonBlocking), op);
         float seen = 0.0f;
         const float seven = 7.0f;
         if (direction == 0) {
           launchOn(s, op, fill_kernel, 1, 1, x.as<float>(), 1, 7.0f);
           AXN_CUDA_CHECK(cudaMemcpy(&seen, x.as<float>(), sizeof(float), cudaMemcpyDeviceToHost), op);
         } else {
           AXN_CUDA_CHECK(cudaMemcpyAsync(x.as<float>(), &seven, sizeof(float), cudaMemcpyHostToDevice, nullptr), op);
           launchOn(s, op, copy_kernel, 1, 1, x.as<float>(), y.as<float>(), 1);
           AXN_CUDA_CHECK(cudaMemcpyAsync(&seen, y.as<float>(), sizeof(float), cudaMemcpyDeviceToHost, s), op);
         }
         AXN_CUDA_CHECK(cudaDeviceSynchronize(), op);
         AXN_CUDA_CHECK(cudaStreamDestroy(s), op);
         Result r;
         r.values = {seen};
         return r;
       }},
      // [] -> the CUDA codes of a sequence of queries and waits on two non-blocking streams A and B and a
      // blocking one C (see streams.test.ts for what each must be)
      {"streamQueries",
       [](const std::vector<double>&) {
         const char* op = "selftest.streamQueries";
         Scratch x(true, sizeof(float) * 4);
         setAndSettle(x.as<float>(), 0.0f);
         cudaStream_t A = nullptr, B = nullptr, C = nullptr;
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&A, cudaStreamNonBlocking), op);
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&B, cudaStreamNonBlocking), op);
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&C, cudaStreamDefault), op);
         cudaEvent_t t0 = nullptr, t1 = nullptr, never = nullptr, eB = nullptr, eL = nullptr;
         for (cudaEvent_t* e : {&t0, &t1, &never, &eB, &eL}) AXN_CUDA_CHECK(cudaEventCreate(e), op);
         float* p = x.as<float>();
         float ms = -1.0f;
         std::vector<double> v;
         auto code = [&v](cudaError_t e) { v.push_back((double)e); };
         // A: t0, a kernel, t1; then B: a kernel, eB.
         AXN_CUDA_CHECK(cudaEventRecord(t0, A), op);
         launchOn(A, op, fill_kernel, 1, 1, p, 1, 1.0f);
         AXN_CUDA_CHECK(cudaEventRecord(t1, A), op);
         launchOn(B, op, fill_kernel, 1, 1, p + 1, 1, 2.0f);
         AXN_CUDA_CHECK(cudaEventRecord(eB, B), op);
         code(cudaStreamQuery(A));                   //  0: not ready (nothing waited for it yet)
         code(cudaEventQuery(t1));                   //  1: not ready
         code(cudaEventQuery(never));                //  2: success (never recorded)
         code(cudaEventElapsedTime(&ms, t0, t1));    //  3: not ready
         code(cudaStreamSynchronize(A));             //  4: success
         code(cudaStreamQuery(A));                   //  5: success
         code(cudaStreamQuery(B));                   //  6: not ready: the wait for A did not run B's work
         code(cudaEventQuery(t1));                   //  7: success
         code(cudaEventElapsedTime(&ms, t0, t1));    //  8: success
         v.push_back(ms >= 0.0f ? 1 : 0);            //  9: 1
         code(cudaEventQuery(eB));                   // 10: not ready
         code(cudaEventSynchronize(eB));             // 11: success
         code(cudaStreamQuery(B));                   // 12: success
         // Ordering demands it: B's kernel and record eX, A waits for eX, then B's later kernel.
         cudaEvent_t eX = eB;
         launchOn(B, op, fill_kernel, 1, 1, p + 1, 1, 3.0f);
         AXN_CUDA_CHECK(cudaEventRecord(eX, B), op);
         AXN_CUDA_CHECK(cudaStreamWaitEvent(A, eX, 0), op);
         launchOn(A, op, fill_kernel, 1, 1, p, 1, 4.0f);
         launchOn(B, op, fill_kernel, 1, 1, p + 1, 1, 5.0f);
         code(cudaStreamSynchronize(A));             // 13: success
         code(cudaEventQuery(eX));                   // 14: success: A's wait needed B's work up to eX
         code(cudaStreamQuery(B));                   // 15: not ready: B's later kernel did not run
         AXN_CUDA_CHECK(cudaDeviceSynchronize(), op);
         // The legacy stream: an event recorded on it follows the blocking stream C's earlier work (under
         // the reverse order, without that dependency, the record would run first). A's later kernel is
         // not waited for.
         launchOn(C, op, fill_kernel, 1, 1, p + 2, 1, 6.0f);
         AXN_CUDA_CHECK(cudaEventRecord(eL, nullptr), op);
         launchOn(A, op, fill_kernel, 1, 1, p, 1, 7.0f);
         code(cudaEventSynchronize(eL));             // 16: success
         code(cudaStreamQuery(C));                   // 17: success
         code(cudaStreamQuery(A));                   // 18: not ready
         code(cudaDeviceSynchronize());              // 19: success
         code(cudaStreamQuery(A));                   // 20: success
         code(cudaStreamQuery(nullptr));             // 21: success
         float h[3];
         copyDeviceToHost(h, p, sizeof h);
         for (float f : h) v.push_back(f);           // 22-24: 7, 5, 6 (each stream's last write)
         for (cudaEvent_t e : {t0, t1, never, eB, eL}) AXN_CUDA_CHECK(cudaEventDestroy(e), op);
         for (cudaStream_t s : {A, B, C}) AXN_CUDA_CHECK(cudaStreamDestroy(s), op);
         Result r;
         r.values = v;
         return r;
       }},
      // [deterministic] -> [what B's copy read, cudaEventQuery after the wait for B]: A writes x = 1 and
      // records e; B waits for e; A writes x = 2 and records e again. B's wait captured the first record,
      // so B's copy of x may run before A's second write (racy: 1 or 2 by the interleaving). Deterministic:
      // B's copy is enqueued before A's second write, so it reads 1 under every order, and the wait for B
      // leaves e's second record pending.
      {"eventCapture",
       [](const std::vector<double>& a) {
         const bool deterministic = arg(a, 0, 0) != 0;
         const char* op = "selftest.eventCapture";
         Scratch x(true, sizeof(float));
         setAndSettle(x.as<float>(), -1.0f);
         float* pinned = nullptr;
         AXN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&pinned), sizeof(float)), op);
         *pinned = 0.0f;
         cudaStream_t A = nullptr, B = nullptr;
         cudaEvent_t e = nullptr;
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&A, cudaStreamNonBlocking), op);
         AXN_CUDA_CHECK(cudaStreamCreateWithFlags(&B, cudaStreamNonBlocking), op);
         AXN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), op);
         launchOn(A, op, fill_kernel, 1, 1, x.as<float>(), 1, 1.0f);
         AXN_CUDA_CHECK(cudaEventRecord(e, A), op);
         AXN_CUDA_CHECK(cudaStreamWaitEvent(B, e, 0), op);
         auto read = [&] {
           AXN_CUDA_CHECK(cudaMemcpyAsync(pinned, x.as<float>(), sizeof(float), cudaMemcpyDeviceToHost, B), op);
         };
         if (deterministic) read();
         launchOn(A, op, fill_kernel, 1, 1, x.as<float>(), 1, 2.0f);
         AXN_CUDA_CHECK(cudaEventRecord(e, A), op);
         if (!deterministic) read();
         AXN_CUDA_CHECK(cudaStreamSynchronize(B), op);
         Result r;
         r.values = {*pinned, (double)cudaEventQuery(e)};
         AXN_CUDA_CHECK(cudaDeviceSynchronize(), op);
         AXN_CUDA_CHECK(cudaEventDestroy(e), op);
         AXN_CUDA_CHECK(cudaStreamDestroy(A), op);
         AXN_CUDA_CHECK(cudaStreamDestroy(B), op);
         AXN_CUDA_CHECK(cudaFreeHost(pinned), op);
         return r;
       }},
      // [] -> the codes of calls on every stream after a kernel on the copy stream faulted, and the error
      // streamWait then throws (sticky: run in a child process)
      {"streamSticky",
       [](const std::vector<double>&) {
         const char* op = "selftest.streamSticky";
         cudaStream_t copy = copyStream(), compute = stream();
         Scratch p(true, sizeof(float) * 128);
         setAndSettle(p.as<float>(), 0.0f);
         cudaEvent_t e = nullptr;
         AXN_CUDA_CHECK(cudaEventCreate(&e), op);
         AXN_LAUNCH(op, fill_kernel, 1, 1, 0, p.as<float>() + 127, 1, 1.0f);  // pending on the compute stream
         launchOn(copy, op, barrier_divergence_kernel, 1, 128, p.as<float>());
         Result r;
         float h = 0;
         r.values = {(double)cudaStreamSynchronize(copy), (double)cudaStreamSynchronize(compute),
                     (double)cudaStreamQuery(compute), (double)cudaEventRecord(e, compute),
                     (double)cudaStreamWaitEvent(copy, e, 0), (double)cudaEventQuery(e),
                     (double)cudaMemcpyAsync(&h, p.as<float>(), sizeof h, cudaMemcpyDeviceToHost, compute),
                     (double)cudaDeviceSynchronize()};
         try {
           streamWait(compute, copy);
         } catch (const Error& err) {
           r.error = err.what();
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
