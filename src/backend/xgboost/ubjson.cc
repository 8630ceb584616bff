#include "backend/xgboost/ubjson.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include <fmt/format.h>

namespace ferry {
namespace {

// Reads one UBJSON document and appends its JSON spelling to `out_`. Single use, one thread.
class Transcoder {
 public:
  Transcoder(std::string_view bytes, int max_depth) : bytes_(bytes), max_depth_(max_depth) {
    out_.reserve(bytes.size() * 2);
  }

  Result<std::string> Run() {
    FERRY_ASSIGN_OR_RETURN(char marker, NextMarker());
    FERRY_RETURN_IF_ERROR(Value(marker, 0));
    if (pos_ != bytes_.size()) return Error("trailing bytes after the document");
    return std::move(out_);
  }

 private:
  Status Error(std::string_view what) const {
    return InvalidArgument(fmt::format("not a UBJSON document: {} at byte {}", what, pos_));
  }

  size_t Remaining() const { return bytes_.size() - pos_; }

  Result<char> Byte() {
    if (pos_ >= bytes_.size()) return Error("unexpected end of data");
    return bytes_[pos_++];
  }

  // The next marker, skipping no-ops ('N').
  Result<char> NextMarker() {
    while (true) {
      FERRY_ASSIGN_OR_RETURN(char c, Byte());
      if (c != 'N') return c;
    }
  }

  // A big-endian unsigned integer of `size` bytes.
  Result<uint64_t> BigEndian(size_t size) {
    if (Remaining() < size) return Error("unexpected end of data");
    uint64_t v = 0;
    for (size_t i = 0; i < size; ++i) v = (v << 8) | static_cast<uint8_t>(bytes_[pos_ + i]);
    pos_ += size;
    return v;
  }

  static int IntegerSize(char marker) {
    switch (marker) {
      case 'i': case 'U': return 1;
      case 'I': return 2;
      case 'l': return 4;
      case 'L': return 8;
      default: return 0;
    }
  }

  Result<int64_t> Integer(char marker) {
    const int size = IntegerSize(marker);
    if (size == 0) return Error(fmt::format("expected an integer marker, got 0x{:02x}", static_cast<uint8_t>(marker)));
    FERRY_ASSIGN_OR_RETURN(uint64_t raw, BigEndian(static_cast<size_t>(size)));
    switch (marker) {
      case 'i': return static_cast<int64_t>(static_cast<int8_t>(raw));
      case 'U': return static_cast<int64_t>(raw);
      case 'I': return static_cast<int64_t>(static_cast<int16_t>(raw));
      case 'l': return static_cast<int64_t>(static_cast<int32_t>(raw));
      default: return static_cast<int64_t>(raw);
    }
  }

  // A length or count: an integer with its own marker, 0..Remaining() (every element or byte it
  // announces must still be there, so nothing is ever sized from a number the data cannot back).
  Result<uint64_t> Length() {
    FERRY_ASSIGN_OR_RETURN(char marker, NextMarker());
    FERRY_ASSIGN_OR_RETURN(int64_t n, Integer(marker));
    if (n < 0 || static_cast<uint64_t>(n) > Remaining()) {
      return Error(fmt::format("length {} outside 0..{} (the bytes left)", n, Remaining()));
    }
    return static_cast<uint64_t>(n);
  }

  void AppendEscaped(std::string_view s) {
    out_ += '"';
    for (char c : s) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (u < 0x20) {
        out_ += fmt::format("\\u{:04x}", u);
      } else {
        out_ += c;
      }
    }
    out_ += '"';
  }

  Status String() {
    FERRY_ASSIGN_OR_RETURN(uint64_t n, Length());
    AppendEscaped(bytes_.substr(pos_, n));
    pos_ += n;
    return Status::Ok();
  }

  void AppendFloat(double v, bool single) {
    if (!std::isfinite(v)) {
      out_ += "null";
    } else if (single) {
      out_ += fmt::format("{}", static_cast<float>(v));
    } else {
      out_ += fmt::format("{}", v);
    }
  }

