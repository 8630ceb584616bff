#include "jobs/batch_input.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "jobs/csv.h"

namespace ferry {
namespace {

int64_t LinesIn(std::string_view record) {
  int64_t n = std::count(record.begin(), record.end(), '\n');
  if (record.empty() || record.back() != '\n') ++n;
  return n;
}

std::string_view StripLineEnd(std::string_view s) {
  if (!s.empty() && s.back() == '\n') s.remove_suffix(1);
  if (!s.empty() && s.back() == '\r') s.remove_suffix(1);
  return s;
}

bool IsBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

}  // namespace

Result<std::unique_ptr<RecordReader>> RecordReader::Open(const std::filesystem::path& path, BatchFormat format,
                                                         RecordReaderOptions options) {
  std::error_code ec;
  if (format == BatchFormat::kFiles) return OpenFolder(path, options);
  if (std::filesystem::is_directory(path, ec)) {
    return InvalidArgument(fmt::format("input '{}' is a folder, not a file", path.filename().string()));
  }
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int err = errno;
    if (err == ENOENT) return NotFound(fmt::format("input '{}' does not exist", path.filename().string()));
    if (err == EACCES) return PermissionDenied(fmt::format("input '{}' cannot be read", path.filename().string()));
    return Unavailable(fmt::format("input '{}': {}", path.filename().string(), std::strerror(err)));
  }
  std::unique_ptr<RecordReader> reader(new RecordReader(f, format, options));
  if (format == BatchFormat::kCsv) FERRY_RETURN_IF_ERROR(reader->ReadHeader());
  return reader;
}

RecordReader::~RecordReader() {
  if (file_ != nullptr) std::fclose(file_);
}

Result<std::unique_ptr<RecordReader>> RecordReader::OpenFolder(const std::filesystem::path& path,
                                                               RecordReaderOptions options) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    return fs::exists(path, ec) ? InvalidArgument(fmt::format("input '{}' is not a folder", path.filename().string()))
                                : NotFound(fmt::format("input '{}' does not exist", path.filename().string()));
  }
  std::unique_ptr<RecordReader> reader(new RecordReader(nullptr, BatchFormat::kFiles, options));
  reader->folder_ = path;
  // Links are not followed: a link inside the folder must not lead a batch out of it.
  for (fs::recursive_directory_iterator it(path, fs::directory_options::none, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) {
      reader->files_.push_back(fs::relative(it->path(), path, ec).generic_string());
    }
  }
  if (ec) return Unavailable(fmt::format("listing the input folder: {}", ec.message()));
  std::sort(reader->files_.begin(), reader->files_.end());
  return reader;
}

Result<std::optional<BatchRecord>> RecordReader::NextFile() {
  if (index_ >= static_cast<int64_t>(files_.size())) return std::optional<BatchRecord>();
  BatchRecord r;
  r.index = index_;
  r.line = index_ + 1;
  r.end_offset = r.end_line = ++index_;
  r.fields = {files_[r.index]};
  const std::filesystem::path path = folder_ / files_[r.index];
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) {
    r.error = NotFound(fmt::format("'{}' cannot be read: {}", files_[r.index], ec.message()));
  } else if (size > options_.max_record_bytes) {
    r.error = InvalidArgument(fmt::format("the file is longer than {} bytes", options_.max_record_bytes));
  } else {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    r.text.resize(size);
    if (f == nullptr || std::fread(r.text.data(), 1, size, f) != size) {
      r.error = Unavailable(fmt::format("'{}' cannot be read", files_[r.index]));
      r.text.clear();
    }
    if (f != nullptr) std::fclose(f);
  }
  return std::optional<BatchRecord>(std::move(r));
}

Result<bool> RecordReader::Fill() {
  if (eof_) return false;
  if (pos_ > 0) {
    buf_.erase(0, pos_);
    buf_offset_ += static_cast<int64_t>(pos_);
    pos_ = 0;
  }
  const size_t old = buf_.size();
  buf_.resize(old + options_.read_chunk_bytes);
  const size_t n = std::fread(buf_.data() + old, 1, options_.read_chunk_bytes, file_);
  buf_.resize(old + n);
  if (n < options_.read_chunk_bytes) {
    if (std::ferror(file_)) return Unavailable(fmt::format("reading the input: {}", std::strerror(errno)));
    eof_ = true;
  }
  return n > 0;
}

