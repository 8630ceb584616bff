#pragma once
// Precomputed tables, transport-neutral: GET /v1/tables, GET/PUT/DELETE /v1/tables/{name}, GET
// /v1/tables/{name}/entries/{key}, as JSON; and the publish that ends a batch with `publish`. Calls
// block on the store: callers run them off the I/O threads. Thread-safe.
#include <filesystem>
#include <string>
#include <string_view>

#include "api/table_file.h"
#include "hybrid/table_store.h"
#include "jobs/batch.h"
#include "lifecycle/model_manager.h"

namespace ferry {

struct TablePublishRequest {
  std::string table;
  std::string model;      // must be loaded: its config checks every entry
  std::string version;    // for entries that name none; empty: the model's serving version
  TableFileFormat format = TableFileFormat::kJsonl;
};

class TableService {
 public:
  // `spool_dir` holds a PUT body while it is read.
  TableService(TableStore* store, ModelManager* manager, std::filesystem::path spool_dir, const WallClock* clock)
      : store_(store), manager_(manager), spool_dir_(std::move(spool_dir)), clock_(clock) {}

  Result<std::string> ListJson();
  Result<std::string> GetJson(const std::string& name);
  Result<std::string> EntryJson(const std::string& name, const std::string& key);
  // Publishes `body` (a table file's bytes) as the table's new generation; answers the table.
  Result<std::string> Publish(const TablePublishRequest& request, std::string_view body);
  Result<std::string> Drop(const std::string& name);
  // A completed batch's output into its `publish_table`, entries made when the batch started running.
  Status PublishBatchOutput(const Batch& batch);

 private:
  Result<ModelHandle> Model(const std::string& model) const;

  TableStore* store_;
  ModelManager* manager_;
  std::filesystem::path spool_dir_;
  const WallClock* clock_;
};

std::string TableInfoJson(const TableInfo& info);

}  // namespace ferry
