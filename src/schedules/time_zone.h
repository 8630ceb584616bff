#pragma once
// A time zone read from the system's TZif files (RFC 8536, versions 2 and 3: /usr/share/zoneinfo from
// Debian's tzdata): UTC offsets from its transitions, and past the last one from its POSIX TZ footer
// ("CET-1CEST,M3.5.0,M10.5.0/3"; rules of the forms Mm.w.d, Jn and n). "UTC" needs no file. Value
// type, thread-safe once built.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace ferry {

// The daylight-saving rule of a POSIX TZ string, for the years past a zone's listed transitions.
struct PosixTzRule {
  int32_t std_offset = 0;  // seconds east of UTC
  int32_t dst_offset = 0;
  bool has_dst = false;
  struct When {
    char kind = 'M';      // 'M' (month.week.weekday), 'J' (1..365, no leap day), 'n' (0..365)
    int month = 0, week = 0, weekday = 0, day = 0;
    int32_t time = 7200;  // local seconds after midnight (may be negative or past 24 h)
  };
  When start, end;
};
Result<PosixTzRule> ParsePosixTz(std::string_view text);

class TimeZone {
 public:
  // A name as the IANA database spells it ("Europe/Berlin"); kInvalidArgument for a name that is not a
  // zone there.
  static Result<TimeZone> Load(std::string_view name, const std::filesystem::path& zoneinfo = "/usr/share/zoneinfo");
  // Parses TZif bytes (for tests and the fuzz target).
  static Result<TimeZone> FromTzif(std::string_view name, std::string_view bytes);
  static TimeZone Utc();

  const std::string& name() const { return name_; }
  // Seconds east of UTC in force at `unix_seconds`.
  int32_t OffsetAt(int64_t unix_seconds) const;
  int64_t ToLocal(int64_t unix_seconds) const { return unix_seconds + OffsetAt(unix_seconds); }

  // The instants a wall-clock time (local seconds, as if UTC) names: one; two where clocks fall back
  // (the earlier first); none where they spring forward, and then `first` is the instant the gap ends
  // (the first instant whose wall clock is at or past `local_seconds`).
  struct Resolved {
    enum Kind { kUnique, kAmbiguous, kGap } kind = kUnique;
    int64_t first = 0;
    int64_t second = 0;
  };
  Resolved FromLocal(int64_t local_seconds) const;

 private:
  std::string name_;
  std::vector<int64_t> transitions_;  // ascending
  std::vector<int32_t> offsets_;      // in force from transitions_[i]
  int32_t initial_offset_ = 0;        // before the first transition
  std::optional<PosixTzRule> rule_;   // past the last transition
};

}  // namespace ferry
