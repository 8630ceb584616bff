#include "http/multipart.h"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <optional>

namespace ferry {
namespace {

constexpr size_t kMaxBoundaryChars = 70;  // RFC 2046 section 5.1.1

bool IsSpace(char c) { return c == ' ' || c == '\t'; }

bool IsTokenChar(char c) {  // RFC 9110 tchar
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool IsBoundaryChar(char c) {  // RFC 2046 bchars
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  return std::string_view("'()+_,-./:=? ").find(c) != std::string_view::npos;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return Lower(x) == Lower(y);
         });
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsSpace(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsSpace(s.back())) s.remove_suffix(1);
  return s;
}

// Whether `s` holds `what` at `pos` (false when pos is past the end).
bool HasAt(std::string_view s, size_t pos, std::string_view what) {
  return pos <= s.size() && s.substr(pos).starts_with(what);
}

Status CheckBoundary(std::string_view boundary) {
  if (boundary.empty() || boundary.size() > kMaxBoundaryChars) {
    return InvalidArgument(fmt::format("multipart boundary must be 1 to {} characters", kMaxBoundaryChars));
  }
  if (!std::all_of(boundary.begin(), boundary.end(), IsBoundaryChar) || boundary.back() == ' ') {
    return InvalidArgument("multipart boundary has a character RFC 2046 does not allow");
  }
  return Status::Ok();
}

// A header value of the form `type; name=value; name="quoted value"`. Parameter names are lowercased.
struct Parameter {
  std::string name;
  std::string value;
};
struct ParameterizedValue {
  std::string_view type;
  std::vector<Parameter> params;
};

// Reads the parameter value at text[*i]: a quoted string (backslash escapes undone) or an unquoted run up
// to the next ';'. Leaves *i at that ';' or at the end.
Result<std::string> ReadParameterValue(std::string_view text, size_t* i) {
  if (*i < text.size() && text[*i] == '"') {
    std::string value;
    size_t j = *i + 1;
    for (; j < text.size() && text[j] != '"'; ++j) {
      if (text[j] == '\\' && ++j == text.size()) break;
      value.push_back(text[j]);
    }
    if (j >= text.size()) return InvalidArgument("unterminated quoted parameter value");
    ++j;  // past the closing quote
    while (j < text.size() && IsSpace(text[j])) ++j;
    if (j < text.size() && text[j] != ';') return InvalidArgument("text after a quoted parameter value");
    *i = j;
    return value;
  }
  const size_t end = std::min(text.find(';', *i), text.size());
  const std::string_view raw = Trim(text.substr(*i, end - *i));
  if (raw.empty()) return InvalidArgument("empty parameter value");
  if (std::any_of(raw.begin(), raw.end(), [](char c) { return IsSpace(c) || c == '"'; })) {
    return InvalidArgument("unquoted parameter value with a space or a quote");
  }
  *i = end;
  return std::string(raw);
}

Result<ParameterizedValue> ParseParameterized(std::string_view text) {
  ParameterizedValue out;
  size_t i = std::min(text.find(';'), text.size());
  out.type = Trim(text.substr(0, i));
  if (out.type.empty()) return InvalidArgument("no type before the parameters");
  while (i < text.size()) {  // text[i] == ';'
    ++i;
    while (i < text.size() && IsSpace(text[i])) ++i;
    if (i == text.size() || text[i] == ';') continue;  // a trailing or doubled ';'
    const size_t eq = text.find_first_of("=;", i);
    if (eq == std::string_view::npos || text[eq] != '=') return InvalidArgument("parameter without '='");
    const std::string_view name = Trim(text.substr(i, eq - i));
    if (name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
      return InvalidArgument("malformed parameter name");
    }
    i = eq + 1;
    while (i < text.size() && IsSpace(text[i])) ++i;
    FERRY_ASSIGN_OR_RETURN(std::string value, ReadParameterValue(text, &i));
    Parameter& p = out.params.emplace_back(Parameter{std::string(name), std::move(value)});
    std::transform(p.name.begin(), p.name.end(), p.name.begin(), Lower);
  }
  return out;
}

Status ApplyContentDisposition(std::string_view value, MultipartPart* part) {
  auto parsed = ParseParameterized(value);
  if (!parsed.ok()) return parsed.status().WithContext("Content-Disposition");
  if (!EqualsIgnoreCase(parsed->type, "form-data")) return InvalidArgument("Content-Disposition is not form-data");
  const Parameter* name = nullptr;
  const Parameter* filename = nullptr;
  for (const Parameter& p : parsed->params) {
    const Parameter** slot = p.name == "name" ? &name : p.name == "filename" ? &filename : nullptr;
    if (slot == nullptr) continue;  // filename* and extensions
    if (*slot != nullptr) return InvalidArgument(fmt::format("Content-Disposition has two {} parameters", p.name));
    *slot = &p;
  }
  if (name == nullptr) return InvalidArgument("Content-Disposition without a name");
  part->name = name->value;
  if (filename != nullptr) part->filename = filename->value;
  return Status::Ok();
}

// One header line (without its CRLF) into `part`; `seen_disposition` and `seen_type` catch duplicates.
Status ApplyHeaderLine(std::string_view line, MultipartPart* part, bool* seen_disposition, bool* seen_type) {
  if (line.empty() || IsSpace(line.front())) return InvalidArgument("folded or empty header line");
  const auto is_control = [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return (byte < 0x20 && c != '\t') || byte == 0x7f;
  };
  if (std::any_of(line.begin(), line.end(), is_control)) {
    return InvalidArgument("control character in a header line");
  }
  const size_t colon = line.find(':');
  const std::string_view name = line.substr(0, std::min(colon, line.size()));
  if (colon == std::string_view::npos || name.empty() || !std::all_of(name.begin(), name.end(), IsTokenChar)) {
    return InvalidArgument("malformed header line");
  }
  const std::string_view value = Trim(line.substr(colon + 1));
  if (EqualsIgnoreCase(name, "content-disposition")) {
    if (*seen_disposition) return InvalidArgument("two Content-Disposition headers");
    *seen_disposition = true;
    return ApplyContentDisposition(value, part);
  }
  if (EqualsIgnoreCase(name, "content-type")) {
    if (*seen_type) return InvalidArgument("two Content-Type headers");
    *seen_type = true;
    part->content_type = std::string(value);
  }
  return Status::Ok();
}

// The headers of the part starting at body[start] (just past its delimiter line) into `part`, and
// part->offset set to where its content starts.
Status ParsePartHeaders(std::string_view body, size_t start, MultipartPart* part) {
  const std::string_view rest = body.substr(std::min(start, body.size()));
  if (rest.starts_with("\r\n")) return InvalidArgument("part without Content-Disposition");
  // The block of header lines (each with its CRLF) is at most kMaxMultipartHeaderBytes, so the blank line
  // that ends it starts within that many bytes.
  const size_t end = rest.substr(0, kMaxMultipartHeaderBytes + 2).find("\r\n\r\n");
  if (end == std::string_view::npos) {
    if (rest.size() >= kMaxMultipartHeaderBytes + 2) {
      return InvalidArgument(fmt::format("part headers longer than {} bytes", kMaxMultipartHeaderBytes));
    }
    return InvalidArgument("part headers not ended by a blank line");
  }
  bool seen_disposition = false;
  bool seen_type = false;
  for (size_t pos = 0; pos < end + 2;) {
    const size_t eol = rest.find("\r\n", pos);  // found: the block ends with CRLF
    FERRY_RETURN_IF_ERROR(ApplyHeaderLine(rest.substr(pos, eol - pos), part, &seen_disposition, &seen_type));
    pos = eol + 2;
  }
  if (!seen_disposition) return InvalidArgument("part without Content-Disposition");
  part->offset = start + end + 4;
  return Status::Ok();
}

// A delimiter line: `at` is where it starts (its leading CRLF, or 0 for one at the start of the body),
// `next` just past its CRLF (or the end of the body after a close delimiter).
struct Delimiter {
  size_t at = 0;
  bool close = false;
  size_t next = 0;
};

// Finds delimiter lines: CRLF "--" boundary, then "--" for the close delimiter, transport padding (spaces and
// tabs) and CRLF. Boyer-Moore-Horspool over the body; the pattern is at most 74 bytes, so the search is linear.
class DelimiterFinder {
 public:
  DelimiterFinder(std::string_view body, std::string_view boundary)
      : body_(body), pattern_("\r\n--" + std::string(boundary)), searcher_(pattern_.begin(), pattern_.end()) {}
  DelimiterFinder(const DelimiterFinder&) = delete;  // searcher_ points into pattern_
  DelimiterFinder& operator=(const DelimiterFinder&) = delete;

