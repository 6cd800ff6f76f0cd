#include "llm/backend.h"

#include <cstdlib>
#include <mutex>

#include "common/log.h"
#include "ggml-backend.h"
#include "llama.h"

#ifndef VIDLLAMA_GPU_NAME
#define VIDLLAMA_GPU_NAME "cpu"
#endif

namespace vl {

void backend_init() {
    static std::once_flag once;
    std::call_once(once, [] {
#ifdef _WIN32
        _putenv_s("GGML_NO_BACKTRACE", "1");
#else
        setenv("GGML_NO_BACKTRACE", "1", 0);
#endif
        log_init();
        llama_backend_init();
    });
}

std::string system_info() {
    backend_init();
    std::string out = llama_print_system_info();
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        ggml_backend_dev_t dev = ggml_backend_dev_get(i);
        out += "\nDEVICE: ";
        out += ggml_backend_dev_name(dev);
        out += " (";
        out += ggml_backend_dev_description(dev);
        out += ")";
    }
    return out;
}

std::string gpu_backend_name() { return VIDLLAMA_GPU_NAME; }

} // namespace vl
