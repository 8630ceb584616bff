#include "schedules/time_zone.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <iterator>

#include "schedules/civil_time.h"

namespace ferry {
namespace {

// ---- POSIX TZ strings --------------------------------------------------------------------------

class TzCursor {
 public:
  explicit TzCursor(std::string_view s) : s_(s) {}
  bool Done() const { return i_ >= s_.size(); }
  char Peek() const { return Done() ? '\0' : s_[i_]; }
  bool Eat(char c) {
    if (Peek() != c) return false;
    ++i_;
    return true;
  }
  // "CET" or "<+0530>".
  bool Name() {
    if (Eat('<')) {
      const size_t close = s_.find('>', i_);
      if (close == std::string_view::npos || close == i_) return false;
      i_ = close + 1;
      return true;
    }
    const size_t from = i_;
    while (std::isalpha(static_cast<unsigned char>(Peek()))) ++i_;
    return i_ - from >= 3;
  }
  bool Number(int max, int* out) {
    const size_t from = i_;
    int v = 0;
    while (std::isdigit(static_cast<unsigned char>(Peek())) && i_ - from < 3) v = v * 10 + (s_[i_++] - '0');
    if (i_ == from || v > max) return false;
    *out = v;
    return true;
  }
  // [+-]hh[:mm[:ss]] in seconds.
  bool Duration(int max_hours, int32_t* out) {
    int sign = 1;
    if (Eat('-')) {
      sign = -1;
    } else {
      Eat('+');
    }
    int h = 0, m = 0, sec = 0;
    if (!Number(max_hours, &h)) return false;
    if (Eat(':')) {
      if (!Number(59, &m)) return false;
      if (Eat(':') && !Number(59, &sec)) return false;
    }
    *out = sign * (h * 3600 + m * 60 + sec);
    return true;
  }
  bool Rule(PosixTzRule::When* w) {
    if (Eat('M')) {
      w->kind = 'M';
      if (!Number(12, &w->month) || w->month < 1 || !Eat('.') || !Number(5, &w->week) || w->week < 1 || !Eat('.') ||
          !Number(6, &w->weekday)) {
        return false;
      }
    } else if (Eat('J')) {
      w->kind = 'J';
      if (!Number(365, &w->day) || w->day < 1) return false;
    } else {
      w->kind = 'n';
      if (!Number(365, &w->day)) return false;
    }
    if (Eat('/')) return Duration(167, &w->time);
    return true;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;
};

int64_t RuleDay(int64_t year, const PosixTzRule::When& w) {
  const int64_t jan1 = DaysFromCivil({year, 1, 1});
  const bool leap = DaysInMonth(year, 2) == 29;
  if (w.kind == 'J') return jan1 + w.day - 1 + (leap && w.day >= 60 ? 1 : 0);
  if (w.kind == 'n') return jan1 + w.day;
  const int64_t first = DaysFromCivil({year, w.month, 1});
  int64_t day = first + (w.weekday - WeekdayFromDays(first) + 7) % 7 + int64_t{7} * (w.week - 1);
  while (day >= first + DaysInMonth(year, w.month)) day -= 7;  // week 5: the last such weekday
  return day;
}

int32_t RuleOffset(const PosixTzRule& r, int64_t unix_seconds) {
  if (!r.has_dst) return r.std_offset;
  const int64_t local = unix_seconds + r.std_offset;
  const int64_t year = CivilFromDays(local >= 0 ? local / 86400 : -((-local + 86399) / 86400)).year;
  const int64_t start = RuleDay(year, r.start) * 86400 + r.start.time - r.std_offset;
  const int64_t end = RuleDay(year, r.end) * 86400 + r.end.time - r.dst_offset;
  const bool dst = start < end ? (unix_seconds >= start && unix_seconds < end) : !(unix_seconds >= end && unix_seconds < start);
  return dst ? r.dst_offset : r.std_offset;
}

// ---- TZif ---------------------------------------------------------------------------------------

class Bytes {
 public:
  explicit Bytes(std::string_view b) : b_(b) {}
  bool Has(size_t n) const { return b_.size() - at_ >= n; }
  int64_t Be(size_t width) {
    uint64_t v = 0;
    for (size_t i = 0; i < width; ++i) v = (v << 8) | static_cast<unsigned char>(b_[at_ + i]);
    at_ += width;
    if (width == 4) return static_cast<int32_t>(static_cast<uint32_t>(v));
    return static_cast<int64_t>(v);
  }
  uint8_t U8() { return static_cast<uint8_t>(b_[at_++]); }
  void Skip(size_t n) { at_ += n; }
  std::string_view Rest() const { return b_.substr(at_); }

