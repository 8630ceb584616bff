#include "schedules/cron.h"

#include <fmt/format.h>

#include <array>
#include <cctype>
#include <charconv>
#include <vector>

namespace ferry {
namespace {

struct FieldSpec {
  const char* name;
  int min;
  int max;
  const char* const* names;  // names[i] is the value min + i, or nullptr
};

constexpr const char* kMonthNames[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                       "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
constexpr const char* kDayNames[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

// Weekday is read over 0..7 (7 = Sunday) and folded afterwards.
constexpr std::array<FieldSpec, 5> kFields = {{{"minute", 0, 59, nullptr},
                                               {"hour", 0, 23, nullptr},
                                               {"day of month", 1, 31, nullptr},
                                               {"month", 1, 12, kMonthNames},
                                               {"day of week", 0, 7, kDayNames}}};

std::vector<std::string_view> Split(std::string_view text, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  while (true) {
    const size_t at = text.find(sep, start);
    out.push_back(text.substr(start, at == std::string_view::npos ? std::string_view::npos : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

Result<int> Value(std::string_view text, const FieldSpec& f) {
  if (f.names != nullptr && text.size() == 3 && std::isalpha(static_cast<unsigned char>(text[0]))) {
    const int count = f.names == kMonthNames ? 12 : 7;
    for (int i = 0; i < count; ++i) {
      bool same = true;
      for (int c = 0; c < 3; ++c) {
        same = same && std::toupper(static_cast<unsigned char>(text[c])) == f.names[i][c];
      }
      if (same) return f.min + i;
    }
  }
  int v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) {
    return InvalidArgument(fmt::format("{} '{}' is not a number{}", f.name, text, f.names ? " or a name" : ""));
  }
  if (v < f.min || v > f.max) {
    return InvalidArgument(fmt::format("{} {} is outside {}..{}", f.name, v, f.min, f.max));
  }
  return v;
}

// One comma-separated item into `bits` (indexed by value).
Status ParseItem(std::string_view item, const FieldSpec& f, std::bitset<64>* bits) {
  const size_t slash = item.find('/');
  const std::string_view base = item.substr(0, slash);
  int step = 1;
  if (slash != std::string_view::npos) {
    const std::string_view s = item.substr(slash + 1);
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), step);
    if (s.empty() || ec != std::errc() || end != s.data() + s.size() || step < 1 || step > f.max - f.min + 1) {
      return InvalidArgument(fmt::format("{} step '{}' must be a number within 1..{}", f.name, s, f.max - f.min + 1));
    }
  }
  // Weekday 7 is Sunday when named; `*` and `a/step` stop at Saturday (6).
  const int open_max = f.names == kDayNames ? 6 : f.max;
  int lo = f.min, hi = open_max;
  if (base == "*" || base == "?") {
    if (base == "?" && slash != std::string_view::npos) return InvalidArgument(fmt::format("{} '?' takes no step", f.name));
  } else if (const size_t dash = base.find('-'); dash != std::string_view::npos) {
    FERRY_ASSIGN_OR_RETURN(lo, Value(base.substr(0, dash), f));
    FERRY_ASSIGN_OR_RETURN(hi, Value(base.substr(dash + 1), f));
    if (lo > hi) return InvalidArgument(fmt::format("{} range {} runs backwards", f.name, base));
  } else {
    FERRY_ASSIGN_OR_RETURN(lo, Value(base, f));
    // "5/10" runs from 5 to the field's end; a bare value is just itself.
    if (slash == std::string_view::npos) hi = lo;
  }
  for (int v = lo; v <= hi; v += step) bits->set(static_cast<size_t>(v));
  return Status::Ok();
}

std::string_view Macro(std::string_view text) {
  if (text == "@yearly" || text == "@annually") return "0 0 1 1 *";
  if (text == "@monthly") return "0 0 1 * *";
  if (text == "@weekly") return "0 0 * * 0";
  if (text == "@daily" || text == "@midnight") return "0 0 * * *";
  if (text == "@hourly") return "0 * * * *";
  return {};
}

template <size_t N>
std::bitset<N> Narrow(const std::bitset<64>& wide) {
  std::bitset<N> out;
  for (size_t i = 0; i < N; ++i) out[i] = wide[i];
  return out;
}

}  // namespace

Result<CronExpression> CronExpression::Parse(std::string_view text) {
  auto fail = [&](const Status& s) {
    return InvalidArgument(fmt::format("cron '{}': {}", text.substr(0, 128), s.message()));
  };
  std::string_view fields_text = text;
  if (!text.empty() && text.front() == '@') {
    fields_text = Macro(text);
    if (fields_text.empty()) {
      return fail(InvalidArgument("unknown macro (one of @yearly @annually @monthly @weekly @daily @midnight @hourly)"));
    }
  }
  std::vector<std::string_view> fields;
  for (std::string_view part : Split(fields_text, ' ')) {
    if (!part.empty()) fields.push_back(part);
  }
  if (fields.size() != 5) {
    return fail(InvalidArgument(fmt::format("expected 5 fields (minute hour day month weekday), found {}", fields.size())));
  }
  CronExpression e;
  e.text_ = std::string(text);
  std::array<std::bitset<64>, 5> bits;
  for (size_t i = 0; i < 5; ++i) {
    for (std::string_view item : Split(fields[i], ',')) {
      if (Status s = ParseItem(item, kFields[i], &bits[i]); !s.ok()) return fail(s);
    }
  }
  if (bits[4][7]) bits[4].set(0);
  e.minutes_ = Narrow<60>(bits[0]);
  e.hours_ = Narrow<24>(bits[1]);
  e.days_ = Narrow<32>(bits[2]);
  e.months_ = Narrow<13>(bits[3]);
  e.weekdays_ = Narrow<7>(bits[4]);
  // A list naming every day restricts nothing when the other day field has a `*` in it (croniter's
  // reading; Vixie cron looks only at a leading `*`).
  auto restricted = [](std::string_view own, bool full, std::string_view other) {
    return own != "*" && own != "?" && !(full && other.find('*') != std::string_view::npos);
  };
  e.days_restricted_ = restricted(fields[2], e.days_.count() == 31, fields[4]);
  e.weekdays_restricted_ = restricted(fields[4], e.weekdays_.count() == 7, fields[2]);
  return e;
}

bool CronExpression::MatchesDay(int64_t days) const {
  const CivilDate d = CivilFromDays(days);
  if (!months_[static_cast<size_t>(d.month)]) return false;
  const bool dom = days_[static_cast<size_t>(d.day)];
  const bool dow = weekdays_[static_cast<size_t>(WeekdayFromDays(days))];
  if (days_restricted_ && weekdays_restricted_) return dom || dow;
  return dom && dow;
}

bool CronExpression::Matches(const CivilMinute& m) const {
  return MatchesDay(m.days) && hours_[static_cast<size_t>(m.minute_of_day / 60)] &&
         minutes_[static_cast<size_t>(m.minute_of_day % 60)];
}

std::optional<CivilMinute> CronExpression::NextAfter(const CivilMinute& after) const {
  CivilMinute start = after;
  if (++start.minute_of_day == 1440) {
    start.minute_of_day = 0;
    ++start.days;
  }
  const int64_t last_day = start.days + int64_t{366} * kSearchYears;
  for (int64_t day = start.days; day <= last_day; ++day) {
    if (!MatchesDay(day)) continue;
    const int from = day == start.days ? start.minute_of_day : 0;
    for (int hour = from / 60; hour < 24; ++hour) {
      if (!hours_[static_cast<size_t>(hour)]) continue;
      const int first_minute = hour == from / 60 ? from % 60 : 0;
      for (int minute = first_minute; minute < 60; ++minute) {
        if (minutes_[static_cast<size_t>(minute)]) return CivilMinute{day, hour * 60 + minute};
      }
    }
  }
  return std::nullopt;
}

}  // namespace ferry
