#include "scheduling/text_assembler.h"

#include <gtest/gtest.h>

namespace ferry {
namespace {

TEST(TextAssembler, PassesAsciiThrough) {
  TextAssembler t;
  EXPECT_EQ(t.Append("he"), "he");
  EXPECT_EQ(t.Append("llo"), "llo");
  EXPECT_EQ(t.Flush(), "");
}

TEST(TextAssembler, HoldsACharacterSplitAcrossTokens) {
  TextAssembler t;
  EXPECT_EQ(t.Append("a\xC3"), "a");  // first byte of é
  EXPECT_EQ(t.Append("\xA9"), "\xC3\xA9");
  EXPECT_EQ(t.Append("\xE2\x82"), "");  // two of the three bytes of €
  EXPECT_EQ(t.Append("\xAC!"), "\xE2\x82\xAC!");
}

TEST(TextAssembler, ReplacesBytesThatCannotBeText) {
  TextAssembler t;
  EXPECT_EQ(t.Append("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(t.Append("\xC3(x"), "\xEF\xBF\xBD(x");  // a lead byte followed by ASCII
  EXPECT_EQ(t.Append("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  EXPECT_EQ(t.Append("\xE2\x82"), "");
  EXPECT_EQ(t.Flush(), "\xEF\xBF\xBD");  // the stream ended inside a character
}

TEST(TextAssembler, StopsBeforeAStopStringSpanningTokens) {
  TextAssembler t({"END"});
  EXPECT_EQ(t.Append("abc E"), "abc ");  // "E" might start END
  EXPECT_FALSE(t.stopped());
  EXPECT_EQ(t.Append("N"), "");
  EXPECT_EQ(t.Append("Dxyz"), "");
  EXPECT_TRUE(t.stopped());
  EXPECT_EQ(t.Append("more"), "");
}

TEST(TextAssembler, ReleasesHeldTextThatTurnsOutNotToBeAStop) {
  TextAssembler t({"END"});
  EXPECT_EQ(t.Append("EN"), "");
  EXPECT_EQ(t.Append("x"), "ENx");
  EXPECT_EQ(t.Append("E"), "");
  EXPECT_EQ(t.Flush(), "E");
}

TEST(TextAssembler, EarliestOfSeveralStopsWins) {
  TextAssembler t({"cd", "b"});
  EXPECT_EQ(t.Append("abcd"), "a");
  EXPECT_TRUE(t.stopped());
}

}  // namespace
}  // namespace ferry
