#include "llm/backend.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>

#include "common/error.h"
#include "common/log.h"
#include "ggml-alloc.h"
#include "ggml.h"
#include "llama.h"

#ifdef _WIN32
#define WIN32_LEAN_AND_MEAN
#include <windows.h>
#else
#include <dlfcn.h>
#endif

namespace vl {

namespace fs = std::filesystem;

namespace {

// ---- dynamic libraries -------------------------------------------------------------------------------------------
// Opened here only to score a CPU variant or to learn why a module cannot load (the dynamic linker's message, which
// ggml's loader does not hand back); ggml_backend_load() itself loads and registers the module.
struct Library {
#ifdef _WIN32
    HMODULE handle = nullptr;
    explicit Library(const fs::path & path) {
        // Not a crash dialog for a missing DLL: the error comes back as a code.
        const UINT old = SetErrorMode(SEM_FAILCRITICALERRORS);
        handle = LoadLibraryW(path.wstring().c_str());
        SetErrorMode(old);
    }
    ~Library() { if (handle) FreeLibrary(handle); }
    void * symbol(const char * name) const { return handle ? reinterpret_cast<void *>(GetProcAddress(handle, name)) : nullptr; }
    static std::string last_error() { return "Windows error " + std::to_string(GetLastError()); }
#else
    void * handle = nullptr;
    explicit Library(const fs::path & path) { handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL); }
    ~Library() { if (handle) dlclose(handle); }
    void * symbol(const char * name) const { return handle ? dlsym(handle, name) : nullptr; }
    static std::string last_error() {
        const char * e = dlerror();
        return e ? e : "unknown error";
    }
#endif
    Library(const Library &) = delete;
    Library & operator=(const Library &) = delete;
};

// The addon's own folder: the modules were built and are shipped beside vidllama.node (never node's folder or the
// working directory, ggml's default search places).
fs::path addon_dir() {
#ifdef _WIN32
    HMODULE self = nullptr;
    if (!GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
                            reinterpret_cast<LPCWSTR>(&addon_dir), &self)) {
        return {};
    }
    std::wstring buf(32768, L'\0');
    const DWORD n = GetModuleFileNameW(self, buf.data(), static_cast<DWORD>(buf.size()));
    buf.resize(n);
    return fs::path(buf).parent_path();
#else
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void *>(&addon_dir), &info) || !info.dli_fname) return {};
    return fs::path(info.dli_fname).parent_path();
#endif
}

#ifdef _WIN32
constexpr const char * MODULE_PREFIX = "ggml-";
constexpr const char * MODULE_EXTENSION = ".dll";
#else
constexpr const char * MODULE_PREFIX = "libggml-"; // ggml's own naming (ggml-backend-reg.cpp), .so on macOS too
constexpr const char * MODULE_EXTENSION = ".so";
#endif

// Known non-CPU backend module names (ggml's, minus "cpu"); a file libggml-<name>.so with another name is ignored.
const char * const GPU_MODULES[] = {"cuda", "metal", "vulkan", "hip", "musa", "sycl", "opencl", "blas", "rpc"};

using ScoreFn = int (*)();
using SetThreadsFn = void (*)(ggml_backend_t, int);
using SetAbortFn = void (*)(ggml_backend_t, ggml_abort_callback, void *);

BackendReport g_report;
ggml_backend_reg_t g_cpu_reg = nullptr;

