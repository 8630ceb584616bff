#include "tensor/bytes_elements.h"

#include <cstring>

#include <fmt/format.h>

namespace ferry {

bool BytesElementReader::Next(std::string_view* element) {
  if (malformed_ || offset_ == data_.size()) return false;
  const size_t remaining = data_.size() - offset_;
  if (remaining < 4) {
    malformed_ = true;
    return false;
  }
  const uint8_t* p = data_.data() + offset_;
  // Assembled byte by byte: the wire is little-endian whatever the host is, and p may be unaligned.
  const uint32_t length = uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
  if (length > remaining - 4) {
    malformed_ = true;
    return false;
  }
  *element = std::string_view(reinterpret_cast<const char*>(p + 4), length);
  offset_ += 4 + size_t{length};
  return true;
}

Result<int64_t> CountBytesElements(std::span<const uint8_t> data) {
  BytesElementReader reader(data);
  std::string_view element;
  int64_t count = 0;
  while (reader.Next(&element)) ++count;
  if (reader.malformed()) {
    return InvalidArgument(fmt::format("BYTES element {} at byte offset {} is truncated ({} bytes remain)",
                                       count, reader.offset(), data.size() - reader.offset()));
  }
  return count;
}

void AppendBytesElement(std::vector<uint8_t>* out, std::string_view element) {
  const auto length = static_cast<uint32_t>(element.size());
  const uint8_t prefix[4] = {static_cast<uint8_t>(length), static_cast<uint8_t>(length >> 8),
                             static_cast<uint8_t>(length >> 16), static_cast<uint8_t>(length >> 24)};
  out->insert(out->end(), prefix, prefix + 4);
  out->insert(out->end(), element.begin(), element.end());
}

Buffer MakeBytesBuffer(std::span<const std::string> elements) {
  size_t total = 0;
  for (const std::string& e : elements) total += 4 + e.size();
  std::vector<uint8_t> bytes;
  bytes.reserve(total);
  for (const std::string& e : elements) AppendBytesElement(&bytes, e);
  return Buffer::Own(std::move(bytes));
}

}  // namespace ferry
