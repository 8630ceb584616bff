#pragma once
// Universal Binary JSON (UBJSON, the format of XGBoost's `.ubj` models) rewritten as JSON text, so that
// one checker (xgboost_model_check.h, on simdjson) reads both model formats.
//
// What it promises:
//  - Every length and count is checked against the bytes that remain before anything is reserved, and
//    containers nest at most `max_depth` deep: a truncated or hostile file is an InvalidArgument naming
//    the byte offset, never an over-read, a huge allocation or a deep recursion.
//  - The whole input must be one value; trailing bytes are an error.
//  - Numbers: integers keep their exact value; finite floats are written so that they read back as the
//    same double; NaN and infinities (which JSON cannot spell) become null. High-precision numbers
//    ('H') are refused. Strings are escaped; their bytes are not checked for UTF-8 here (simdjson
//    refuses invalid UTF-8 when the text is parsed).
//  - Containers may be plain, counted ('#') or typed and counted ('$' + '#'), arrays and objects alike.
#include <string>
#include <string_view>

#include "common/result.h"

namespace ferry {

Result<std::string> UbjsonToJson(std::string_view bytes, int max_depth = 64);

}  // namespace ferry