void load_modules() {
    BackendReport & r = g_report;
    const fs::path dir = addon_dir();
    r.dir = dir.u8string();
    std::vector<std::pair<std::string, fs::path>> files; // stem after the prefix, path
    std::error_code ec;
    for (fs::directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec), end; !ec && it != end; it.increment(ec)) {
        const fs::path & p = it->path();
        const std::string name = p.filename().u8string();
        if (p.extension().u8string() != MODULE_EXTENSION || name.rfind(MODULE_PREFIX, 0) != 0) continue;
        files.emplace_back(name.substr(std::strlen(MODULE_PREFIX), name.size() - std::strlen(MODULE_PREFIX) - std::strlen(MODULE_EXTENSION)), p);
    }
    std::sort(files.begin(), files.end());

    // GPU modules first: ggml's device order (and llama.cpp's default device list) puts them before the CPU.
    for (const char * gpu : GPU_MODULES) {
        for (const auto & [stem, path] : files) {
            if (stem != gpu) continue;
            BackendModuleInfo m;
            m.name = stem;
            m.file = path.u8string();
            Library probe(path); // the real reason when it cannot load (a missing driver library, most often)
            if (!probe.handle) {
                m.error = Library::last_error();
            } else if (ggml_backend_reg_t reg = ggml_backend_load(m.file.c_str())) {
                m.loaded = true;
                m.devices = ggml_backend_reg_dev_count(reg);
            } else {
                m.error = "ggml could not initialise the backend (set VIDLLAMA_LOG=debug for its messages)";
            }
            r.modules.push_back(std::move(m));
        }
    }

    // CPU: every variant is scored on this CPU; the best (or the one VIDLLAMA_CPU_VARIANT names) is loaded.
    for (const auto & [stem, path] : files) {
        if (stem != "cpu" && stem.rfind("cpu-", 0) != 0) continue;
        CpuVariantInfo v;
        v.name = stem == "cpu" ? "default" : stem.substr(4);
        v.file = path.u8string();
        Library probe(path);
        if (auto score = probe.handle ? reinterpret_cast<ScoreFn>(probe.symbol("ggml_backend_score")) : nullptr) {
            v.score = score();
        } else if (probe.handle) {
            v.score = 1; // a single-module build has no score function: it runs wherever it was built for
        }
        r.cpu_variants.push_back(std::move(v));
    }
    const CpuVariantInfo * chosen = nullptr;
    for (const auto & v : r.cpu_variants) {
        if (v.score > 0 && (!chosen || v.score > chosen->score)) chosen = &v;
    }
    if (chosen) r.cpu_reason = "the highest-scoring variant this CPU supports";
    if (const char * forced = std::getenv("VIDLLAMA_CPU_VARIANT"); forced && *forced) {
        auto it = std::find_if(r.cpu_variants.begin(), r.cpu_variants.end(), [&](const CpuVariantInfo & v) { return v.name == forced; });
        if (it == r.cpu_variants.end()) {
            r.cpu_reason = std::string("VIDLLAMA_CPU_VARIANT=") + forced + " is not among the variants found; using " +
                           (chosen ? chosen->name : std::string("none")) + ", the best this CPU supports";
        } else if (it->score <= 0) {
            r.cpu_reason = std::string("VIDLLAMA_CPU_VARIANT=") + forced + " needs instructions this CPU lacks; using " +
                           (chosen ? chosen->name : std::string("none")) + ", the best this CPU supports";
        } else {
            chosen = &*it;
            r.cpu_reason = std::string("forced by VIDLLAMA_CPU_VARIANT=") + forced;
        }
    }
    if (chosen) {
        g_cpu_reg = ggml_backend_load(chosen->file.c_str());
        if (g_cpu_reg) r.cpu_variant = chosen->name;
        else r.cpu_reason = "ggml could not load " + chosen->file;
    } else if (r.cpu_variants.empty()) {
        r.cpu_reason = "no CPU backend module (" + std::string(MODULE_PREFIX) + "cpu-*" + MODULE_EXTENSION + ") in " + r.dir;
    } else {
        r.cpu_reason = "no CPU variant in " + r.dir + " runs on this CPU";
    }
}