  // The delimiter at the very start of the body, which has no CRLF before it.
  std::optional<Delimiter> AtStart() const {
    const std::string_view dash_boundary = std::string_view(pattern_).substr(2);
    return body_.starts_with(dash_boundary) ? LineAfter(0, dash_boundary.size()) : std::nullopt;
  }

  // The first delimiter line whose CRLF starts at or after `from`. A match followed by other text is not one.
  std::optional<Delimiter> Next(size_t from) const {
    while (from < body_.size()) {
      const auto it = std::search(body_.begin() + from, body_.end(), searcher_);
      if (it == body_.end()) return std::nullopt;
      const size_t at = it - body_.begin();
      if (auto delimiter = LineAfter(at, at + pattern_.size())) return delimiter;
      from = at + 1;  // the padding scanned holds no CR, so no byte is scanned twice
    }
    return std::nullopt;
  }

 private:
  std::optional<Delimiter> LineAfter(size_t at, size_t after) const {
    Delimiter delimiter{at, HasAt(body_, after, "--"), 0};
    if (delimiter.close) after += 2;
    while (after < body_.size() && IsSpace(body_[after])) ++after;
    if (HasAt(body_, after, "\r\n")) {
      delimiter.next = after + 2;
      return delimiter;
    }
    if (delimiter.close && after == body_.size()) {
      delimiter.next = after;
      return delimiter;
    }
    return std::nullopt;
  }

