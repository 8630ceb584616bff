#include "hybrid/table_entry.h"

#include <gtest/gtest.h>

#include <cstring>

#include "hybrid/byte_lru.h"

namespace ferry {
namespace {

Tensor Floats(const std::string& name, std::vector<float> values) {
  Tensor t;
  t.name = name;
  t.dtype = DataType::kFp32;
  t.shape = {1, static_cast<int64_t>(values.size())};
  t.data = Buffer::Copy(values.data(), values.size() * sizeof(float));
  return t;
}

TEST(TableEntryTest, OutputsSurviveTheirBlob) {
  Tensor text;
  text.name = "label";
  text.dtype = DataType::kBytes;
  text.shape = {1};
  const char bytes[] = {3, 0, 0, 0, 'c', 'a', 't'};
  text.data = Buffer::Copy(bytes, sizeof(bytes));
  const std::vector<Tensor> outputs = {Floats("scores", {0.25f, -1.5f, 3.0f}), text};
  Result<std::vector<Tensor>> back = DecodeEntryOutputs(EncodeEntryOutputs(outputs));
  ASSERT_TRUE(back.ok()) << back.status().message();
  ASSERT_EQ(back->size(), 2u);
  for (size_t i = 0; i < outputs.size(); ++i) {
    EXPECT_EQ((*back)[i].name, outputs[i].name);
    EXPECT_EQ((*back)[i].dtype, outputs[i].dtype);
    EXPECT_EQ((*back)[i].shape, outputs[i].shape);
    ASSERT_EQ((*back)[i].data.size(), outputs[i].data.size());
    EXPECT_EQ(std::memcmp((*back)[i].data.data(), outputs[i].data.data(), outputs[i].data.size()), 0);
  }
}

TEST(TableEntryTest, EveryTruncationOfABlobIsRefused) {
  const std::string blob = EncodeEntryOutputs({Floats("scores", {1, 2, 3, 4})});
  for (size_t n = 0; n < blob.size(); ++n) {
    EXPECT_FALSE(DecodeEntryOutputs(blob.substr(0, n)).ok()) << "length " << n;
  }
  EXPECT_EQ(DecodeEntryOutputs(blob + "x").status().code(), StatusCode::kInternal);
}

TEST(TableEntryTest, ABlobWhoseBytesDisagreeWithItsShapeIsRefused) {
  Tensor t = Floats("scores", {1, 2, 3});
  t.shape = {1, 4};  // 16 bytes promised, 12 held
  EXPECT_FALSE(DecodeEntryOutputs(EncodeEntryOutputs({t})).ok());
}

TEST(TableEntryTest, KeysAreCheckedForLengthAndControlCharacters) {
  EXPECT_TRUE(CheckTableKey("user-123").ok());
  EXPECT_TRUE(CheckTableKey(std::string(kMaxTableKeyBytes, 'k')).ok());
  EXPECT_EQ(CheckTableKey("").code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckTableKey(std::string(kMaxTableKeyBytes + 1, 'k')).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(CheckTableKey("a\nb").code(), StatusCode::kInvalidArgument);
}

TEST(ByteLruTest, EvictsTheLeastRecentlyUsedToHoldItsBudget) {
  ByteLru<int> lru(1000);
  for (int i = 0; i < 20; ++i) lru.Put("k" + std::to_string(i), std::make_shared<const int>(i), 100);
  EXPECT_LE(lru.bytes(), 1000u);
  EXPECT_EQ(lru.Get("k0"), nullptr);
  ASSERT_NE(lru.Get("k19"), nullptr);
  EXPECT_EQ(*lru.Get("k19"), 19);
  EXPECT_GT(lru.evictions(), 0);
  // Touching an old entry keeps it over a newer one.
  const size_t held = lru.size();
  ASSERT_GE(held, 2u);
  const std::string oldest = "k" + std::to_string(20 - held);
  ASSERT_NE(lru.Get(oldest), nullptr);
  lru.Put("new", std::make_shared<const int>(-1), 100);
  EXPECT_NE(lru.Get(oldest), nullptr);
  EXPECT_EQ(lru.Get("k" + std::to_string(21 - held)), nullptr);
}

TEST(ByteLruTest, AValueOverTheWholeBudgetIsNotStored) {
  ByteLru<int> lru(1000);
  lru.Put("small", std::make_shared<const int>(1), 10);
  lru.Put("huge", std::make_shared<const int>(2), 5000);
  EXPECT_EQ(lru.Get("huge"), nullptr);
  EXPECT_NE(lru.Get("small"), nullptr);
}

}  // namespace
}  // namespace ferry