std::string lower(std::string s) {
    for (char & c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

// The backend family of a device, in the names the `gpu` option uses: "cuda", "metal", "vulkan", …
std::string family_of(ggml_backend_dev_t dev) {
    std::string reg = lower(ggml_backend_reg_name(ggml_backend_dev_backend_reg(dev)));
    if (reg == "mtl") return "metal";
    return reg;
}

int family_rank(const std::string & family) {
    // auto's preference among GPU backends: native APIs before Vulkan (the same NVIDIA card shows up under both).
    static const char * const order[] = {"cuda", "metal", "hip", "musa", "sycl", "vulkan", "opencl"};
    for (int i = 0; i < static_cast<int>(std::size(order)); i++) {
        if (family == order[i]) return i;
    }
    return static_cast<int>(std::size(order));
}

bool is_gpu(ggml_backend_dev_t dev) {
    const auto type = ggml_backend_dev_type(dev);
    return type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU;
}

// A small graph on the device, checked against the same arithmetic in double: matrix product, add, softmax. A
// device that initialises but computes wrongly (a broken driver) is caught here instead of in the user's answers.
std::string verify_device(ggml_backend_dev_t dev) {
    ggml_backend_t backend = ggml_backend_dev_init(dev, nullptr);
    if (!backend) return "could not initialise the device";
    const int K = 64, M = 8, N = 4;
    ggml_init_params ip{ggml_tensor_overhead() * 8 + ggml_graph_overhead(), nullptr, true};
    ggml_context * ctx = ggml_init(ip);
    std::string err;
    if (!ctx) err = "out of memory";
    ggml_backend_buffer_t buf = nullptr;
    if (err.empty()) {
        ggml_tensor * a = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, M);
        ggml_tensor * b = ggml_new_tensor_2d(ctx, GGML_TYPE_F32, K, N);
        ggml_tensor * out = ggml_soft_max(ctx, ggml_add(ctx, ggml_mul_mat(ctx, a, b), ggml_mul_mat(ctx, a, b)));
        ggml_cgraph * gf = ggml_new_graph(ctx);
        ggml_build_forward_expand(gf, out);
        buf = ggml_backend_alloc_ctx_tensors(ctx, backend);
        if (!buf) err = "could not allocate device memory";
        for (ggml_tensor * t = ggml_get_first_tensor(ctx); err.empty() && t; t = ggml_get_next_tensor(ctx, t)) {
            if (t->op != GGML_OP_NONE && !ggml_backend_supports_op(backend, t)) err = std::string("does not support ") + ggml_op_name(t->op);
        }
        std::vector<float> av(K * M), bv(K * N), ov(M * N);
        for (int i = 0; i < K * M; i++) av[i] = std::sin(0.37f * i) * 0.25f;
        for (int i = 0; i < K * N; i++) bv[i] = std::cos(0.11f * i) * 0.25f;
        if (err.empty()) {
            ggml_backend_tensor_set(a, av.data(), 0, ggml_nbytes(a));
            ggml_backend_tensor_set(b, bv.data(), 0, ggml_nbytes(b));
            if (ggml_backend_graph_compute(backend, gf) != GGML_STATUS_SUCCESS) err = "the test graph failed to compute";
        }
        if (err.empty()) {
            ggml_backend_tensor_get(out, ov.data(), 0, ggml_nbytes(out));
            double worst = 0;
            for (int n = 0; n < N; n++) {
                std::vector<double> row(M);
                double mx = -1e300, sum = 0;
                for (int m = 0; m < M; m++) {
                    double dot = 0;
                    for (int k = 0; k < K; k++) dot += double(av[m * K + k]) * double(bv[n * K + k]);
                    row[m] = 2 * dot;
                    mx = std::max(mx, row[m]);
                }
                for (double & x : row) sum += (x = std::exp(x - mx));
                for (int m = 0; m < M; m++) worst = std::max(worst, std::abs(row[m] / sum - double(ov[n * M + m])));
            }
            // f16 accumulation on some GPUs is fine; a wrong kernel is off by far more.
            if (!(worst < 1e-2)) err = "the test graph gave wrong results (max error " + std::to_string(worst) + ")";
        }
    }
    if (buf) ggml_backend_buffer_free(buf);
    if (ctx) ggml_free(ctx);
    ggml_backend_free(backend);
    return err;
}

std::mutex g_verify_mutex;
std::map<ggml_backend_dev_t, std::string> g_verified; // device → "" (works) or why not

std::string verified(ggml_backend_dev_t dev) {
    std::lock_guard<std::mutex> lock(g_verify_mutex);
    auto it = g_verified.find(dev);
    if (it == g_verified.end()) it = g_verified.emplace(dev, verify_device(dev)).first;
    return it->second;
}

DeviceChoice make_choice(ggml_backend_dev_t dev, std::string reason) {
    DeviceChoice c;
    c.device = dev;
    c.name = ggml_backend_dev_name(dev);
    c.description = ggml_backend_dev_description(dev);
    c.reason = std::move(reason);
    return c;
}

DeviceChoice cpu_choice(std::string reason) {
    DeviceChoice c;
    c.description = "CPU (" + (g_report.cpu_variant.empty() ? std::string("no variant") : g_report.cpu_variant) + " variant)";
    c.reason = std::move(reason);
    return c;
}

std::vector<ggml_backend_dev_t> gpu_devices() {
    std::vector<ggml_backend_dev_t> out;
    for (size_t i = 0; i < ggml_backend_dev_count(); i++) {
        if (is_gpu(ggml_backend_dev_get(i))) out.push_back(ggml_backend_dev_get(i));
    }
    std::stable_sort(out.begin(), out.end(), [](ggml_backend_dev_t a, ggml_backend_dev_t b) {
        return family_rank(family_of(a)) < family_rank(family_of(b));
    });
    return out;
}

std::string module_status(const std::string & family) {
    for (const auto & m : g_report.modules) {
        if (m.name != family) continue;
        if (!m.loaded) return "the " + family + " backend could not load: " + m.error;
        return "the " + family + " backend found no device" +
               (family == "vulkan" ? " (a CPU-only Vulkan driver such as lavapipe needs GGML_VK_VISIBLE_DEVICES)" : "");
    }
    return "this build has no " + family + " backend (no " + std::string(MODULE_PREFIX) + family + MODULE_EXTENSION + " in " + g_report.dir + ")";
}

} // namespace

