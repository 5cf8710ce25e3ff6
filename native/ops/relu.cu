// ReLU on CUDA: grid-stride map kernels, float4 when every pointer is 16-byte aligned. See relu.h.
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/context.h"
#include "ops/elementwise.h"
#include "ops/relu.h"

namespace axn::ops {
namespace {

using ew::ld4;
using ew::st4;

// No __restrict__: y may alias x. T: float or bf16_t (ew::ld4/st4 move 16 or 8 bytes).
template <typename T>
struct ReluF {
  const T* x;
  T* y;
  template <class V>
  void device_pointers(V& visit) const {
    visit(x);
    visit(y);
  }
  __device__ void scalar(int64_t i) const { store_act(y + i, relu_fwd(load_act(x[i]))); }
  __device__ void vec4(int64_t j) const {
    const float4 a = ld4(x, j);
    st4(y, j, make_float4(relu_fwd(a.x), relu_fwd(a.y), relu_fwd(a.z), relu_fwd(a.w)));
  }
};

template <typename T>
struct ReluBackF {
  const float* dy;
  const T* y;
  float* dx;
  template <class V>
  void device_pointers(V& visit) const {
    visit(dy);
    visit(y);
    visit(dx);
  }
  __device__ void scalar(int64_t i) const { dx[i] = relu_bwd(dy[i], load_act(y[i])); }
  __device__ void vec4(int64_t j) const {
    const float4 g = ld4(dy, j), v = ld4(y, j);
    st4(dx, j, make_float4(relu_bwd(g.x, v.x), relu_bwd(g.y, v.y), relu_bwd(g.z, v.z), relu_bwd(g.w, v.w)));
  }
};

// Tests only (kPlantReluWritesNothing): a ReLU launch that stores nothing, which the traffic counter
// must show (test/traffic.test.ts).
template <typename T>
struct ReluNoStoreF {
  const T* x;
  T* y;
  template <class V>
  void device_pointers(V& visit) const {
    visit(x);
    visit(y);
  }
  __device__ void scalar(int64_t) const {}
  __device__ void vec4(int64_t) const {}
};

}  // namespace

template <typename T>
void relu_forward_cuda(const T* x, T* y, int64_t n) {
  if (AXN_PLANTED(kPlantReluWritesNothing)) {
    ew::launch_map("relu", ReluNoStoreF<T>{x, y}, n, ew::aligned16(x) && ew::aligned16(y));
    return;
  }
  ew::launch_map("relu", ReluF<T>{x, y}, n, ew::aligned16(x) && ew::aligned16(y));
}

template <typename T>
void relu_backward_cuda(const float* dy, const T* y, float* dx, int64_t n) {
  ew::launch_map("reluBackward", ReluBackF<T>{dy, y, dx}, n,
                 ew::aligned16(dy) && ew::aligned16(y) && ew::aligned16(dx));
}

template void relu_forward_cuda<float>(const float*, float*, int64_t);
template void relu_forward_cuda<bf16_t>(const bf16_t*, bf16_t*, int64_t);
template void relu_backward_cuda<float>(const float*, const float*, float*, int64_t);
template void relu_backward_cuda<bf16_t>(const float*, const bf16_t*, float*, int64_t);

}  // namespace axn::ops
