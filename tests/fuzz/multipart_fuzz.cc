// Fuzzes the multipart/form-data parser. The input is read two ways: as a Content-Type line, LF, then a
// body (so MultipartBoundary is fuzzed too); and as a body alone whose boundary is taken from its first
// line ("--boundary\r\n..."). Every result must be either kInvalidArgument or parts that lie inside the
// body, in order, each followed by a delimiter.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "http/multipart.h"

namespace {

using namespace ferry;

using fuzz::Check;

void CheckBody(std::string_view body, std::string_view boundary, size_t max_parts) {
  auto parts = ParseMultipart(body, boundary, max_parts);
  if (!parts.ok()) {
    Check(parts.status().code() == StatusCode::kInvalidArgument, "an error other than kInvalidArgument");
    Check(!parts.status().message().empty(), "an error without a message");
    return;
  }
  Check(parts->size() <= max_parts, "more parts than max_parts");
  const std::string delimiter = "\r\n--" + std::string(boundary);
  size_t previous_end = 0;
  for (const MultipartPart& part : *parts) {
    Check(part.offset <= body.size() && part.length <= body.size() - part.offset, "a part outside the body");
    Check(part.offset >= previous_end, "parts out of order or overlapping");
    // Right after the content, or for a part of headers only, at the CRLF of its blank line.
    const bool delimited =
        body.substr(part.offset + part.length).starts_with(delimiter) ||
        (part.length == 0 && part.offset >= 2 && body.substr(part.offset - 2).starts_with(delimiter));
    Check(delimited, "a part not followed by a delimiter");
    previous_end = part.offset + part.length;
  }
  if (!parts->empty()) {  // max_parts is the only limit that cuts
    Check(ParseMultipart(body, boundary, parts->size()).ok(), "exactly max_parts parts refused");
    Check(!ParseMultipart(body, boundary, parts->size() - 1).ok(), "more than max_parts parts accepted");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  if (const size_t lf = input.find('\n'); lf != std::string_view::npos) {
    auto boundary = MultipartBoundary(input.substr(0, lf));
    if (boundary.ok()) {
      Check(!boundary->empty() && boundary->size() <= 70, "a boundary of the wrong length");
      CheckBody(input.substr(lf + 1), *boundary, 16);
    } else {
      Check(boundary.status().code() == StatusCode::kInvalidArgument, "a boundary error not kInvalidArgument");
    }
  }
  std::string_view boundary = "xyz";
  if (input.starts_with("--")) {
    boundary = input.substr(2, input.find_first_of("\r\n", 2) - 2);  // npos - 2 still means "to the end"
  }
  CheckBody(input, boundary, 4);
  return 0;
}