 private:
  std::string_view b_;
  size_t at_ = 0;
};

struct TzifCounts {
  int64_t isut = 0, isstd = 0, leap = 0, time = 0, type = 0, chars = 0;
  char version = 0;
};

Result<TzifCounts> ReadHeader(Bytes& in) {
  if (!in.Has(44)) return InvalidArgument("TZif header is cut short");
  std::string_view magic = in.Rest().substr(0, 4);
  if (magic != "TZif") return InvalidArgument("not a TZif file");
  in.Skip(4);
  TzifCounts c;
  c.version = static_cast<char>(in.U8());
  in.Skip(15);
  for (int64_t* n : {&c.isut, &c.isstd, &c.leap, &c.time, &c.type, &c.chars}) *n = in.Be(4);
  if (c.isut < 0 || c.isstd < 0 || c.leap < 0 || c.time < 0 || c.type < 1 || c.chars < 0 || c.time > 100'000 ||
      c.type > 256 || c.chars > 100'000 || c.leap > 100'000 || c.isut > 256 || c.isstd > 256) {
    return InvalidArgument("TZif header counts are out of range");
  }
  return c;
}

size_t BlockSize(const TzifCounts& c, size_t time_width) {
  return static_cast<size_t>(c.time) * time_width + static_cast<size_t>(c.time) + static_cast<size_t>(c.type) * 6 +
         static_cast<size_t>(c.chars) + static_cast<size_t>(c.leap) * (time_width + 4) +
         static_cast<size_t>(c.isstd) + static_cast<size_t>(c.isut);
}

bool ValidZoneName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name.front() == '/' || name.find("..") != std::string_view::npos) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '/' || c == '_' || c == '-' || c == '+';
  });
}

}  // namespace

Result<PosixTzRule> ParsePosixTz(std::string_view text) {
  auto bad = [&] { return InvalidArgument(fmt::format("POSIX TZ string '{}' is malformed", text.substr(0, 64))); };
  TzCursor c(text);
  PosixTzRule r;
  int32_t west = 0;
  if (!c.Name() || !c.Duration(24, &west)) return bad();
  r.std_offset = -west;
  if (c.Done()) return r;
  if (!c.Name()) return bad();
  r.has_dst = true;
  r.dst_offset = r.std_offset + 3600;
  if (c.Peek() != ',' && !c.Done()) {
    if (!c.Duration(24, &west)) return bad();
    r.dst_offset = -west;
  }
  if (c.Done()) {  // POSIX's default: the United States' rule
    r.start = {'M', 3, 2, 0, 0, 7200};
    r.end = {'M', 11, 1, 0, 0, 7200};
    return r;
  }
  if (!c.Eat(',') || !c.Rule(&r.start) || !c.Eat(',') || !c.Rule(&r.end) || !c.Done()) return bad();
  return r;
}

TimeZone TimeZone::Utc() {
  TimeZone z;
  z.name_ = "UTC";
  return z;
}

Result<TimeZone> TimeZone::Load(std::string_view name, const std::filesystem::path& zoneinfo) {
  if (name == "UTC" || name == "Etc/UTC") return Utc();
  if (!ValidZoneName(name)) return InvalidArgument(fmt::format("unknown time zone '{}'", name.substr(0, 64)));
  const std::filesystem::path file = zoneinfo / std::string(name);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(file, ec) || std::filesystem::file_size(file, ec) > (1 << 20)) {
    return InvalidArgument(fmt::format("unknown time zone '{}' (not in {})", name, zoneinfo.string()));
  }
  std::ifstream in(file, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<TimeZone> zone = FromTzif(name, bytes);
  if (!zone.ok()) return InvalidArgument(fmt::format("time zone '{}': {}", name, zone.status().message()));
  return zone;
}

