#include "hybrid/table_entry.h"

#include <fmt/format.h>

#include <cstring>

namespace ferry {
namespace {

template <typename T>
void Put(std::string* out, T value) {
  char bytes[sizeof(T)];
  std::memcpy(bytes, &value, sizeof(T));
  out->append(bytes, sizeof(T));
}

class Reader {
 public:
  explicit Reader(std::string_view blob) : rest_(blob) {}
  template <typename T>
  bool Get(T* value) {
    if (rest_.size() < sizeof(T)) return false;
    std::memcpy(value, rest_.data(), sizeof(T));
    rest_.remove_prefix(sizeof(T));
    return true;
  }
  bool Take(size_t n, std::string_view* out) {
    if (rest_.size() < n) return false;
    *out = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return true;
  }
  bool done() const { return rest_.empty(); }

 private:
  std::string_view rest_;
};

Status Corrupt(std::string_view what) { return Internal(fmt::format("a stored table entry is corrupt: {}", what)); }

}  // namespace

Status CheckTableKey(std::string_view key) {
  if (key.empty()) return InvalidArgument("a key must not be empty");
  if (key.size() > kMaxTableKeyBytes) {
    return InvalidArgument(fmt::format("a key may have at most {} bytes; this one has {}", kMaxTableKeyBytes, key.size()));
  }
  for (unsigned char c : key) {
    if (c < 0x20 || c == 0x7f) return InvalidArgument("a key must not hold control characters");
  }
  return Status::Ok();
}

std::string EncodeEntryOutputs(const std::vector<Tensor>& outputs) {
  std::string out;
  Put<uint32_t>(&out, static_cast<uint32_t>(outputs.size()));
  for (const Tensor& t : outputs) {
    Put<uint32_t>(&out, static_cast<uint32_t>(t.name.size()));
    out += t.name;
    Put<uint8_t>(&out, static_cast<uint8_t>(t.dtype));
    Put<uint8_t>(&out, static_cast<uint8_t>(t.shape.size()));
    for (int64_t d : t.shape) Put<int64_t>(&out, d);
    Put<uint64_t>(&out, t.data.size());
    out.append(reinterpret_cast<const char*>(t.data.data()), t.data.size());
  }
  return out;
}

Result<std::vector<Tensor>> DecodeEntryOutputs(std::string_view blob) {
  Reader r(blob);
  uint32_t count = 0;
  if (!r.Get(&count) || count > 1024) return Corrupt("tensor count");
  std::vector<Tensor> outputs(count);
  for (Tensor& t : outputs) {
    uint32_t name_size = 0;
    std::string_view name;
    uint8_t dtype = 0;
    uint8_t rank = 0;
    if (!r.Get(&name_size) || !r.Take(name_size, &name) || !r.Get(&dtype) || !r.Get(&rank)) return Corrupt("tensor header");
    t.name = std::string(name);
    if (dtype > static_cast<uint8_t>(DataType::kBytes)) return Corrupt("datatype");
    t.dtype = static_cast<DataType>(dtype);
    t.shape.resize(rank);
    for (int64_t& d : t.shape) {
      if (!r.Get(&d)) return Corrupt("shape");
    }
    uint64_t size = 0;
    std::string_view bytes;
    if (!r.Get(&size) || !r.Take(size, &bytes)) return Corrupt("tensor bytes");
    t.data = Buffer::Copy(bytes.data(), bytes.size());
    if (Status s = t.ValidateData(); !s.ok()) return Corrupt(s.message());
  }
  if (!r.done()) return Corrupt("trailing bytes");
  return outputs;
}

size_t EntryBytes(const TableEntry& entry) {
  size_t bytes = 96 + entry.key.size() + entry.model_version.size();
  for (const Tensor& t : entry.outputs) bytes += 96 + t.name.size() + t.shape.size() * 8 + t.data.size();
  return bytes;
}

}  // namespace ferry
