#pragma once
// RFC 4180 CSV for batch inputs read from a file in chunks. Pure functions, thread-safe.
// A field is quoted when it starts with `"`; quoted fields may hold commas, CR, LF and `""` (one quote).
// Line ends are LF or CRLF; a CR not followed by LF is an ordinary character.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry {

// 3 when `data` starts with a UTF-8 byte order mark (EF BB BF), else 0: where a file's first record starts.
size_t SkipUtf8Bom(std::string_view data);

// Where the record starting at `start` in `data` ends: the offset just past its line end (LF or CRLF),
// or data.size() when `at_eof` and the last record has no line end. nullopt when the record is not
// complete within `data` (a quoted field continues past the end and !at_eof, or no line end yet and
// !at_eof): the caller reads more and asks again. nullopt too when start >= data.size() (no record there).
// A result is always > start and <= data.size(), and it never changes when the caller appends data: a
// record that ends within a prefix ends at the same place in the whole. Malformed quoting does not stop
// the search (a `"` inside an unquoted field is an ordinary character here; an unterminated quote at EOF
// runs to the end): ParseCsvRecord reports it. Linear in the record's length.
std::optional<size_t> CsvRecordEnd(std::string_view data, size_t start, bool at_eof);

// Splits one record (without or with its line end) into fields, unquoting. An empty record is one empty
// field; "a," is two fields. kInvalidArgument with a message naming the field for: a quote inside an
// unquoted field, text after a closing quote, an unterminated quote, and text after the record's line end.
Result<std::vector<std::string>> ParseCsvRecord(std::string_view record);

}  // namespace ferry
