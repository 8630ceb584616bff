#include "scheduling/text_assembler.h"

#include <algorithm>

namespace ferry {
namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the UTF-8 sequence a lead byte starts, or 0 when it cannot start one.
size_t SequenceLength(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

// Whether byte `i` (1-based within the sequence) may follow `lead` (RFC 3629 table: no overlongs,
// no surrogates, nothing past U+10FFFF).
bool ValidContinuation(unsigned char lead, size_t i, unsigned char byte) {
  if (i == 1) {
    if (lead == 0xE0) return byte >= 0xA0 && byte <= 0xBF;
    if (lead == 0xED) return byte >= 0x80 && byte <= 0x9F;
    if (lead == 0xF0) return byte >= 0x90 && byte <= 0xBF;
    if (lead == 0xF4) return byte >= 0x80 && byte <= 0x8F;
  }
  return byte >= 0x80 && byte <= 0xBF;
}

}  // namespace

TextAssembler::TextAssembler(std::vector<std::string> stop_strings) {
  for (auto& s : stop_strings) {
    if (!s.empty()) stops_.push_back(std::move(s));
  }
}

void TextAssembler::Validate(bool final) {
  size_t pos = 0;
  while (pos < pending_.size()) {
    const auto lead = static_cast<unsigned char>(pending_[pos]);
    const size_t len = SequenceLength(lead);
    if (len == 0) {
      held_ += kReplacement;
      ++pos;
      continue;
    }
    size_t have = 1;
    while (have < len && pos + have < pending_.size() &&
           ValidContinuation(lead, have, static_cast<unsigned char>(pending_[pos + have]))) {
      ++have;
    }
    if (have == len) {
      held_.append(pending_, pos, len);
      pos += len;
    } else if (pos + have == pending_.size() && !final) {
      break;  // the rest of this character may come with the next token
    } else {
      held_ += kReplacement;  // broken sequence: replace what was read, resume at the byte that broke it
      pos += have;
    }
  }
  pending_.erase(0, pos);
}

std::string TextAssembler::Append(std::string_view bytes) {
  if (stopped_) return {};
  pending_.append(bytes);
  Validate(/*final=*/false);
  // A stop string anywhere in the held text ends the output just before it.
  size_t first_stop = std::string::npos;
  for (const auto& stop : stops_) first_stop = std::min(first_stop, held_.find(stop));
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first_stop);
    held_.clear();
    pending_.clear();
    return out;
  }
  // Hold back the longest tail that is the start of some stop string.
  size_t keep = 0;
  for (const auto& stop : stops_) {
    for (size_t n = std::min(stop.size() - 1, held_.size()); n > keep; --n) {
      if (held_.compare(held_.size() - n, n, stop, 0, n) == 0) {
        keep = n;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextAssembler::Flush() {
  if (stopped_) return {};
  Validate(/*final=*/true);
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace ferry
