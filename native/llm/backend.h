// One-time process setup shared by every model and context, and the one owner of ggml's backends: which backend
// modules exist next to the addon, which CPU variant runs, which device a model goes to and why.
//
// ggml is built with GGML_BACKEND_DL: every backend is a module in the addon's folder (libggml-cpu-<variant> for each
// CPU variant, libggml-cuda, libggml-vulkan, libggml-metal), loaded once by backend_init(). Nothing else in the addon
// may call a backend's functions directly (they are not linkable): CPU-specific calls go through the helpers below.
#pragma once

#include <string>
#include <vector>

#include "ggml-backend.h"

namespace vl {

struct CpuVariantInfo {
    std::string name; // "haswell", "zen4", …; "default" for a single-module (-march=native) build
    std::string file;
    int score = 0;    // ggml_backend_score(): 0 = this CPU lacks an instruction set the variant needs
};

struct BackendModuleInfo {
    std::string name; // "cuda", "vulkan", "metal", …
    std::string file;
    bool loaded = false;
    size_t devices = 0;
    std::string error; // why it did not load (the dynamic linker's message, e.g. a missing libvulkan.so.1)
};

struct BackendReport {
    std::string dir;                         // the folder the modules are loaded from (the addon's own)
    std::vector<CpuVariantInfo> cpu_variants; // every CPU module found, scored on this CPU
    std::string cpu_variant;                 // the one in use ("" if none could be loaded)
    std::string cpu_reason;                  // why that one
    std::vector<BackendModuleInfo> modules;  // every other backend module found, loaded or not
};

void backend_init();                  // idempotent, thread-safe; loads the modules
const BackendReport & backend_report(); // after backend_init()
std::string system_info();            // llama.cpp's CPU feature line plus the devices ggml sees

// Where a model runs. `preference`: "auto" (the best GPU device that passes a small test graph, else the CPU), "cpu",
// "cuda", "metal", "vulkan" (that backend's device `index`, default 0), or "index" (the `index`-th GPU device of all).
// "auto" falls back to the CPU with the reasons in `reason`; an explicit choice that cannot be met throws
// vl::Error(InvalidArgument) naming what was found instead.
struct DeviceChoice {
    ggml_backend_dev_t device = nullptr; // nullptr: the CPU
    std::string name = "CPU";            // ggml's device name: "CPU", "CUDA0", "Vulkan0", "MTL0"
    std::string description;
    std::string reason;
};
DeviceChoice choose_device(const std::string & preference, int index);

// The CPU backend's extra functions, looked up in the loaded CPU module (no-ops if it lacks them).
void cpu_backend_set_n_threads(ggml_backend_t backend, int n_threads);
void cpu_backend_set_abort_callback(ggml_backend_t backend, ggml_abort_callback callback, void * data);
void * cpu_proc_address(const char * name); // nullptr if there is no CPU module or it lacks `name`

} // namespace vl
