#include "jobs/csv.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry {
namespace {

using Fields = std::vector<std::string>;

// Quoted fields with commas, CRLF and LF inside, "" escapes, empty fields, CRLF and LF line ends, and a
// last record without a line end.
constexpr std::string_view kFile =
    "custom_id,prompt,max_tokens\r\n"
    "r1,\"Hello, world\",16\r\n"
    "r2,\"two\r\nlines\",\n"
    "r3,\"say \"\"hi\"\"\",\"\"\n"
    ",,\n"
    "r4,\"\"\"\",\"a\nb\"\r\n"
    "r5,plain text with spaces ,8";

const std::vector<Fields> kFileRecords = {
    {"custom_id", "prompt", "max_tokens"}, {"r1", "Hello, world", "16"}, {"r2", "two\r\nlines", ""},
    {"r3", "say \"hi\"", ""},              {"", "", ""},                 {"r4", "\"", "a\nb"},
    {"r5", "plain text with spaces ", "8"},
};

// The record ends of the whole of `data` at EOF.
std::vector<size_t> AllEnds(std::string_view data) {
  std::vector<size_t> ends;
  for (size_t start = 0; start < data.size();) {
    auto end = CsvRecordEnd(data, start, true);
    EXPECT_TRUE(end.has_value()) << start;
    if (!end) break;
    ends.push_back(*end);
    start = *end;
  }
  return ends;
}

std::string ErrorOf(std::string_view record) {
  auto fields = ParseCsvRecord(record);
  EXPECT_FALSE(fields.ok()) << record;
  if (fields.ok()) return "";
  EXPECT_EQ(fields.status().code(), StatusCode::kInvalidArgument);
  return fields.status().message();
}

TEST(CsvTest, SkipsAUtf8ByteOrderMark) {
  EXPECT_EQ(SkipUtf8Bom("\xEF\xBB\xBF" "a,b\n"), 3u);
  EXPECT_EQ(SkipUtf8Bom("\xEF\xBB\xBF"), 3u);
  EXPECT_EQ(SkipUtf8Bom("a,b\n"), 0u);
  EXPECT_EQ(SkipUtf8Bom("\xEF\xBB"), 0u);
  EXPECT_EQ(SkipUtf8Bom(""), 0u);
}

TEST(CsvTest, RecordEndsAfterLfOrCrLf) {
  EXPECT_EQ(CsvRecordEnd("a,b\nc", 0, false), 4u);
  EXPECT_EQ(CsvRecordEnd("a,b\r\nc", 0, false), 5u);
  EXPECT_EQ(CsvRecordEnd("a,b\nc,d\r\n", 4, false), 9u);
  EXPECT_EQ(CsvRecordEnd("\n\n", 0, false), 1u);  // an empty line is a record of its own
  EXPECT_EQ(CsvRecordEnd("\r\n", 0, false), 2u);
  EXPECT_EQ(CsvRecordEnd("a\rb\n", 0, false), 4u);  // a bare CR is an ordinary character
}

TEST(CsvTest, RecordEndWithoutLineEnd) {
  EXPECT_EQ(CsvRecordEnd("a,b", 0, false), std::nullopt);
  EXPECT_EQ(CsvRecordEnd("a,b", 0, true), 3u);
  EXPECT_EQ(CsvRecordEnd("x\na,b", 2, true), 5u);
  EXPECT_EQ(CsvRecordEnd("a,b\r", 0, false), std::nullopt);  // the LF may come next
  EXPECT_EQ(CsvRecordEnd("a,b\r", 0, true), 4u);
  EXPECT_EQ(CsvRecordEnd("", 0, true), std::nullopt);  // no record starts at the end
  EXPECT_EQ(CsvRecordEnd("a\n", 2, true), std::nullopt);
  EXPECT_EQ(CsvRecordEnd("a\n", 2, false), std::nullopt);
  EXPECT_EQ(CsvRecordEnd("a\n", 7, true), std::nullopt);
}

TEST(CsvTest, QuotedFieldsHoldLineEndsCommasAndQuotes) {
  EXPECT_EQ(CsvRecordEnd("\"a\nb\",c\nd", 0, false), 8u);
  EXPECT_EQ(CsvRecordEnd("\"a\r\nb\"\r\nd", 0, false), 8u);
  EXPECT_EQ(CsvRecordEnd("x,\"a,\"\"\n\"\"\"\nd", 0, false), 12u);
  EXPECT_EQ(CsvRecordEnd("\"a\nb", 0, false), std::nullopt);  // the quote goes on past the data
  EXPECT_EQ(CsvRecordEnd("\"a\nb", 0, true), 4u);              // unterminated at EOF: ParseCsvRecord says so
  EXPECT_EQ(CsvRecordEnd("\"a\"", 0, false), std::nullopt);   // maybe the first quote of a "" pair
  EXPECT_EQ(CsvRecordEnd("\"a\"", 0, true), 3u);
  // A quote that does not start a field does not start quoting (ParseCsvRecord refuses the record).
  EXPECT_EQ(CsvRecordEnd("a\"b\nc\"\n", 0, false), 4u);
  EXPECT_EQ(CsvRecordEnd("\"a\"b\"\nc\"\n", 0, false), 6u);
}

TEST(CsvTest, ParsesFields) {
  EXPECT_EQ(*ParseCsvRecord("a,b,c"), (Fields{"a", "b", "c"}));
  EXPECT_EQ(*ParseCsvRecord("a,b,c\n"), (Fields{"a", "b", "c"}));
  EXPECT_EQ(*ParseCsvRecord("a,b,c\r\n"), (Fields{"a", "b", "c"}));
  EXPECT_EQ(*ParseCsvRecord(" a , b "), (Fields{" a ", " b "}));
  EXPECT_EQ(*ParseCsvRecord("\"a,b\",\"c\r\nd\",\"e\nf\""), (Fields{"a,b", "c\r\nd", "e\nf"}));
  EXPECT_EQ(*ParseCsvRecord("\"say \"\"hi\"\"\",\"\"\"\""), (Fields{"say \"hi\"", "\""}));
  EXPECT_EQ(*ParseCsvRecord("\xC3\xA9t\xC3\xA9,\"\xE2\x82\xAC\"\n"), (Fields{"\xC3\xA9t\xC3\xA9", "\xE2\x82\xAC"}));
  EXPECT_EQ(*ParseCsvRecord("a\rb,c\r"), (Fields{"a\rb", "c\r"}));  // bare CRs are data
}

TEST(CsvTest, EmptyFieldsAndRecords) {
  EXPECT_EQ(*ParseCsvRecord(""), (Fields{""}));
  EXPECT_EQ(*ParseCsvRecord("\n"), (Fields{""}));
  EXPECT_EQ(*ParseCsvRecord("\r\n"), (Fields{""}));
  EXPECT_EQ(*ParseCsvRecord(","), (Fields{"", ""}));
  EXPECT_EQ(*ParseCsvRecord("a,"), (Fields{"a", ""}));
  EXPECT_EQ(*ParseCsvRecord(",,\n"), (Fields{"", "", ""}));
  EXPECT_EQ(*ParseCsvRecord("\"\""), (Fields{""}));
  EXPECT_EQ(*ParseCsvRecord("\"\",\"\"\r\n"), (Fields{"", ""}));
}

TEST(CsvTest, EveryMalformedRecordIsNamed) {
  EXPECT_EQ(ErrorOf("a\"b"), "CSV field 1: quote inside an unquoted field");
  EXPECT_EQ(ErrorOf("x,a\"\n"), "CSV field 2: quote inside an unquoted field");
  EXPECT_EQ(ErrorOf("\"a\"b"), "CSV field 1: text after a closing quote");
  EXPECT_EQ(ErrorOf("x,\"a\" ,b"), "CSV field 2: text after a closing quote");
  EXPECT_EQ(ErrorOf("\"a\"\"\"x\""), "CSV field 1: text after a closing quote");
  EXPECT_EQ(ErrorOf("\"abc"), "CSV field 1: unterminated quoted field");
  EXPECT_EQ(ErrorOf("a,\"b\nc\n"), "CSV field 2: unterminated quoted field");
  EXPECT_EQ(ErrorOf("\"a\"\""), "CSV field 1: unterminated quoted field");
  EXPECT_EQ(ErrorOf("a\nb"), "CSV field 1: text after the record's line end");
  EXPECT_EQ(ErrorOf("a,b\r\n\r\n"), "CSV field 2: text after the record's line end");
}

TEST(CsvTest, ReadsAWholeFileWithAByteOrderMark) {
  const std::string data = "\xEF\xBB\xBF" + std::string(kFile);
  std::vector<Fields> records;
  for (size_t start = SkipUtf8Bom(data); start < data.size();) {
    auto end = CsvRecordEnd(data, start, true);
    ASSERT_TRUE(end.has_value());
    ASSERT_GT(*end, start);
    auto fields = ParseCsvRecord(std::string_view(data).substr(start, *end - start));
    ASSERT_TRUE(fields.ok()) << fields.status().ToString();
    records.push_back(*fields);
    start = *end;
  }
  EXPECT_EQ(records, kFileRecords);
}

TEST(CsvTest, ARecordSplitAnywhereEndsWhereItDoesInTheWhole) {
  for (const std::string_view data :
       {kFile, std::string_view("\"a\"\"\r\n\",\"\r\"\r\n\"\"\n"), std::string_view("x\r\r\n\"\"\"\"\r\n,\r")}) {
    const std::vector<size_t> ends = AllEnds(data);
    size_t start = 0;
    for (const size_t end : ends) {
      for (size_t cut = start; cut <= data.size(); ++cut) {
        const std::string prefix(data.substr(0, cut));  // its own allocation: ASan sees reads past the cut
        const auto partial = CsvRecordEnd(prefix, start, false);
        SCOPED_TRACE("record at " + std::to_string(start) + " cut at " + std::to_string(cut));
        if (partial) {
          EXPECT_EQ(*partial, end);
        }
        if (cut >= end && data[end - 1] == '\n') {
          EXPECT_EQ(partial, end);  // a line end once seen is final
        }
        if (cut < end) {
          EXPECT_FALSE(partial.has_value());
        }
      }
      start = end;
    }
  }
}

TEST(CsvTest, AChunkedReaderSeesTheSameRecords) {
  const std::vector<size_t> whole = AllEnds(kFile);
  for (size_t chunk = 1; chunk <= kFile.size(); ++chunk) {
    std::string buffer;
    size_t read = 0;
    size_t start = 0;  // within buffer; the caller keeps earlier bytes here for simplicity
    std::vector<size_t> ends;
    while (start < kFile.size()) {
      const bool at_eof = read == kFile.size();
      auto end = CsvRecordEnd(buffer, start, at_eof);
      if (end) {
        ends.push_back(*end);
        start = *end;
        continue;
      }
      ASSERT_FALSE(at_eof);
      const size_t n = std::min(chunk, kFile.size() - read);
      buffer.append(kFile.substr(read, n));
      read += n;
    }
    EXPECT_EQ(ends, whole) << "chunks of " << chunk;
  }
}

TEST(CsvTest, LongQuotedFieldsStayLinear) {
  std::string data = "id,\"";
  for (int i = 0; i < 1 << 20; ++i) data += "a,\"\"\r\n";
  data += "\"\nnext\n";
  const auto end = CsvRecordEnd(data, 0, false);
  ASSERT_TRUE(end.has_value());
  EXPECT_EQ(*end, data.size() - 5);
  auto fields = ParseCsvRecord(std::string_view(data).substr(0, *end));
  ASSERT_TRUE(fields.ok()) << fields.status().ToString();
  ASSERT_EQ(fields->size(), 2u);
  EXPECT_EQ((*fields)[1].size(), (1u << 20) * 5);
}

}  // namespace
}  // namespace ferry
