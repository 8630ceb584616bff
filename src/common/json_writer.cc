#include "common/json_writer.h"

#include <algorithm>

#include <charconv>
#include <cmath>

namespace ferry {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD in UTF-8
// to_chars writes "-0", which JSON parsers (simdjson among them) read as the integer 0, losing the sign.

// Length of the well-formed UTF-8 sequence starting at s[i] (a byte >= 0x80), or 0 if it is not one.
// Ranges from RFC 3629 section 4, which excludes overlong forms, surrogates and values past U+10FFFF.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char b0 = byte(i);
  const size_t left = s.size() - i;
  const auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < left && byte(i + k) >= lo && byte(i + k) <= hi;
  };
  if (b0 >= 0xC2 && b0 <= 0xDF) return cont(1) ? 2 : 0;
  if (b0 == 0xE0) return cont(1, 0xA0) && cont(2) ? 3 : 0;
  if ((b0 >= 0xE1 && b0 <= 0xEC) || b0 == 0xEE || b0 == 0xEF) return cont(1) && cont(2) ? 3 : 0;
  if (b0 == 0xED) return cont(1, 0x80, 0x9F) && cont(2) ? 3 : 0;
  if (b0 == 0xF0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xF1 && b0 <= 0xF3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 == 0xF4) return cont(1, 0x80, 0x8F) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

}  // namespace

void AppendJsonString(std::string* out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t run_start = 0;  // bytes [run_start, i) need no escaping and are appended in one go
  size_t i = 0;
  const auto flush = [&] { out->append(s.data() + run_start, i - run_start); };
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
      ++i;
      continue;
    }
    if (c >= 0x80) {
      const size_t length = Utf8SequenceLength(s, i);
      if (length != 0) {
        i += length;
        continue;
      }
      flush();
      out->append(kReplacement);
      run_start = ++i;
      continue;
    }
    flush();
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default: {
        const char escape[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 0xf]};
        out->append(escape, sizeof(escape));
      }
    }
    run_start = ++i;
  }
  flush();
  out->push_back('"');
}

namespace {

template <typename F>
char* WriteJsonFloatingPoint(char* p, char* end, F value) {
  if (!std::isfinite(value)) return std::copy_n("null", 4, p);
  // to_chars gives "-0", which JSON parsers (simdjson included) read as the integer 0 and lose the sign.
  if (value == 0 && std::signbit(value)) return std::copy_n("-0.0", 4, p);
  char* stop = std::to_chars(p, end, value).ptr;
  // The shortest form of a large value may be a plain integer ("222222222222222230000"), which parsers
  // refuse or misread past 64 bits; such values take the exponent form instead.
  if (std::fabs(value) >= F(1e18) && std::find_if(p, stop, [](char c) { return c == '.' || c == 'e'; }) == stop) {
    stop = std::to_chars(p, end, value, std::chars_format::scientific).ptr;
  }
  return stop;
}

}  // namespace

char* WriteJsonNumber(char* p, char* end, double value) { return WriteJsonFloatingPoint(p, end, value); }
char* WriteJsonNumber(char* p, char* end, float value) { return WriteJsonFloatingPoint(p, end, value); }

void AppendJsonDouble(std::string* out, double value) {
  char buffer[kMaxJsonNumberChars];
  out->append(buffer, WriteJsonNumber(buffer, buffer + sizeof(buffer), value));
}

void AppendJsonFloat(std::string* out, float value) {
  char buffer[kMaxJsonNumberChars];
  out->append(buffer, WriteJsonNumber(buffer, buffer + sizeof(buffer), value));
}

void JsonWriter::Separate() {
  if (need_comma_) out_->push_back(',');
}

JsonWriter& JsonWriter::BeginObject() {
  Separate();
  out_->push_back('{');
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::EndObject() {
  out_->push_back('}');
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::BeginArray() {
  Separate();
  out_->push_back('[');
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::EndArray() {
  out_->push_back(']');
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Key(std::string_view key) {
  Separate();
  AppendJsonString(out_, key);
  out_->push_back(':');
  // The value that follows must not be preceded by a comma.
  need_comma_ = false;
  return *this;
}

JsonWriter& JsonWriter::String(std::string_view value) {
  Separate();
  AppendJsonString(out_, value);
  need_comma_ = true;
  return *this;
}

template <typename Integer>
JsonWriter& JsonWriter::AppendInteger(Integer value) {
  Separate();
  char buffer[24];  // 20 digits and a sign at most
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  out_->append(buffer, result.ptr);
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Int(int64_t value) { return AppendInteger(value); }
JsonWriter& JsonWriter::Uint(uint64_t value) { return AppendInteger(value); }

JsonWriter& JsonWriter::Double(double value) {
  Separate();
  AppendJsonDouble(out_, value);
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Float(float value) {
  Separate();
  AppendJsonFloat(out_, value);
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Bool(bool value) {
  Separate();
  out_->append(value ? "true" : "false");
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Null() {
  Separate();
  out_->append("null");
  need_comma_ = true;
  return *this;
}

JsonWriter& JsonWriter::Raw(std::string_view json) {
  Separate();
  out_->append(json);
  need_comma_ = true;
  return *this;
}

}  // namespace ferry
