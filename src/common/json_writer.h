#pragma once
// Minimal streaming JSON writer: appends to a std::string, escapes strings, writes numbers exactly
// (shortest round-trip for doubles and floats; NaN/Inf written as null since JSON has no spelling for
// them; negative zero as -0.0 so that it does not read back as the integer 0). The caller is responsible for well-formed nesting. Confined to one thread.
//
// Strings are treated as UTF-8. So that the output is always valid JSON (and valid UTF-8) whatever the
// bytes, each byte that does not begin a well-formed UTF-8 sequence (stray continuation bytes,
// overlong forms, surrogates, code points past U+10FFFF, truncated sequences) is replaced by U+FFFD;
// well-formed sequences pass through unescaped. Binary payloads that must survive byte for byte belong
// in the binary tensor extension, not in JSON strings.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ferry {

class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}

  JsonWriter& BeginObject();
  JsonWriter& EndObject();
  JsonWriter& BeginArray();
  JsonWriter& EndArray();
  JsonWriter& Key(std::string_view key);
  JsonWriter& String(std::string_view value);
  JsonWriter& Int(int64_t value);
  JsonWriter& Uint(uint64_t value);
  JsonWriter& Double(double value);
  // Shortest text that reads back as the same float (shorter than going through Double).
  JsonWriter& Float(float value);
  JsonWriter& Bool(bool value);
  JsonWriter& Null();
  // Appends pre-encoded JSON as one value.
  JsonWriter& Raw(std::string_view json);
  // Lets `write(std::string*)` append exactly one complete JSON value straight into the output, for
  // bulk data (tensor arrays) that would be slow to push through the per-value calls.
  template <typename WriteFn>
  JsonWriter& RawWith(WriteFn&& write) {
    Separate();
    write(out_);
    need_comma_ = true;
    return *this;
  }

 private:
  void Separate();
  template <typename Integer>
  JsonWriter& AppendInteger(Integer value);
  std::string* out_;
  bool need_comma_ = false;
};

// Appends `s` as a quoted, escaped JSON string (invalid UTF-8 handled as described above).
void AppendJsonString(std::string* out, std::string_view s);

// Room that WriteJsonNumber needs: the longest shortest-form double is 24 characters.
inline constexpr size_t kMaxJsonNumberChars = 32;
// Writes a number as JSON at `p` (which has kMaxJsonNumberChars of room) and returns its end: the
// shortest text that reads back as the same value; NaN and Inf as null; -0 as "-0.0"; never an integer
// literal too large for 64 bits.
char* WriteJsonNumber(char* p, char* end, double value);
char* WriteJsonNumber(char* p, char* end, float value);

// Append the shortest round-trip text of a number (as WriteJsonNumber); non-finite values append `null`.
void AppendJsonDouble(std::string* out, double value);
void AppendJsonFloat(std::string* out, float value);

}  // namespace ferry
