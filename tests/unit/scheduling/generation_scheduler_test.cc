#include "scheduling/generation_scheduler.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <future>
#include <utility>

#include "testing/fake_language_model.h"

namespace ferry {
namespace {

using testing::FakeLanguageModel;
using testing::FakeModelLog;
using testing::FakeModelOptions;

// Collects a generation's output; Wait() returns once OnFinish ran.
class CollectingSink final : public GenerationSink {
 public:
  void OnText(std::string_view text) override {
    std::lock_guard lock(mu_);
    EXPECT_FALSE(text.empty());
    text_ += text;
    ++pieces_;
    if (on_text_) on_text_();
  }
  void OnFinish(const Result<GenerationStats>& outcome) override {
    std::lock_guard lock(mu_);
    EXPECT_FALSE(outcome_.has_value()) << "OnFinish called twice";
    outcome_ = outcome;
    cv_.notify_all();
  }
  void OnAbandoned(const GenerationStats& used) override {
    std::lock_guard lock(mu_);
    EXPECT_FALSE(outcome_.has_value()) << "OnAbandoned after OnFinish";
    EXPECT_FALSE(abandoned_.has_value()) << "OnAbandoned called twice";
    abandoned_ = used;
  }
  std::optional<GenerationStats> abandoned() {
    std::lock_guard lock(mu_);
    return abandoned_;
  }
  Result<GenerationStats> Wait() {
    std::unique_lock lock(mu_);
    EXPECT_TRUE(cv_.wait_for(lock, std::chrono::seconds(10), [&] { return outcome_.has_value(); }));
    return outcome_.value_or(Internal("timed out"));
  }
  std::string text() {
    std::lock_guard lock(mu_);
    return text_;
  }
  std::function<void()> on_text_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::string text_;
  int pieces_ = 0;
  std::optional<Result<GenerationStats>> outcome_;
  std::optional<GenerationStats> abandoned_;
};

struct Fixture {
  explicit Fixture(FakeModelOptions options = {}, size_t max_waiting = 8, const Clock* clock = &Clock::Real())
      : log(std::make_shared<FakeModelLog>()) {
    GenerationSchedulerOptions o;
    o.model_name = "fake";
    o.max_waiting = max_waiting;
    o.clock = clock;
    auto made = GenerationScheduler::Create(o, std::make_unique<FakeLanguageModel>(options, log));
    EXPECT_TRUE(made.ok()) << made.status().ToString();
    scheduler = std::move(made).value();
  }
  GenerationRequest Request(std::string prompt, int32_t max_tokens, std::shared_ptr<CollectingSink> sink) {
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.max_tokens = max_tokens;
    r.sink = std::move(sink);
    return r;
  }
  std::shared_ptr<FakeModelLog> log;
  std::unique_ptr<GenerationScheduler> scheduler;
};

TEST(GenerationScheduler, GeneratesUpToMaxTokens) {
  Fixture f;
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 5, sink)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok()) << done.status().ToString();
  EXPECT_EQ(sink->text(), "bcdef");
  EXPECT_EQ(done->finish_reason, "length");
  EXPECT_EQ(done->prompt_tokens, 2);  // begin token + 'a'
  EXPECT_EQ(done->completion_tokens, 5);
}

TEST(GenerationScheduler, StopsAtTheEndToken) {
  FakeModelOptions options;
  options.end_after = 'd';
  Fixture f(options);
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 50, sink)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(sink->text(), "bcd");
  EXPECT_EQ(done->finish_reason, "stop");
  EXPECT_EQ(done->completion_tokens, 3);
}

TEST(GenerationScheduler, IgnoreEosKeepsGoing) {
  FakeModelOptions options;
  options.end_after = 'b';
  Fixture f(options);
  auto sink = std::make_shared<CollectingSink>();
  GenerationRequest r = f.Request("a", 3, sink);
  r.ignore_eos = true;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->completion_tokens, 3);  // b, the end token (no text), a
  EXPECT_EQ(sink->text(), "ba");
}

