#pragma once
// Reads a batch input's records one at a time, with the byte offset and line after each, so a run can
// stop anywhere and a later one continue from a checkpoint's offset. Memory is bounded by the longest
// record (max_record_bytes), never by the file. Confined to one thread.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.h"
#include "jobs/batch.h"

namespace ferry {

struct BatchRecord {
  int64_t index = 0;          // 0-based among the input's records
  int64_t line = 0;           // 1-based line where it starts
  std::string text;           // JSONL: the line, without its line end; files: the file's bytes
  std::vector<std::string> fields;  // CSV: the row's fields; files: its path below the folder
  Status error;               // a record that could not be read (too long, bad quoting): it fails alone
  int64_t end_offset = 0;     // byte offset just past it (and its line end)
  int64_t end_line = 0;       // lines consumed through it
};

struct RecordReaderOptions {
  size_t max_record_bytes = 16 * 1024 * 1024;
  size_t read_chunk_bytes = 1024 * 1024;
};

class RecordReader {
 public:
  // Opens the input; a CSV's header row is read now (header()). kNotFound / kPermissionDenied /
  // kInvalidArgument (an empty CSV, a header that cannot be read) as the file warrants.
  static Result<std::unique_ptr<RecordReader>> Open(const std::filesystem::path& path, BatchFormat format,
                                                    RecordReaderOptions options = {});
  ~RecordReader();
  RecordReader(const RecordReader&) = delete;
  RecordReader& operator=(const RecordReader&) = delete;

  // Continues from a checkpoint: the next record starts at byte `offset`, on line `line` + 1, and is
  // record number `index`. An offset of 0 means the first record.
  Status Seek(int64_t offset, int64_t line, int64_t index);
  // The next record, or nullopt at the end. Blank JSONL lines are skipped (they are no record). A read
  // error of the file itself is a Status; a record that is malformed comes back with `error` set.
  Result<std::optional<BatchRecord>> Next();
  // CSV: the column names. Empty for JSONL.
  const std::vector<std::string>& header() const { return header_; }
  // Files: how many there are.
  int64_t file_count() const { return static_cast<int64_t>(files_.size()); }

 private:
  RecordReader(std::FILE* file, BatchFormat format, RecordReaderOptions options)
      : file_(file), format_(format), options_(options) {}
  static Result<std::unique_ptr<RecordReader>> OpenFolder(const std::filesystem::path& path,
                                                          RecordReaderOptions options);
  // Reads more of the file into buf_; false at its end.
  Result<bool> Fill();
  // Where the record at buf_[pos_] ends (past its line end), reading more as needed; nullopt at the end
  // of the file with nothing left. `too_long` when it passes max_record_bytes (it is then skipped to its
  // end without keeping it).
  Result<std::optional<size_t>> FindRecordEnd(bool* too_long);
  Status ReadHeader();
  Result<std::optional<BatchRecord>> NextFile();

  std::FILE* file_;
  BatchFormat format_;
  RecordReaderOptions options_;
  std::string buf_;           // bytes of the file from buf_offset_ on
  size_t pos_ = 0;            // next unread byte within buf_
  int64_t buf_offset_ = 0;    // file offset of buf_[0]
  bool eof_ = false;
  int64_t line_ = 0;
  int64_t index_ = 0;
  int64_t data_start_ = 0;    // offset of the first record (past a CSV header)
  int64_t header_lines_ = 0;
  std::vector<std::string> header_;
  std::filesystem::path folder_;       // files: the input folder
  std::vector<std::string> files_;     // files: every regular file below it, relative, sorted
};

// Counts the input's records (one full pass; malformed records count, blank lines do not).
Result<int64_t> CountRecords(const std::filesystem::path& path, BatchFormat format);

}  // namespace ferry
