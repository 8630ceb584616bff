#pragma once
// multipart/form-data (RFC 7578 over RFC 2046), as OpenAI-style clients upload files (`POST /v1/files`
// with the fields `purpose` and `file`). Pure functions, thread-safe. The parser only locates the parts:
// their contents stay in the caller's buffer (which may be an mmap'd file of hundreds of MB).
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry {

// The most bytes of header lines one part may have (its blank line not counted).
inline constexpr size_t kMaxMultipartHeaderBytes = 8 * 1024;

struct MultipartPart {
  std::string name;          // from Content-Disposition: form-data; name="..."
  std::string filename;      // filename="..." ; empty when none
  std::string content_type;  // the part's Content-Type; empty when none
  size_t offset = 0;         // where the part's content starts within the body
  size_t length = 0;         // content bytes (the CRLF before the next delimiter is not part of it)
};

// The boundary parameter of a Content-Type value such as `multipart/form-data; boundary=abc` (quoted or
// not, case-insensitive media type and parameter name). kInvalidArgument when it is not multipart/form-data
// or has no valid boundary (1..70 chars per RFC 2046).
Result<std::string> MultipartBoundary(std::string_view content_type);

// Parses a whole body: the parts between the first delimiter (`--boundary` at the start of the body or
// after a CRLF) and the close delimiter (`--boundary--`), in order. Preamble and epilogue are ignored; a
// line that starts with the delimiter but goes on with other text is content, not a delimiter. Line ends
// are CRLF. Each part needs a `Content-Disposition: form-data; name=...` header; Content-Type is kept as
// written; other headers are ignored. Parameter values are unquoted (backslash escapes undone) but not
// percent-decoded: httpx and browsers send a `"` in a file name as `%22`, and it stays so. `filename*` is
// ignored. A body with only a close delimiter has no parts. Linear time; the contents are never copied.
// kInvalidArgument with a short message for anything malformed: no delimiter, missing close delimiter,
// headers over kMaxMultipartHeaderBytes or not terminated, a malformed header line or Content-Disposition,
// more than `max_parts` parts, an invalid boundary.
Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  size_t max_parts = 16);

}  // namespace ferry
