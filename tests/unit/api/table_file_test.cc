#include "api/table_file.h"

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "testing/temp_repository.h"

namespace ferry {
namespace {

using ferry::testing::TempRepository;

class Collect : public TableSink {
 public:
  Status Add(const TableEntry& entry) override {
    entries.push_back(entry);
    return Status::Ok();
  }
  std::vector<TableEntry> entries;
};

ModelConfig Ranker() {
  Result<ModelConfig> c = ParseModelConfig(R"(
backend: identity
max_batch_size: 8
inputs:
  - {name: x, datatype: FP32, dims: [2]}
outputs:
  - {name: scores, datatype: FP32, dims: [2]}
  - {name: label, datatype: BYTES, dims: [1]}
)", "ranker");
  EXPECT_TRUE(c.ok()) << c.status().ToString();
  return *c;
}

class TableFileTest : public ::testing::Test {
 protected:
  std::filesystem::path Write(const std::string& name, const std::string& text) {
    const auto path = dir_.root() / name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  Status Read(const std::filesystem::path& path, Collect* sink, std::string version = "1") {
    TableFileOptions options;
    options.format = TableFileFormatFor(path);
    options.default_version = std::move(version);
    options.produced_ms = 42;
    return ReadTableFile(path, config_, options, sink);
  }
  TempRepository dir_;
  ModelConfig config_ = Ranker();
};

std::string Line(const std::string& id, const std::string& extra = "") {
  return R"({"id":")" + id + R"(",)" + extra +
         R"("outputs":[{"name":"label","datatype":"BYTES","shape":[1,1],"data":["cat"]},)"
         R"({"name":"scores","datatype":"FP32","shape":[1,2],"data":[0.5,1.5]}]})";
}

TEST_F(TableFileTest, JsonlLinesBecomeEntriesInConfigOrder) {
  Collect sink;
  ASSERT_TRUE(Read(Write("t.jsonl", Line("u1") + "\n\n" + Line("u2", R"("model_version":"3",)") + "\n"), &sink).ok());
  ASSERT_EQ(sink.entries.size(), 2u);
  EXPECT_EQ(sink.entries[0].key, "u1");
  EXPECT_EQ(sink.entries[0].model_version, "1");  // the default
  EXPECT_EQ(sink.entries[1].model_version, "3");  // the line's own
  EXPECT_EQ(sink.entries[0].produced_ms, 42);
  ASSERT_EQ(sink.entries[0].outputs.size(), 2u);
  EXPECT_EQ(sink.entries[0].outputs[0].name, "scores");
  EXPECT_EQ(sink.entries[0].outputs[1].name, "label");
}

TEST_F(TableFileTest, CsvRowsUseABatchsOutputColumns) {
  Collect sink;
  ASSERT_TRUE(Read(Write("t.csv", "id,scores_0,scores_1,label\nu1,0.25,4,dog\n\"u,2\",1,2,cat\n"), &sink).ok());
  ASSERT_EQ(sink.entries.size(), 2u);
  EXPECT_EQ(sink.entries[1].key, "u,2");
  float second = 0;
  std::memcpy(&second, sink.entries[0].outputs[0].data.data() + 4, 4);
  EXPECT_EQ(second, 4.0f);
  EXPECT_EQ(sink.entries[0].outputs[0].shape, (Shape{1, 2}));
}

TEST_F(TableFileTest, BadLinesAreListedWithTheirNumbersAndNothingMoreIsAdded) {
  Collect sink;
  const std::string text = Line("u1") + "\n" + "{oops\n" +
                           R"({"id":"u3","outputs":[{"name":"scores","datatype":"FP32","shape":[1,2],"data":[1,2]}]})" +
                           "\n" + Line("u4", R"("model_name":"other",)") + "\n" + Line("") + "\n" + Line("u6") + "\n";
  Status s = Read(Write("bad.jsonl", text), &sink);
  ASSERT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("4 bad lines"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("line 2:"), std::string::npos);
  EXPECT_NE(s.message().find("line 3: output 'label' is missing"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("line 4: the line is model 'other'"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("line 5: the line has no id"), std::string::npos) << s.message();
  EXPECT_EQ(sink.entries.size(), 1u);  // u1 came before the first bad line; u6 was only checked
}

TEST_F(TableFileTest, ManyBadLinesAreCountedPastTheListed) {
  std::string text;
  for (int i = 0; i < 30; ++i) text += "nope\n";
  Collect sink;
  Status s = Read(Write("many.jsonl", text), &sink);
  EXPECT_NE(s.message().find("30 bad lines"), std::string::npos);
  EXPECT_NE(s.message().find("and 10 more"), std::string::npos) << s.message();
}

TEST_F(TableFileTest, ShapesTypesAndVersionsAreChecked) {
  Collect sink;
  std::string wrong_type = Line("u1");
  wrong_type.replace(wrong_type.find("\"FP32\""), 6, "\"FP64\"");
  EXPECT_NE(Read(Write("a.jsonl", wrong_type + "\n"), &sink).message().find("datatype FP64"), std::string::npos);
  std::string two_rows = Line("u1");
  two_rows.replace(two_rows.find("[1,2],\"data\":[0.5,1.5]"), 22, "[2,2],\"data\":[1,2,3,4]");
  EXPECT_NE(Read(Write("b.jsonl", two_rows + "\n"), &sink).message().find("one row"), std::string::npos);
  EXPECT_NE(Read(Write("c.jsonl", Line("u1") + "\n"), &sink, "").message().find("no model_version"),
            std::string::npos);
  EXPECT_NE(Read(Write("d.csv", "scores_0,scores_1,label\n1,2,x\n"), &sink).message().find("no id column"),
            std::string::npos);
  EXPECT_EQ(Read(dir_.root() / "missing.jsonl", &sink).code(), StatusCode::kNotFound);
}

}  // namespace
}  // namespace ferry
