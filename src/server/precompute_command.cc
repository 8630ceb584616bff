// `ferry precompute`: loads and lists the precomputed tables of a data folder, with no server needed
// (a running server on the same folder sees a load within a second).
//   ferry precompute load --model-repository R --model M --table T --file F [--format csv]
//                         [--model-version V] [--data-dir D]
//   ferry precompute list [--data-dir D]
// The file is checked against the model's config.yaml (every output, its datatype and shape); any bad
// line is listed and nothing is published. Exit codes: 0 done, 1 refused, 2 usage.
#include "server/precompute_command.h"

#include <fmt/format.h>

#include <iostream>
#include <string>

#include "api/table_file.h"
#include "api/table_service.h"
#include "hybrid/sqlite_table_store.h"
#include "repository/model_repository.h"

namespace ferry {
namespace {

struct Flags {
  std::string repository = "examples/models";
  std::string model;
  std::string table;
  std::string file;
  std::string format;
  std::string version;
  std::string data_dir = "data";
};

Result<std::unique_ptr<SqliteTableStore>> OpenStore(const Flags& f) {
  SqliteTableStoreOptions options;
  options.start_writer = false;  // this process writes no write-backs
  return SqliteTableStore::Open(std::filesystem::path(f.data_dir) / "tables.db", options);
}

int Load(const Flags& f) {
  ModelRepository repository(f.repository);
  Result<RepositoryModel> model = repository.ReadModel(f.model);
  if (!model.ok() || !model->config.ok()) {
    const Status& s = !model.ok() ? model.status() : model->config.status();
    std::cerr << "ferry precompute: model '" << f.model << "': " << s.message() << "\n";
    return 1;
  }
  TableFileOptions options;
  options.format = f.format.empty() ? TableFileFormatFor(f.file)
                                    : (f.format == "csv" ? TableFileFormat::kCsv : TableFileFormat::kJsonl);
  options.default_version = f.version;
  if (options.default_version.empty() && !model->versions.empty()) {
    options.default_version = std::to_string(model->versions.back());
  }
  options.produced_ms = WallClock::Real().NowUnixMs();
  Result<std::unique_ptr<SqliteTableStore>> store = OpenStore(f);
  if (!store.ok()) {
    std::cerr << "ferry precompute: " << store.status().message() << "\n";
    return 1;
  }
  Result<TableInfo> info = PublishTableFile(store->get(), f.table, *model->config, f.file, options, f.file);
  if (!info.ok()) {
    std::cerr << "ferry precompute: " << info.status().message() << "\n";
    return 1;
  }
  std::cout << TableInfoJson(*info) << "\n";
  return 0;
}

int List(const Flags& f) {
  Result<std::unique_ptr<SqliteTableStore>> store = OpenStore(f);
  if (!store.ok()) {
    std::cerr << "ferry precompute: " << store.status().message() << "\n";
    return 1;
  }
  for (const TableInfo& t : (*store)->List()) std::cout << TableInfoJson(t) << "\n";
  return 0;
}

}  // namespace

void AddPrecomputeCommand(CLI::App& app) {
  auto f = std::make_shared<Flags>();
  CLI::App* cmd = app.add_subcommand("precompute", "Load and list precomputed tables");
  cmd->require_subcommand(1);
  CLI::App* load = cmd->add_subcommand("load", "Publish a JSONL or CSV file as a table's new generation");
  load->add_option("--model-repository", f->repository, "Model repository")->capture_default_str();
  load->add_option("--model", f->model, "The model the table answers for")->required();
  load->add_option("--table", f->table, "Table name")->required();
  load->add_option("--file", f->file, "JSONL (v2 responses keyed by id) or CSV (id and output columns)")->required();
  load->add_option("--format", f->format, "jsonl or csv (default: from the file's name)")
      ->check(CLI::IsMember({"jsonl", "csv"}));
  load->add_option("--model-version", f->version, "For entries that name none (default: the newest version folder)");
  load->add_option("--data-dir", f->data_dir, "The server's data folder")->capture_default_str();
  load->callback([f] { throw CLI::RuntimeError(Load(*f)); });
  CLI::App* list = cmd->add_subcommand("list", "List a data folder's tables");
  list->add_option("--data-dir", f->data_dir, "The server's data folder")->capture_default_str();
  list->callback([f] { throw CLI::RuntimeError(List(*f)); });
}

}  // namespace ferry