Result<TimeZone> TimeZone::FromTzif(std::string_view name, std::string_view bytes) {
  Bytes in(bytes);
  FERRY_ASSIGN_OR_RETURN(TzifCounts c, ReadHeader(in));
  size_t width = 4;
  if (c.version >= '2') {  // skip the 32-bit block: the 64-bit one follows with the same data
    if (!in.Has(BlockSize(c, 4))) return InvalidArgument("TZif data is cut short");
    in.Skip(BlockSize(c, 4));
    FERRY_ASSIGN_OR_RETURN(c, ReadHeader(in));
    width = 8;
  }
  if (!in.Has(BlockSize(c, width))) return InvalidArgument("TZif data is cut short");
  TimeZone z;
  z.name_ = std::string(name);
  z.transitions_.resize(static_cast<size_t>(c.time));
  for (int64_t& t : z.transitions_) t = in.Be(width);
  std::vector<uint8_t> type_of(static_cast<size_t>(c.time));
  for (uint8_t& t : type_of) t = in.U8();
  std::vector<int32_t> type_offsets(static_cast<size_t>(c.type));
  for (int32_t& o : type_offsets) {
    o = static_cast<int32_t>(in.Be(4));
    in.Skip(2);  // isdst, abbreviation index
    if (o < -26 * 3600 || o > 26 * 3600) return InvalidArgument("TZif offset is out of range");
  }
  if (!std::is_sorted(z.transitions_.begin(), z.transitions_.end())) return InvalidArgument("TZif transitions are not in order");
  z.offsets_.reserve(type_of.size());
  for (uint8_t t : type_of) {
    if (t >= type_offsets.size()) return InvalidArgument("TZif transition names a missing type");
    z.offsets_.push_back(type_offsets[t]);
  }
  z.initial_offset_ = type_offsets[0];
  in.Skip(BlockSize(c, width) - static_cast<size_t>(c.time) * (width + 1) - static_cast<size_t>(c.type) * 6);
  if (width == 8) {
    std::string_view footer = in.Rest();
    if (footer.size() >= 2 && footer.front() == '\n') {
      footer.remove_prefix(1);
      footer = footer.substr(0, footer.find('\n'));
      if (!footer.empty()) {
        FERRY_ASSIGN_OR_RETURN(PosixTzRule rule, ParsePosixTz(footer));
        z.rule_ = rule;
      }
    }
  }
  return z;
}

int32_t TimeZone::OffsetAt(int64_t unix_seconds) const {
  if (transitions_.empty() || unix_seconds < transitions_.front()) {
    if (transitions_.empty() && rule_) return RuleOffset(*rule_, unix_seconds);
    return initial_offset_;
  }
  if (unix_seconds >= transitions_.back() && rule_) return RuleOffset(*rule_, unix_seconds);
  const auto it = std::upper_bound(transitions_.begin(), transitions_.end(), unix_seconds);
  return offsets_[static_cast<size_t>(it - transitions_.begin()) - 1];
}

TimeZone::Resolved TimeZone::FromLocal(int64_t local) const {
  // Offsets change at most once within two days in every zone the database knows.
  const int32_t before = OffsetAt(local - 86400 * 2);
  const int32_t after = OffsetAt(local + 86400 * 2);
  std::vector<int64_t> found;
  for (int32_t o : {before, after}) {
    const int64_t u = local - o;
    if (OffsetAt(u) == o && std::find(found.begin(), found.end(), u) == found.end()) found.push_back(u);
  }
  std::sort(found.begin(), found.end());
  Resolved r;
  if (found.size() == 2) {
    r.kind = Resolved::kAmbiguous;
    r.first = found[0];
    r.second = found[1];
  } else if (found.size() == 1) {
    r.first = r.second = found[0];
  } else {
    // Sprung forward: the transition lies between local - after and local - before; find it.
    r.kind = Resolved::kGap;
    int64_t lo = local - after, hi = local - before;  // OffsetAt(lo) is `before`, OffsetAt(hi) is `after`
    if (lo > hi) std::swap(lo, hi);
    while (hi - lo > 1) {
      const int64_t mid = lo + (hi - lo) / 2;
      (OffsetAt(mid) == before ? lo : hi) = mid;
    }
    r.first = r.second = hi;
  }
  return r;
}

}  // namespace ferry
