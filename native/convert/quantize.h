// Row-wise conversion between f32 and ggml tensor types (quantized or not), with ggml's own quantizers, for the
// checkpoint converter. Rows are split across threads; ggml's quantizers are pure functions of their rows.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ggml.h"

namespace vl {

struct TypeInfo {
    ggml_type type;
    std::string name;
    int64_t block_size;
    size_t type_size;
    bool quantized;
};

// ggml type by name ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_K", "q6_K", ...; case-insensitive). Throws InvalidArgument.
TypeInfo type_info(const std::string & name);
std::vector<TypeInfo> all_types();

// Quantizes n_rows rows of n_per_row floats. Throws InvalidArgument when n_per_row is not a multiple of the block
// size or the type needs an importance matrix.
std::vector<uint8_t> quantize_rows(const TypeInfo & type, const float * src, int64_t n_rows, int64_t n_per_row, int n_threads);
// Converts n_elements stored as `type` back to f32.
std::vector<float> dequantize(const TypeInfo & type, const uint8_t * data, size_t n_bytes, int64_t n_elements);

// Runs libllama's own whole-model quantizer (llama_model_quantize with its default parameters: no imatrix, output
// tensor quantized, llama.cpp's per-tensor type rules) from the GGUF at in_path to out_path. ftype is a llama_ftype
// value (e.g. 7 = Q8_0, 2 = Q4_0, 15 = Q4_K_M). Used by the converter tests to check our own type selection.
// Throws InvalidArgument / Io with llama.cpp's logged reason on failure.
void quantize_model(const std::string & in_path, const std::string & out_path, int ftype, int n_threads);

} // namespace vl
