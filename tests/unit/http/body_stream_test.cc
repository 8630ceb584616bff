#include <gtest/gtest.h>

#include "http/http_types.h"

namespace ferry {
namespace {

TEST(BodyStream, CoalescesWritesUntilTaken) {
  BodyStream s;
  EXPECT_TRUE(s.Write("a"));
  EXPECT_TRUE(s.Write("b"));
  bool ended = true;
  EXPECT_EQ(s.Take(&ended), "ab");
  EXPECT_FALSE(ended);
}

TEST(BodyStream, WakesOnlyAConnectionThatFoundNothing) {
  BodyStream s;
  int wakes = 0;
  s.SetWake([&] { ++wakes; });
  EXPECT_TRUE(s.Write("a"));  // nobody waits yet: the connection will Take on its own
  EXPECT_EQ(wakes, 0);
  bool ended = false;
  EXPECT_EQ(s.Take(&ended), "a");
  EXPECT_EQ(s.Take(&ended), "");  // found nothing: now it waits
  EXPECT_TRUE(s.Write("b"));
  EXPECT_TRUE(s.Write("c"));
  EXPECT_EQ(wakes, 1);  // one wake for both
  EXPECT_EQ(s.Take(&ended), "bc");
  EXPECT_EQ(s.Take(&ended), "");
  s.End();
  EXPECT_EQ(wakes, 2);
  EXPECT_EQ(s.Take(&ended), "");
  EXPECT_TRUE(ended);
  EXPECT_FALSE(s.Write("late"));
}

TEST(BodyStream, AbortStopsTheProducer) {
  BodyStream s;
  s.Abort();
  EXPECT_FALSE(s.Write("x"));
  bool ended = false;
  s.Take(&ended);
  EXPECT_TRUE(ended);
}

TEST(BodyStream, AClientTooFarBehindAbortsTheStream) {
  BodyStream s;
  const std::string big(BodyStream::kMaxQueuedBytes / 2 + 1, 'x');
  EXPECT_TRUE(s.Write(big));
  EXPECT_FALSE(s.Write(big));
  EXPECT_FALSE(s.Write("y"));
}

}  // namespace
}  // namespace ferry
