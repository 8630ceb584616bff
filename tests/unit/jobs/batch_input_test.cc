#include "jobs/batch_input.h"

#include <gtest/gtest.h>

#include <fstream>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;

class RecordReaderTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name, const std::string& text) {
    const auto p = dir_.root() / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  static std::vector<BatchRecord> ReadAll(RecordReader& r) {
    std::vector<BatchRecord> out;
    while (true) {
      auto next = r.Next();
      EXPECT_TRUE(next.ok()) << next.status().ToString();
      if (!next.ok() || !next->has_value()) return out;
      out.push_back(std::move(**next));
    }
  }
  TempRepository dir_;
};

TEST_F(RecordReaderTest, JsonlLinesWithOffsetsAndLineNumbersSkippingBlankLines) {
  const auto p = Write("in.jsonl", "{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}");
  auto reader = RecordReader::Open(p, BatchFormat::kOip);
  ASSERT_TRUE(reader.ok());
  auto records = ReadAll(**reader);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].text, "{\"a\":1}");
  EXPECT_EQ(records[0].line, 1);
  EXPECT_EQ(records[0].end_offset, 8);
  EXPECT_EQ(records[1].text, "{\"b\":2}");  // CR dropped
  EXPECT_EQ(records[1].line, 4);
  EXPECT_EQ(records[1].index, 1);
  EXPECT_EQ(records[2].text, "{\"c\":3}");  // the last line needs no line end
  EXPECT_EQ(records[2].end_offset, 28);
  EXPECT_EQ(records[2].end_line, 5);
}

TEST_F(RecordReaderTest, SeekContinuesExactlyWhereARecordEnded) {
  std::string text;
  for (int i = 0; i < 100; ++i) text += "{\"i\":" + std::to_string(i) + "}\n";
  const auto p = Write("in.jsonl", text);
  auto reader = RecordReader::Open(p, BatchFormat::kOip, RecordReaderOptions{1024, 7});  // tiny chunks
  ASSERT_TRUE(reader.ok());
  auto all = ReadAll(**reader);
  ASSERT_EQ(all.size(), 100u);
  auto again = RecordReader::Open(p, BatchFormat::kOip);
  ASSERT_TRUE((*again)->Seek(all[41].end_offset, all[41].end_line, all[41].index + 1).ok());
  auto rest = ReadAll(**again);
  ASSERT_EQ(rest.size(), 58u);
  EXPECT_EQ(rest[0].text, all[42].text);
  EXPECT_EQ(rest[0].index, 42);
  EXPECT_EQ(rest[0].line, 43);
}

TEST_F(RecordReaderTest, ARecordOverTheLimitFailsAloneAndTheNextOneIsRead) {
  const auto p = Write("in.jsonl", "{\"a\":1}\n" + std::string(5000, 'x') + "\n{\"b\":2}\n");
  auto reader = RecordReader::Open(p, BatchFormat::kOip, RecordReaderOptions{100, 64});
  auto records = ReadAll(**reader);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_TRUE(records[0].error.ok());
  EXPECT_EQ(records[1].error.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(records[1].line, 2);
  EXPECT_EQ(records[2].text, "{\"b\":2}");
  EXPECT_EQ(records[2].line, 3);
}

TEST_F(RecordReaderTest, CsvHeaderQuotedFieldsAcrossLinesAndBadRows) {
  const auto p = Write("in.csv", "\xEF\xBB\xBFid,text\n1,\"hello, \"\"world\"\"\"\n2,\"two\nlines\"\n3,bad\"quote\n");
  auto reader = RecordReader::Open(p, BatchFormat::kCsv, RecordReaderOptions{1024, 5});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  EXPECT_EQ((*reader)->header(), (std::vector<std::string>{"id", "text"}));
  auto records = ReadAll(**reader);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].fields, (std::vector<std::string>{"1", "hello, \"world\""}));
  EXPECT_EQ(records[0].line, 2);
  EXPECT_EQ(records[1].fields, (std::vector<std::string>{"2", "two\nlines"}));
  EXPECT_EQ(records[1].end_line, 4);
  EXPECT_EQ(records[2].line, 5);
  EXPECT_FALSE(records[2].error.ok());
}

TEST_F(RecordReaderTest, CsvSeekToZeroStartsAfterTheHeader) {
  const auto p = Write("in.csv", "a,b\n1,2\n3,4\n");
  auto reader = RecordReader::Open(p, BatchFormat::kCsv);
  ASSERT_TRUE((*reader)->Seek(0, 0, 0).ok());
  auto records = ReadAll(**reader);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0].fields[0], "1");
  EXPECT_EQ(records[0].line, 2);
}

TEST_F(RecordReaderTest, AFolderIsItsFilesInPathOrderWithoutFollowingLinks) {
  std::filesystem::create_directories(dir_.root() / "in" / "sub");
  Write("in/b.txt", "bee");
  Write("in/a.txt", "ay");
  Write("in/sub/c.txt", "see");
  Write("outside.txt", "secret");
  std::filesystem::create_symlink(dir_.root() / "outside.txt", dir_.root() / "in" / "link.txt");
  auto reader = RecordReader::Open(dir_.root() / "in", BatchFormat::kFiles, RecordReaderOptions{2, 64});
  ASSERT_TRUE(reader.ok()) << reader.status().ToString();
  auto records = ReadAll(**reader);
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0].fields, (std::vector<std::string>{"a.txt"}));
  EXPECT_EQ(records[0].text, "ay");
  EXPECT_EQ(records[1].fields[0], "b.txt");
  EXPECT_FALSE(records[1].error.ok());  // 3 bytes, over the 2-byte limit: it fails alone
  EXPECT_EQ(records[2].fields[0], "sub/c.txt");
  EXPECT_EQ(records[2].end_offset, 3);
  auto again = RecordReader::Open(dir_.root() / "in", BatchFormat::kFiles);
  ASSERT_TRUE((*again)->Seek(2, 2, 2).ok());
  auto rest = ReadAll(**again);
  ASSERT_EQ(rest.size(), 1u);
  EXPECT_EQ(rest[0].text, "see");
  EXPECT_EQ(*CountRecords(dir_.root() / "in", BatchFormat::kFiles), 3);
  EXPECT_EQ(RecordReader::Open(dir_.root() / "outside.txt", BatchFormat::kFiles).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RecordReaderTest, OpenErrorsSayWhatIsWrong) {
  EXPECT_EQ(RecordReader::Open(dir_.root() / "missing.jsonl", BatchFormat::kOip).status().code(),
            StatusCode::kNotFound);
  EXPECT_EQ(RecordReader::Open(dir_.root(), BatchFormat::kOip).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(RecordReader::Open(Write("empty.csv", ""), BatchFormat::kCsv).status().code(),
            StatusCode::kInvalidArgument);
}

TEST_F(RecordReaderTest, CountRecordsCountsMalformedOnesButNotBlankLines) {
  const auto p = Write("in.jsonl", "{}\n\nnot json\n{}\n");
  auto n = CountRecords(p, BatchFormat::kOip);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
}

}  // namespace
}  // namespace ferry
