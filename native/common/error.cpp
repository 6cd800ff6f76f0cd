#include "common/error.h"

namespace vl {

const char * error_code_name(ErrorCode code) {
    switch (code) {
        case ErrorCode::InvalidArgument: return "VL_INVALID_ARGUMENT";
        case ErrorCode::ModelLoad:       return "VL_MODEL_LOAD";
        case ErrorCode::ContextCreate:   return "VL_CONTEXT_CREATE";
        case ErrorCode::ContextFull:     return "VL_CONTEXT_FULL";
        case ErrorCode::Decode:          return "VL_DECODE";
        case ErrorCode::Aborted:         return "VL_ABORTED";
        case ErrorCode::Io:              return "VL_IO";
        case ErrorCode::StateMismatch:   return "VL_STATE_MISMATCH";
        case ErrorCode::Busy:            return "VL_BUSY";
        case ErrorCode::Disposed:        return "VL_DISPOSED";
        case ErrorCode::Internal:        return "VL_INTERNAL";
    }
    return "VL_INTERNAL";
}

} // namespace vl
