#pragma once
// Precomputed tables: named maps from a key to a model's outputs, published whole (readers see the old
// table or the new one, never a mix) and read before inference. The interface, so that a store other
// than the embedded SQLite one (Redis, for replicas) can stand behind it. Thread-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "hybrid/table_entry.h"
#include "repository/model_config.h"  // CheckTableName

namespace ferry {

struct TableInfo {
  std::string name;
  std::string model;          // the model whose outputs it holds
  int64_t generation = 0;     // 1 for the first publish, +1 each time
  int64_t entries = 0;        // entries published, plus those written back since
  int64_t published_ms = 0;   // Unix milliseconds
  int64_t oldest_ms = 0;      // the oldest entry's produced_ms at publish
  std::string source;         // what it was published from: a file, a batch id
};

// Receives a publish's entries one at a time; an entry whose key came before replaces it.
class TableSink {
 public:
  virtual ~TableSink() = default;
  virtual Status Add(const TableEntry& entry) = 0;
};

struct TableStats {
  int64_t memory_bytes = 0;   // entries held in memory in front of the store
  int64_t memory_entries = 0;
  int64_t memory_evictions = 0;
  int64_t write_backs = 0;    // written back from live answers
  int64_t write_backs_dropped = 0;  // the write-back queue was full
};

class TableStore {
 public:
  virtual ~TableStore() = default;
  // Publishes a new generation of `table` for `model`: `produce` feeds every entry to the sink; when it
  // returns an error nothing is published and the old generation keeps serving. The new generation
  // becomes visible to lookups all at once, when it is committed. A table holds one model's answers:
  // publishing another model's into it is kFailedPrecondition (drop it first).
  virtual Result<TableInfo> Publish(const std::string& table, const std::string& model, const std::string& source,
                                    const std::function<Status(TableSink&)>& produce) = 0;
  // The entry for `key` in the table's current generation (its `model` set to the table's); nullopt for
  // an unknown table or key.
  virtual Result<std::optional<TableEntry>> Lookup(const std::string& table, const std::string& key) = 0;
  // Queues a live answer into the current generation (replacing any entry of the key). Never blocks:
  // a full queue drops it (counted). Does nothing for a table that was never published.
  virtual void WriteBack(const std::string& table, TableEntry entry) = 0;
  virtual std::vector<TableInfo> List() = 0;
  virtual Result<TableInfo> Get(const std::string& table) = 0;  // kNotFound for an unknown table
  virtual Status Drop(const std::string& table) = 0;            // kNotFound for an unknown table
  virtual TableStats Stats() const = 0;
};

}  // namespace ferry
