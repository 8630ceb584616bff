#pragma once
// Reads and writes of tensor elements at any address: binary inputs are views into the request body,
// so their data is not aligned for the element type, and a plain pointer cast would be undefined.
#include <cstdint>
#include <cstring>

namespace ferry {

template <typename T>
T LoadUnaligned(const uint8_t* p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T>
void StoreUnaligned(uint8_t* p, T value) {
  std::memcpy(p, &value, sizeof(T));
}

}  // namespace ferry