  // One value whose marker has been read (or is implied by a typed container).
  Status Value(char marker, int depth) {
    switch (marker) {
      case 'Z': out_ += "null"; return Status::Ok();
      case 'T': out_ += "true"; return Status::Ok();
      case 'F': out_ += "false"; return Status::Ok();
      case 'i': case 'U': case 'I': case 'l': case 'L': {
        FERRY_ASSIGN_OR_RETURN(int64_t v, Integer(marker));
        out_ += fmt::format("{}", v);
        return Status::Ok();
      }
      case 'd': {
        FERRY_ASSIGN_OR_RETURN(uint64_t raw, BigEndian(4));
        const auto bits = static_cast<uint32_t>(raw);
        float f;
        std::memcpy(&f, &bits, sizeof f);
        AppendFloat(f, true);
        return Status::Ok();
      }
      case 'D': {
        FERRY_ASSIGN_OR_RETURN(uint64_t bits, BigEndian(8));
        double d;
        std::memcpy(&d, &bits, sizeof d);
        AppendFloat(d, false);
        return Status::Ok();
      }
      case 'C': {
        FERRY_ASSIGN_OR_RETURN(char c, Byte());
        AppendEscaped(std::string_view(&c, 1));
        return Status::Ok();
      }
      case 'S': return String();
      case '[': return Container(false, depth + 1);
      case '{': return Container(true, depth + 1);
      case 'H': return Error("high-precision numbers are not supported");
      default:
        return Error(fmt::format("unknown marker 0x{:02x}", static_cast<uint8_t>(marker)));
    }
  }

  static size_t FixedSize(char type) {
    switch (type) {
      case 'Z': case 'T': case 'F': return 0;
      case 'i': case 'U': case 'C': return 1;
      case 'I': return 2;
      case 'l': case 'd': return 4;
      case 'L': case 'D': return 8;
      default: return 0;
    }
  }

  // After '[' or '{': the optional '$' type and '#' count, then the elements.
  Status Container(bool object, int depth) {
    if (depth > max_depth_) return Error(fmt::format("containers nested deeper than {}", max_depth_));
    char type = 0;
    bool counted = false;
    uint64_t count = 0;
    if (pos_ < bytes_.size() && bytes_[pos_] == '$') {
      ++pos_;
      FERRY_ASSIGN_OR_RETURN(type, Byte());
      if (type == '[' || type == '{' || type == 'N' || type == 'H') return Error("unsupported container type");
      if (pos_ >= bytes_.size() || bytes_[pos_] != '#') return Error("a typed container without a count");
    }
    if (pos_ < bytes_.size() && bytes_[pos_] == '#') {
      ++pos_;
      counted = true;
      FERRY_ASSIGN_OR_RETURN(count, Length());
      const size_t size = type != 0 ? FixedSize(type) : 0;
      if (size > 1 && count > Remaining() / size) return Error("a typed container longer than the data");
    }
    out_ += object ? '{' : '[';
    for (uint64_t i = 0;; ++i) {
      if (counted && i == count) break;
      if (!counted) {
        FERRY_ASSIGN_OR_RETURN(char next, NextMarker());
        if (next == (object ? '}' : ']')) break;
        --pos_;  // not the end: the byte belongs to the key or the value
      }
      if (i > 0) out_ += ',';
      if (object) {
        FERRY_ASSIGN_OR_RETURN(uint64_t n, Length());
        AppendEscaped(bytes_.substr(pos_, n));
        pos_ += n;
        out_ += ':';
      }
      char marker = type;
      if (marker == 0) {
        FERRY_ASSIGN_OR_RETURN(marker, NextMarker());
      }
      FERRY_RETURN_IF_ERROR(Value(marker, depth));
    }
    out_ += object ? '}' : ']';
    return Status::Ok();
  }

  std::string_view bytes_;
  int max_depth_;
  size_t pos_ = 0;
  std::string out_;
};

}  // namespace

Result<std::string> UbjsonToJson(std::string_view bytes, int max_depth) {
  return Transcoder(bytes, max_depth).Run();
}

}  // namespace ferry