void backend_init() {
    static std::once_flag once;
    std::call_once(once, [] {
#ifdef _WIN32
        _putenv_s("GGML_NO_BACKTRACE", "1");
#else
        setenv("GGML_NO_BACKTRACE", "1", 0);
#endif
        log_init();
        load_modules();
        llama_backend_init();
    });
}

const BackendReport & backend_report() {
    backend_init();
    return g_report;
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

DeviceChoice choose_device(const std::string & preference, int index) {
    backend_init();
    if (!g_cpu_reg) throw Error(ErrorCode::ModelLoad, "no CPU backend: " + g_report.cpu_reason);
    if (preference == "cpu") return cpu_choice("the CPU was asked for");
    const std::vector<ggml_backend_dev_t> gpus = gpu_devices();
    if (preference == "auto") {
        std::string passed_over;
        for (ggml_backend_dev_t dev : gpus) {
            const std::string why = verified(dev);
            if (why.empty()) return make_choice(dev, "the first GPU device that passed the test graph" + (passed_over.empty() ? "" : "; " + passed_over));
            passed_over += (passed_over.empty() ? "" : "; ") + std::string(ggml_backend_dev_name(dev)) + " skipped: " + why;
        }
        if (!passed_over.empty()) return cpu_choice("no GPU device passed the test graph: " + passed_over);
        std::string why;
        // Loaded with no device is the common case of a GPU module on a machine without that GPU (or, for Vulkan,
        // with only a CPU-type driver such as lavapipe, which ggml-vulkan skips unless GGML_VK_VISIBLE_DEVICES says).
        for (const auto & m : g_report.modules) {
            why += why.empty() ? "" : "; ";
            why += m.loaded ? m.name + " backend loaded but found no device" : m.name + " backend not loaded: " + m.error;
        }
        return cpu_choice(why.empty() ? "no GPU backend in this build" : "no GPU device: " + why);
    }
    std::vector<ggml_backend_dev_t> candidates;
    if (preference == "index") {
        candidates = gpus;
    } else {
        for (ggml_backend_dev_t dev : gpus) {
            if (family_of(dev) == preference) candidates.push_back(dev);
        }
        if (candidates.empty()) throw Error(ErrorCode::InvalidArgument, "gpu: \"" + preference + "\" is not available: " + module_status(preference));
    }
    if (index < 0 || index >= static_cast<int>(candidates.size())) {
        std::string names;
        for (ggml_backend_dev_t dev : candidates) names += (names.empty() ? "" : ", ") + std::string(ggml_backend_dev_name(dev));
        throw Error(ErrorCode::InvalidArgument, "gpu: device index " + std::to_string(index) + " does not exist; " +
                                                    (names.empty() ? std::string("there is no GPU device") : "the devices are " + names));
    }
    ggml_backend_dev_t dev = candidates[static_cast<size_t>(index)];
    if (const std::string why = verified(dev); !why.empty()) {
        throw Error(ErrorCode::InvalidArgument, std::string("gpu: ") + ggml_backend_dev_name(dev) + " failed the test graph: " + why);
    }
    return make_choice(dev, "asked for");
}

void * cpu_proc_address(const char * name) {
    backend_init();
    return g_cpu_reg ? ggml_backend_reg_get_proc_address(g_cpu_reg, name) : nullptr;
}

void cpu_backend_set_n_threads(ggml_backend_t backend, int n_threads) {
    static auto fn = reinterpret_cast<SetThreadsFn>(cpu_proc_address("ggml_backend_set_n_threads"));
    if (fn) fn(backend, n_threads);
}

void cpu_backend_set_abort_callback(ggml_backend_t backend, ggml_abort_callback callback, void * data) {
    static auto fn = reinterpret_cast<SetAbortFn>(cpu_proc_address("ggml_backend_set_abort_callback"));
    if (fn) fn(backend, callback, data);
}

} // namespace vl