TEST(GenerationScheduler, StopStringEndsTheTextBeforeIt) {
  Fixture f;
  auto sink = std::make_shared<CollectingSink>();
  GenerationRequest r = f.Request("a", 20, sink);
  r.stop = {"ef"};
  ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(sink->text(), "bcd");
  EXPECT_EQ(done->finish_reason, "stop");
}

TEST(GenerationScheduler, StopsWhenTheContextIsFull) {
  FakeModelOptions options;
  options.context = 10;
  Fixture f(options);
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("abc", -1, sink)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->finish_reason, "length");
  EXPECT_EQ(done->prompt_tokens + done->completion_tokens, 10);
}

TEST(GenerationScheduler, RefusesAPromptThatFillsTheContext) {
  FakeModelOptions options;
  options.context = 8;
  Fixture f(options);
  Status s = f.scheduler->Generate(f.Request("1234567", 1, std::make_shared<CollectingSink>()));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("8 tokens"), std::string::npos);
}

TEST(GenerationScheduler, RefusesLogitBiasOutsideTheVocabulary) {
  Fixture f;
  GenerationRequest r = f.Request("a", 1, std::make_shared<CollectingSink>());
  r.sampling.logit_bias = {{300, 1.0f}};
  Status s = f.scheduler->Generate(std::move(r));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("0..257"), std::string::npos);
}

TEST(GenerationScheduler, LongPromptIsReadInChunks) {
  FakeModelOptions options;
  options.batch_tokens = 4;
  Fixture f(options);
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("xxxxxxxxxa", 2, sink)).ok());  // 11 tokens with begin
  ASSERT_TRUE(sink->Wait().ok());
  EXPECT_EQ(sink->text(), "bc");
  std::lock_guard lock(f.log->mu);
  ASSERT_GE(f.log->batches.size(), 3u);
  EXPECT_EQ(f.log->batches[0].size(), 4u);
  EXPECT_EQ(f.log->batches[0][0].position, 0);
  EXPECT_EQ(f.log->batches[1][0].position, 4);
}

TEST(GenerationScheduler, ConcurrentRequestsShareDecodeSteps) {
  FakeModelOptions options;
  options.decode_delay = std::chrono::milliseconds(2);
  Fixture f(options);
  auto a = std::make_shared<CollectingSink>();
  auto b = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 30, a)).ok());
  ASSERT_TRUE(f.scheduler->Generate(f.Request("m", 30, b)).ok());
  ASSERT_TRUE(a->Wait().ok());
  ASSERT_TRUE(b->Wait().ok());
  EXPECT_EQ(a->text().substr(0, 3), "bcd");
  EXPECT_EQ(b->text().substr(0, 3), "nop");
  // 30 tokens each in about 30 steps, not 60: both sequences rode in the same decodes.
  int shared_steps = 0;
  for (int n : f.log->SequencesPerStep()) shared_steps += n == 2 ? 1 : 0;
  EXPECT_GE(shared_steps, 25);
  EXPECT_LE(f.log->Steps(), 40u);
}

TEST(GenerationScheduler, MoreRequestsThanSlotsWaitTheirTurn) {
  FakeModelOptions options;
  options.sequences = 1;
  Fixture f(options);
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (int i = 0; i < 4; ++i) {
    sinks.push_back(std::make_shared<CollectingSink>());
    ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 3, sinks.back())).ok());
  }
  for (auto& s : sinks) {
    ASSERT_TRUE(s->Wait().ok());
    EXPECT_EQ(s->text(), "bcd");  // a reused slot starts from a clean sequence
  }
}

