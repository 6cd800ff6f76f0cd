// One-time process setup shared by every model and context: llama.cpp backend initialisation, log routing and
// GGML_NO_BACKTRACE (a ggml abort must not fork gdb inside the user's process).
#pragma once

#include <string>

namespace vl {

void backend_init();           // idempotent, thread-safe
std::string system_info();     // llama.cpp's CPU feature line plus the devices ggml sees
std::string gpu_backend_name(); // the GPU backend this addon was built with: "cpu", "cuda", "metal" or "vulkan"

} // namespace vl
