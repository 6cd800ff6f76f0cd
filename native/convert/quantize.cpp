#include "convert/quantize.h"

#include <algorithm>
#include <cctype>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "llama.h"
#include "llm/backend.h"

namespace vl {

namespace {

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

TypeInfo info_of(ggml_type t) {
    return TypeInfo{t, ggml_type_name(t), ggml_blck_size(t), ggml_type_size(t), ggml_is_quantized(t)};
}

bool usable(ggml_type t) {
    if (t == GGML_TYPE_F32) return true;
    const char * name = ggml_type_name(t);
    return name && ggml_blck_size(t) > 0 && ggml_type_size(t) > 0 && std::string(name) != "NONE" && ggml_get_type_traits(t)->to_float != nullptr;
}

} // namespace

std::vector<TypeInfo> all_types() {
    std::vector<TypeInfo> out;
    for (int i = 0; i < GGML_TYPE_COUNT; i++) {
        auto t = static_cast<ggml_type>(i);
        if (usable(t)) out.push_back(info_of(t));
    }
    return out;
}

TypeInfo type_info(const std::string & name) {
    const std::string wanted = lower(name);
    for (int i = 0; i < GGML_TYPE_COUNT; i++) {
        auto t = static_cast<ggml_type>(i);
        if (usable(t) && lower(ggml_type_name(t)) == wanted) return info_of(t);
    }
    throw Error(ErrorCode::InvalidArgument, "unknown ggml type '" + name + "'");
}

std::vector<uint8_t> quantize_rows(const TypeInfo & type, const float * src, int64_t n_rows, int64_t n_per_row, int n_threads) {
    if (n_rows < 0 || n_per_row <= 0) throw Error(ErrorCode::InvalidArgument, "bad tensor shape for quantization");
    if (n_per_row % type.block_size != 0) {
        throw Error(ErrorCode::InvalidArgument, "rows of " + std::to_string(n_per_row) + " values cannot be stored as " + type.name +
                                                    " (block size " + std::to_string(type.block_size) + ")");
    }
    if (ggml_quantize_requires_imatrix(type.type)) {
        throw Error(ErrorCode::InvalidArgument, type.name + " needs an importance matrix, which the converter does not compute");
    }
    const size_t row_size = ggml_row_size(type.type, n_per_row);
    std::vector<uint8_t> out(row_size * static_cast<size_t>(n_rows));
    if (n_rows == 0) return out;
    if (type.type == GGML_TYPE_F32) {
        std::copy(reinterpret_cast<const uint8_t *>(src), reinterpret_cast<const uint8_t *>(src) + out.size(), out.begin());
        return out;
    }
    if (!type.quantized) {
        // f16 / bf16: ggml's row converters (round-to-nearest-even), no block structure
        if (type.type == GGML_TYPE_F16) {
            ggml_fp32_to_fp16_row(src, reinterpret_cast<ggml_fp16_t *>(out.data()), n_rows * n_per_row);
        } else if (type.type == GGML_TYPE_BF16) {
            ggml_fp32_to_bf16_row(src, reinterpret_cast<ggml_bf16_t *>(out.data()), n_rows * n_per_row);
        } else {
            throw Error(ErrorCode::InvalidArgument, "no converter to " + type.name);
        }
        return out;
    }
    ggml_quantize_init(type.type); // not thread-safe: do it before fanning out
    const int threads = std::max(1, std::min<int>(n_threads, static_cast<int>(n_rows)));
    std::vector<std::thread> workers;
    const int64_t per_thread = (n_rows + threads - 1) / threads;
    for (int t = 0; t < threads; t++) {
        const int64_t first = t * per_thread;
        const int64_t count = std::min<int64_t>(per_thread, n_rows - first);
        if (count <= 0) break;
        workers.emplace_back([&, first, count] {
            ggml_quantize_chunk(type.type, src, out.data(), first * n_per_row, count, n_per_row, nullptr);
        });
    }
    for (auto & w : workers) w.join();
    return out;
}

std::vector<float> dequantize(const TypeInfo & type, const uint8_t * data, size_t n_bytes, int64_t n_elements) {
    if (n_elements < 0 || n_elements % type.block_size != 0) {
        throw Error(ErrorCode::InvalidArgument, std::to_string(n_elements) + " elements is not a whole number of " + type.name + " blocks");
    }
    const size_t expected = ggml_row_size(type.type, n_elements);
    if (n_bytes != expected) {
        throw Error(ErrorCode::InvalidArgument, "expected " + std::to_string(expected) + " bytes of " + type.name + ", got " + std::to_string(n_bytes));
    }
    std::vector<float> out(static_cast<size_t>(n_elements));
    if (type.type == GGML_TYPE_F32) {
        std::copy(data, data + n_bytes, reinterpret_cast<uint8_t *>(out.data()));
    } else {
        ggml_get_type_traits(type.type)->to_float(data, out.data(), n_elements);
    }
    return out;
}

void quantize_model(const std::string & in_path, const std::string & out_path, int ftype, int n_threads) {
    backend_init();
    if (in_path.empty() || out_path.empty()) throw Error(ErrorCode::InvalidArgument, "input and output paths must not be empty");
    if (in_path == out_path) throw Error(ErrorCode::InvalidArgument, "the output must be a different file than the input");
    llama_model_quantize_params params = llama_model_quantize_default_params();
    params.ftype = static_cast<llama_ftype>(ftype);
    params.nthread = n_threads;
    LogCapture capture; // llama_model_quantize reports its reason only through the log
    if (llama_model_quantize(in_path.c_str(), out_path.c_str(), &params) != 0) {
        std::string why = capture.summary();
        throw Error(ErrorCode::Io, "llama_model_quantize failed for " + in_path + (why.empty() ? "" : ": " + why));
    }
}

} // namespace vl