TEST(GenerationScheduler, FreeSlotsGoToOnlineThenJobsThenBulkWork) {
  FakeModelOptions options;
  options.sequences = 1;
  options.decode_delay = std::chrono::milliseconds(2);
  Fixture f(options, /*max_waiting=*/1);
  auto running = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 20, running)).ok());
  while (f.log->Steps() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::mutex mu;
  std::vector<std::string> order;
  std::vector<std::shared_ptr<CollectingSink>> sinks;
  for (auto [name, priority] : {std::pair{"bulk", Priority::kBulk}, {"job", Priority::kJob}, {"online", Priority::kOnline}}) {
    auto sink = std::make_shared<CollectingSink>();
    sink->on_text_ = [&, name = std::string(name), done = false]() mutable {
      std::lock_guard lock(mu);
      if (!std::exchange(done, true)) order.push_back(name);
    };
    GenerationRequest r = f.Request("a", 2, sink);
    r.priority = priority;
    // Each class has its own bound: a full bulk queue does not refuse a job or an online request.
    ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok()) << name;
    sinks.push_back(sink);
  }
  GenerationRequest extra = f.Request("a", 1, std::make_shared<CollectingSink>());
  extra.priority = Priority::kBulk;
  EXPECT_EQ(f.scheduler->Generate(std::move(extra)).code(), StatusCode::kUnavailable);
  ASSERT_TRUE(running->Wait().ok());
  for (auto& s : sinks) ASSERT_TRUE(s->Wait().ok());
  EXPECT_EQ(order, (std::vector<std::string>{"online", "job", "bulk"}));
}

TEST(GenerationScheduler, TimingsComeFromTheInjectedClock) {
  FakeModelOptions options;
  options.decode_delay = std::chrono::milliseconds(2);  // real time passes; the scheduler's does not
  FakeClock clock;
  Fixture f(options, 8, &clock);
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 3, sink)).ok());
  auto stats = sink->Wait();
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->queue_ms, 0.0);
  EXPECT_EQ(stats->prompt_ms, 0.0);
  EXPECT_EQ(stats->generation_ms, 0.0);
}

TEST(GenerationScheduler, EachRequestIsChargedItsTokensShareOfTheDecodesItWasIn) {
  FakeClock clock;
  FakeModelOptions options;
  options.clock = &clock;
  options.clock_per_token = Micros(100);  // a decode of n tokens takes n x 100 us
  Fixture f(options, 8, &clock);
  auto short_sink = std::make_shared<CollectingSink>();
  auto long_sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 3, short_sink)).ok());
  ASSERT_TRUE(f.scheduler->Generate(f.Request("abcdef", 5, long_sink)).ok());
  auto a = short_sink->Wait();
  auto b = long_sink->Wait();
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(b.ok());
  // Decoded: the prompt, then every generated token but the last (it is sent, never decoded).
  EXPECT_EQ(a->compute_us, 100 * (2 + 3 - 1));
  EXPECT_EQ(b->compute_us, 100 * (7 + 5 - 1));
  EXPECT_EQ(a->compute_us + b->compute_us,
            std::chrono::duration_cast<Micros>(clock.Now() - FakeClock().Now()).count());
}

TEST(GenerationScheduler, AGenerationCancelledPartWayReportsWhatItUsedBeforeItsError) {
  FakeClock clock;
  FakeModelOptions options;
  options.clock = &clock;
  options.clock_per_token = Micros(100);
  Fixture f(options, 8, &clock);
  auto sink = std::make_shared<CollectingSink>();
  auto cancel = CancelToken::Create();
  int texts = 0;
  sink->on_text_ = [&] {
    if (++texts == 3) cancel->Cancel();
  };
  GenerationRequest r = f.Request("abc", 10000, sink);
  r.cancel = cancel;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok());
  EXPECT_EQ(sink->Wait().status().code(), StatusCode::kCancelled);
  const std::optional<GenerationStats> used = sink->abandoned();
  ASSERT_TRUE(used.has_value());
  EXPECT_EQ(used->finish_reason, "cancelled");
  EXPECT_EQ(used->completion_tokens, 3);
  EXPECT_EQ(used->prompt_tokens, 4);  // the prompt's three tokens and the start token
  // Alone in every decode: charged the whole of them.
  EXPECT_EQ(used->compute_us, std::chrono::duration_cast<Micros>(clock.Now() - FakeClock().Now()).count());
  EXPECT_GT(used->compute_us, 0);

  // One cancelled before it ever ran used nothing, and is told nothing.
  auto never = std::make_shared<CollectingSink>();
  auto gone = CancelToken::Create();
  gone->Cancel();
  GenerationRequest r2 = f.Request("z", 5, never);
  r2.cancel = gone;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r2)).ok());
  EXPECT_EQ(never->Wait().status().code(), StatusCode::kCancelled);
  EXPECT_FALSE(never->abandoned().has_value());
}

