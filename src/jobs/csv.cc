#include "jobs/csv.h"

#include <fmt/format.h>

namespace ferry {
namespace {

// The length of the line end at record[i]: 1 for LF, 2 for CRLF, 0 for anything else.
size_t LineEndAt(std::string_view record, size_t i) {
  if (record[i] == '\n') return 1;
  return record[i] == '\r' && i + 1 < record.size() && record[i + 1] == '\n' ? 2 : 0;
}

Status FieldError(size_t field, std::string_view what) {
  return InvalidArgument(fmt::format("CSV field {}: {}", field, what));
}

}  // namespace

size_t SkipUtf8Bom(std::string_view data) { return data.starts_with("\xEF\xBB\xBF") ? 3 : 0; }

std::optional<size_t> CsvRecordEnd(std::string_view data, size_t start, bool at_eof) {
  bool field_start = true;
  size_t i = start;
  while (i < data.size()) {
    if (field_start && data[i] == '"') {  // a quoted field: up to the quote not followed by another
      size_t quote = data.find('"', i + 1);
      while (quote != std::string_view::npos && quote + 1 < data.size() && data[quote + 1] == '"') {
        quote = data.find('"', quote + 2);
      }
      if (quote == std::string_view::npos) break;  // unterminated within data
      // A closing quote that is the last byte may still be the first of a "" pair once more data comes;
      // either way no line end follows it within data, so the loop ends without a result.
      i = quote + 1;
      field_start = false;
      continue;
    }
    if (const size_t line_end = LineEndAt(data, i); line_end != 0) return i + line_end;
    field_start = data[i] == ',';
    ++i;
  }
  if (at_eof && start < data.size()) return data.size();
  return std::nullopt;
}

Result<std::vector<std::string>> ParseCsvRecord(std::string_view record) {
  enum class State { kFieldStart, kUnquoted, kQuoted, kAfterQuote };
  std::vector<std::string> fields(1);
  State state = State::kFieldStart;
  for (size_t i = 0; i < record.size(); ++i) {
    const char c = record[i];
    if (state == State::kQuoted) {
      if (c != '"') {
        fields.back().push_back(c);
      } else if (i + 1 < record.size() && record[i + 1] == '"') {
        fields.back().push_back('"');
        ++i;
      } else {
        state = State::kAfterQuote;
      }
      continue;
    }
    if (const size_t line_end = LineEndAt(record, i); line_end != 0) {
      if (i + line_end != record.size()) return FieldError(fields.size(), "text after the record's line end");
      break;
    }
    if (c == ',') {
      fields.emplace_back();
      state = State::kFieldStart;
    } else if (state == State::kAfterQuote) {
      return FieldError(fields.size(), "text after a closing quote");
    } else if (c == '"') {
      if (state == State::kUnquoted) return FieldError(fields.size(), "quote inside an unquoted field");
      state = State::kQuoted;
    } else {
      fields.back().push_back(c);
      state = State::kUnquoted;
    }
  }
  if (state == State::kQuoted) return FieldError(fields.size(), "unterminated quoted field");
  return fields;
}

}  // namespace ferry