  std::string_view body_;
  std::string pattern_;
  std::boyer_moore_horspool_searcher<std::string::const_iterator> searcher_;
};

}  // namespace

Result<std::string> MultipartBoundary(std::string_view content_type) {
  auto parsed = ParseParameterized(content_type);
  if (!parsed.ok()) return parsed.status().WithContext("Content-Type");
  if (!EqualsIgnoreCase(parsed->type, "multipart/form-data")) {
    return InvalidArgument("Content-Type is not multipart/form-data");
  }
  const Parameter* boundary = nullptr;
  for (const Parameter& p : parsed->params) {
    if (p.name != "boundary") continue;
    if (boundary != nullptr) return InvalidArgument("Content-Type has two boundary parameters");
    boundary = &p;
  }
  if (boundary == nullptr) return InvalidArgument("multipart/form-data without a boundary parameter");
  FERRY_RETURN_IF_ERROR(CheckBoundary(boundary->value));
  return boundary->value;
}

Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  size_t max_parts) {
  FERRY_RETURN_IF_ERROR(CheckBoundary(boundary));
  const DelimiterFinder finder(body, boundary);
  std::optional<Delimiter> delimiter = finder.AtStart();
  if (!delimiter) delimiter = finder.Next(0);
  if (!delimiter) return InvalidArgument("multipart body without a delimiter line for its boundary");
  std::vector<MultipartPart> parts;
  while (!delimiter->close) {
    const size_t number = parts.size() + 1;
    if (parts.size() >= max_parts) {
      return InvalidArgument(fmt::format("multipart body has more than {} parts", max_parts));
    }
    MultipartPart part;
    const Status status = ParsePartHeaders(body, delimiter->next, &part);
    if (!status.ok()) return status.WithContext(fmt::format("multipart part {}", number));
    // From the CRLF of the blank line: a part of headers only (RFC 2046 `body-part := MIME-part-headers
    // [CRLF *OCTET]`) is followed by the delimiter at once, and its content is empty.
    delimiter = finder.Next(part.offset - 2);
    if (!delimiter) {
      return InvalidArgument(fmt::format("multipart part {} not followed by a delimiter: missing close delimiter",
                                         number));
    }
    part.length = std::max(delimiter->at, part.offset) - part.offset;
    parts.push_back(std::move(part));
  }
  return parts;
}

}  // namespace ferry
