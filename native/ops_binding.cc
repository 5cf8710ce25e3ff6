#include "ops_binding.h"

#include <vector>

#include "bind/util.h"

namespace axn {
namespace bind {
static std::vector<BindFn>& registry() {
  static std::vector<BindFn> r;
  return r;
}
Registrar::Registrar(BindFn f) { registry().push_back(f); }
}  // namespace bind

Napi::Object OpsExports(Napi::Env env) {
  Napi::Object ops = Napi::Object::New(env);
  for (bind::BindFn f : bind::registry()) f(env, ops);
  return ops;
}
}  // namespace axn
