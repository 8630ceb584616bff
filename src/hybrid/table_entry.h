#pragma once
// A precomputed table's entry: a key, the outputs a model version produced for it, and when. Plus the
// compact binary form entries are stored in, and the key rules every entrance applies. Value types.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "tensor/tensor.h"

namespace ferry {

// The longest key a request or a table may carry.
inline constexpr size_t kMaxTableKeyBytes = 256;

// A key is 1..kMaxTableKeyBytes bytes without control characters; kInvalidArgument saying why otherwise.
Status CheckTableKey(std::string_view key);

struct TableEntry {
  std::string key;
  std::string model_version;  // the version that produced the outputs, as the response names it
  int64_t produced_ms = 0;    // Unix milliseconds
  std::vector<Tensor> outputs;
  std::string model;          // lookups: the model whose table answered (not stored per entry)
};

// The outputs as one blob: a count, then per tensor its name, datatype, shape and bytes.
std::string EncodeEntryOutputs(const std::vector<Tensor>& outputs);
// The reverse, every length checked against the blob: kInternal naming what is wrong (a store that
// hands back a corrupt blob is a server fault, not the caller's).
Result<std::vector<Tensor>> DecodeEntryOutputs(std::string_view blob);
// What an entry costs in memory: its key, version and tensor bytes, plus a fixed overhead per tensor.
size_t EntryBytes(const TableEntry& entry);

}  // namespace ferry
