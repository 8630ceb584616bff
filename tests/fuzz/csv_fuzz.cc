// Fuzzes the CSV reader: the input is a file, split into records with CsvRecordEnd and each record parsed.
// Record ends must advance, stay inside the data and not change when the data is cut short (the chunked
// reader's case); a record that parses must come back the same after quoting it again; every error is
// kInvalidArgument.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "fuzz_check.h"
#include "jobs/csv.h"

namespace {

using namespace ferry;

using fuzz::Check;

std::string Quote(const std::vector<std::string>& fields) {
  std::string out;
  for (size_t i = 0; i < fields.size(); ++i) {
    if (i > 0) out += ',';
    out += '"';
    for (char c : fields[i]) {
      if (c == '"') out += '"';
      out += c;
    }
    out += '"';
  }
  return out + "\r\n";
}

void CheckRecord(std::string_view record) {
  auto fields = ParseCsvRecord(record);
  if (!fields.ok()) {
    Check(fields.status().code() == StatusCode::kInvalidArgument, "an error other than kInvalidArgument");
    return;
  }
  Check(!fields->empty(), "a record without fields");
  const std::string quoted = Quote(*fields);
  Check(CsvRecordEnd(quoted, 0, false) == quoted.size(), "a quoted record that does not end at its line end");
  auto again = ParseCsvRecord(quoted);
  Check(again.ok() && *again == *fields, "quoting the fields again changes them");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t bom = SkipUtf8Bom(input);
  Check(bom == 0 || bom == 3, "a byte order mark that is not 3 bytes");
  for (size_t start = bom; start < input.size();) {
    const auto end = CsvRecordEnd(input, start, true);
    Check(end.has_value(), "no record end at EOF");
    Check(*end > start && *end <= input.size(), "a record end outside (start, size]");
    const auto open = CsvRecordEnd(input, start, false);  // as if more data could follow
    Check(open ? *open == *end : *end == input.size(), "at_eof changes a record end other than the last");
    // Cut within the record, in its own allocation so that ASan sees a read past the cut.
    const std::string prefix(input.substr(0, start + (*end - start) / 2));
    const auto partial = CsvRecordEnd(prefix, start, false);
    Check(!partial.has_value(), "a record end found before the record ends");
    CheckRecord(input.substr(start, *end - start));
    start = *end;
  }
  CheckRecord(input);
  return 0;
}
