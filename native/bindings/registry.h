// Plain (non-class) native functions are grouped by stage; each group registers itself on the module's exports.
// addon.cpp calls every register_* function below once per environment.
#pragma once

#include <napi.h>

namespace vl {

void register_quantize_functions(Napi::Env env, Napi::Object exports);
void register_vision_functions(Napi::Env env, Napi::Object exports);
void register_image_functions(Napi::Env env, Napi::Object exports);

} // namespace vl
