// N-API binding of the batch augmentation (lib/ops/augment.ts validates the parameters on the host first,
// every crop inside its slot; these are the cheap last guards). Outputs are allocated by TypeScript.
//   ops.augment_batch(u8, params, coef, y, S, Hs, Ws, C, N, Ho, Wo)
#include <string>

#include "bind/util.h"
#include "ops/augment.h"

namespace axn::bind {
namespace {

Napi::Value AugmentBatch(const Napi::CallbackInfo& info) {
  const char* op = "augment_batch";
  const int S = i32(info, 4, op, "S"), Hs = i32(info, 5, op, "Hs"), Ws = i32(info, 6, op, "Ws"),
            C = i32(info, 7, op, "C"), N = i32(info, 8, op, "N"), Ho = i32(info, 9, op, "Ho"), Wo = i32(info, 10, op, "Wo");
  AXN_CHECK(S >= 1 && Hs >= 1 && Ws >= 1 && C >= 1 && C <= 4 && N >= 0 && Ho >= 1 && Wo >= 1 && Ho <= Hs && Wo <= Ws, op,
            "bad sizes");
  const uint8_t* u8 = ptr<const uint8_t>(info, 0, op, "u8", (size_t)S * Hs * Ws * C);
  const int32_t* p = ptr<const int32_t>(info, 1, op, "params", (size_t)N * 4);
  const float* coef = ptr<const float>(info, 2, op, "coef", (size_t)N * C * 2);
  float* y = ptr<float>(info, 3, op, "y", (size_t)N * C * Ho * Wo);
  const bool cuda = onCuda(op, {storage(info, 0, op, "u8"), storage(info, 1, op, "params"), storage(info, 2, op, "coef"),
                                storage(info, 3, op, "y")});
  AXN_DISPATCH(cuda, ops::augment_batch_cpu(u8, p, coef, y, S, Hs, Ws, C, N, Ho, Wo),
               ops::augment_batch_cuda(u8, p, coef, y, S, Hs, Ws, C, N, Ho, Wo));
  return info.Env().Undefined();
}

void RegisterAugment(Napi::Env env, Napi::Object& ops) {
  ops.Set("augment_batch", Napi::Function::New(env, AugmentBatch, "augment_batch"));
}

}  // namespace

AXN_REGISTER_OPS(RegisterAugment);

}  // namespace axn::bind
