// The `ops` object of the addon: every op binding (native/bind/*.cc) registers itself here.
#pragma once
#include <napi.h>

namespace axn {
Napi::Object OpsExports(Napi::Env env);
}
