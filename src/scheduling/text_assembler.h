#pragma once
// Turns the bytes of generated tokens into text that is safe to send: whole UTF-8 characters only
// (a character may span tokens; bytes that can never form one become U+FFFD), and nothing that might be
// the start of a stop string until it is known not to be. Thread-compatible value type.
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

class TextAssembler {
 public:
  explicit TextAssembler(std::vector<std::string> stop_strings = {});

  // Adds a token's bytes; returns the text that may be sent now (possibly empty). After a stop string
  // is seen, stopped() is true and the returned text ends just before it.
  std::string Append(std::string_view bytes);
  // Everything still held back (a trailing partial character becomes U+FFFD). Call once at the end
  // unless stopped().
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  // Moves complete (or hopeless) UTF-8 sequences from pending_ to held_.
  void Validate(bool final);

  std::vector<std::string> stops_;
  std::string pending_;  // bytes not yet known to be whole characters
  std::string held_;     // valid text not yet sent (may be a stop string's prefix)
  bool stopped_ = false;
};

}  // namespace ferry