TEST(GenerationScheduler, FullWaitingQueueIsUnavailable) {
  FakeModelOptions options;
  options.sequences = 1;
  options.decode_delay = std::chrono::milliseconds(5);
  Fixture f(options, /*max_waiting=*/1);
  auto running = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 200, running)).ok());
  // Wait until the first request holds the slot, so that the queue is empty again.
  while (f.log->Steps() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 1, std::make_shared<CollectingSink>())).ok());
  Status full = f.scheduler->Generate(f.Request("a", 1, std::make_shared<CollectingSink>()));
  EXPECT_EQ(full.code(), StatusCode::kUnavailable);
}

TEST(GenerationScheduler, CancelledWhileDecodingStopsWithinAStep) {
  FakeModelOptions options;
  options.decode_delay = std::chrono::milliseconds(1);
  Fixture f(options);
  auto sink = std::make_shared<CollectingSink>();
  auto cancel = CancelToken::Create();
  std::atomic<size_t> steps_at_cancel{0};
  sink->on_text_ = [&] {
    if (!cancel->cancelled()) {
      steps_at_cancel = f.log->Steps();
      cancel->Cancel();
    }
  };
  GenerationRequest r = f.Request("a", 10000, sink);
  r.cancel = cancel;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok());
  Result<GenerationStats> done = sink->Wait();
  EXPECT_EQ(done.status().code(), StatusCode::kCancelled);
  EXPECT_LE(f.log->Steps(), steps_at_cancel + 1);
}

TEST(GenerationScheduler, CancelledWhileWaitingNeverRuns) {
  FakeModelOptions options;
  options.sequences = 1;
  options.decode_delay = std::chrono::milliseconds(1);
  Fixture f(options);
  auto first = std::make_shared<CollectingSink>();
  auto first_cancel = CancelToken::Create();
  GenerationRequest r1 = f.Request("a", 100000, first);
  r1.cancel = first_cancel;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r1)).ok());
  auto waiting = std::make_shared<CollectingSink>();
  auto cancel = CancelToken::Create();
  GenerationRequest r2 = f.Request("z", 5, waiting);
  r2.cancel = cancel;
  ASSERT_TRUE(f.scheduler->Generate(std::move(r2)).ok());
  cancel->Cancel();
  // Answered while the first request still holds the only slot.
  EXPECT_EQ(waiting->Wait().status().code(), StatusCode::kCancelled);
  EXPECT_EQ(waiting->text(), "");
  first_cancel->Cancel();
  EXPECT_EQ(first->Wait().status().code(), StatusCode::kCancelled);
}

TEST(GenerationScheduler, ChatUsesTheTemplate) {
  Fixture f;
  auto sink = std::make_shared<CollectingSink>();
  GenerationRequest r = f.Request("", 2, sink);
  r.chat = true;
  r.messages = {{"user", "hi"}};
  ASSERT_TRUE(f.scheduler->Generate(std::move(r)).ok());
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->prompt_tokens, 1 + static_cast<int>(std::string("user:hi\nassistant:").size()));
}

TEST(GenerationScheduler, DrainFinishesAcceptedWork) {
  Fixture f;
  auto sink = std::make_shared<CollectingSink>();
  ASSERT_TRUE(f.scheduler->Generate(f.Request("a", 20, sink)).ok());
  f.scheduler->Drain();
  Result<GenerationStats> done = sink->Wait();
  ASSERT_TRUE(done.ok());
  EXPECT_EQ(done->completion_tokens, 20);
  EXPECT_EQ(f.scheduler->Generate(f.Request("a", 1, std::make_shared<CollectingSink>())).code(),
            StatusCode::kUnavailable);
}

TEST(GenerationScheduler, TensorTasksAreRefused) {
  Fixture f;
  InferenceTask task;
  EXPECT_EQ(f.scheduler->Submit(std::move(task)).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(f.scheduler->generator(), f.scheduler.get());
}

}  // namespace
}  // namespace ferry