Result<std::optional<size_t>> RecordReader::FindRecordEnd(bool* too_long) {
  *too_long = false;
  size_t scanned = 0;  // bytes from pos_ on already searched for a line end
  while (true) {
    if (pos_ == buf_.size() && eof_) return *too_long ? std::optional<size_t>(pos_) : std::optional<size_t>();
    std::optional<size_t> end;
    if (format_ == BatchFormat::kCsv && !*too_long) {
      end = CsvRecordEnd(buf_, pos_, eof_);
      if (!end && eof_) end = buf_.size();
    } else {
      const size_t nl = buf_.find('\n', pos_ + scanned);
      if (nl != std::string::npos) {
        end = nl + 1;
      } else if (eof_) {
        end = buf_.size();
      } else {
        scanned = buf_.size() - pos_;
      }
    }
    if (end) return end;
    if (!*too_long && buf_.size() - pos_ > options_.max_record_bytes) {
      // Past the limit the record is dropped as it streams by; only its end is looked for.
      *too_long = true;
    }
    if (*too_long) {
      buf_offset_ += static_cast<int64_t>(buf_.size());
      buf_.clear();
      pos_ = 0;
      scanned = 0;
    }
    FERRY_ASSIGN_OR_RETURN(bool more, Fill());
    (void)more;  // at the end of the file, eof_ is now set and the next pass ends the record
  }
}

Status RecordReader::ReadHeader() {
  FERRY_ASSIGN_OR_RETURN(bool any, Fill());
  if (!any) return InvalidArgument("the CSV input is empty: it needs a header row");
  pos_ = SkipUtf8Bom(buf_);
  bool too_long = false;
  FERRY_ASSIGN_OR_RETURN(std::optional<size_t> end, FindRecordEnd(&too_long));
  if (!end || too_long) return InvalidArgument("the CSV header row cannot be read");
  const std::string_view row(buf_.data() + pos_, *end - pos_);
  Result<std::vector<std::string>> fields = ParseCsvRecord(StripLineEnd(row));
  if (!fields.ok()) return fields.status().WithContext("CSV header row");
  header_ = std::move(fields).value();
  header_lines_ = LinesIn(row);
  pos_ = *end;
  data_start_ = buf_offset_ + static_cast<int64_t>(pos_);
  line_ = header_lines_;
  return Status::Ok();
}

Status RecordReader::Seek(int64_t offset, int64_t line, int64_t index) {
  if (format_ == BatchFormat::kFiles) {
    index_ = index;  // a folder's records are numbered; the offset is the same number
    return Status::Ok();
  }
  if (offset <= 0) {
    offset = data_start_;
    line = header_lines_;
  }
  if (fseeko(file_, offset, SEEK_SET) != 0) {
    return Unavailable(fmt::format("seeking the input to byte {}: {}", offset, std::strerror(errno)));
  }
  buf_.clear();
  pos_ = 0;
  buf_offset_ = offset;
  eof_ = false;
  line_ = line;
  index_ = index;
  return Status::Ok();
}

Result<std::optional<BatchRecord>> RecordReader::Next() {
  if (format_ == BatchFormat::kFiles) return NextFile();
  while (true) {
    bool too_long = false;
    FERRY_ASSIGN_OR_RETURN(std::optional<size_t> end, FindRecordEnd(&too_long));
    if (!end) return std::optional<BatchRecord>();
    const std::string_view raw(buf_.data() + pos_, *end - pos_);
    BatchRecord r;
    r.line = line_ + 1;
    r.end_line = line_ + (too_long ? 1 : LinesIn(raw));
    r.end_offset = buf_offset_ + static_cast<int64_t>(*end);
    line_ = r.end_line;
    pos_ = *end;
    if (too_long) {
      r.error = InvalidArgument(fmt::format("the record is longer than {} bytes", options_.max_record_bytes));
    } else if (IsBlank(raw)) {
      continue;  // no record; its bytes and line are consumed
    } else if (format_ == BatchFormat::kCsv) {
      Result<std::vector<std::string>> fields = ParseCsvRecord(StripLineEnd(raw));
      if (fields.ok()) {
        r.fields = std::move(fields).value();
      } else {
        r.error = fields.status();
      }
    } else {
      r.text = std::string(StripLineEnd(raw));
    }
    r.index = index_++;
    return std::optional<BatchRecord>(std::move(r));
  }
}

Result<int64_t> CountRecords(const std::filesystem::path& path, BatchFormat format) {
  FERRY_ASSIGN_OR_RETURN(std::unique_ptr<RecordReader> reader, RecordReader::Open(path, format));
  if (format == BatchFormat::kFiles) return reader->file_count();
  int64_t n = 0;
  while (true) {
    FERRY_ASSIGN_OR_RETURN(std::optional<BatchRecord> r, reader->Next());
    if (!r) return n;
    ++n;
  }
}

}  // namespace ferry
