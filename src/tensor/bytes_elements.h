#pragma once
// The BYTES element layout shared by tensors and the binary extension: each element is a 4-byte
// little-endian length followed by that many bytes, with no padding. These helpers read and write it
// without ever reading past the buffer, so they are safe on bytes straight from the network.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "tensor/buffer.h"

namespace ferry {

// Walks the elements of a BYTES buffer in order. Confined to one thread; the buffer must outlive it.
class BytesElementReader {
 public:
  explicit BytesElementReader(std::span<const uint8_t> data) : data_(data) {}

  // Sets *element to the next element and returns true; returns false at the end of the buffer or at a
  // truncated element (then malformed() is true and the reader stays there).
  bool Next(std::string_view* element);
  bool malformed() const { return malformed_; }
  // Bytes consumed so far.
  size_t offset() const { return offset_; }

 private:
  std::span<const uint8_t> data_;
  size_t offset_ = 0;
  bool malformed_ = false;
};

// Number of elements in a BYTES buffer; kInvalidArgument if an element is truncated.
Result<int64_t> CountBytesElements(std::span<const uint8_t> data);

// Appends one element (length prefix + bytes). Elements over 4 GiB cannot be represented; callers
// check that first.
void AppendBytesElement(std::vector<uint8_t>* out, std::string_view element);

// A BYTES buffer holding `elements` in order (for backends and tests).
Buffer MakeBytesBuffer(std::span<const std::string> elements);

}  // namespace ferry
