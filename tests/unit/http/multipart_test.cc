#include "http/multipart.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace ferry {
namespace {

// What httpx (and so the openai Python client) sends for files.create(file=open("x.jsonl", "rb"),
// purpose="batch"): a 32-hex-digit boundary, data fields first, CRLF line ends, the file's Content-Type
// guessed from its name (application/octet-stream for .jsonl), "--boundary--\r\n" at the end.
constexpr std::string_view kHttpxBoundary = "4c1d8e0f6a2b49d7a3f5c6e7d8b9a0f1";
constexpr std::string_view kJsonl =
    "{\"custom_id\": \"r1\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\"}\n"
    "{\"custom_id\": \"r2\", \"method\": \"POST\", \"url\": \"/v1/chat/completions\"}\n";

std::string HttpxBody() {
  const std::string b(kHttpxBoundary);
  return "--" + b + "\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nbatch\r\n--" + b +
         "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jsonl\"\r\n"
         "Content-Type: application/octet-stream\r\n\r\n" +
         std::string(kJsonl) + "\r\n--" + b + "--\r\n";
}

// One part with the given header lines (each without CRLF) and content, then the close delimiter.
std::string OnePart(std::string_view headers, std::string_view content, std::string_view boundary = "xyz") {
  const std::string b(boundary);
  return "--" + b + "\r\n" + std::string(headers) + "\r\n\r\n" + std::string(content) + "\r\n--" + b + "--\r\n";
}

std::string Content(std::string_view body, const MultipartPart& part) {
  return std::string(body.substr(part.offset, part.length));
}

// The message of the error ParseMultipart gives; fails the test when it succeeds or gives another code.
std::string ErrorOf(std::string_view body, std::string_view boundary = "xyz", size_t max_parts = 16) {
  auto parts = ParseMultipart(body, boundary, max_parts);
  EXPECT_FALSE(parts.ok()) << body;
  if (parts.ok()) return "";
  EXPECT_EQ(parts.status().code(), StatusCode::kInvalidArgument);
  return parts.status().message();
}

TEST(MultipartBoundaryTest, ReadsTheHttpxContentType) {
  auto boundary = MultipartBoundary("multipart/form-data; boundary=" + std::string(kHttpxBoundary));
  ASSERT_TRUE(boundary.ok()) << boundary.status().ToString();
  EXPECT_EQ(*boundary, kHttpxBoundary);
}

TEST(MultipartBoundaryTest, AcceptsQuotingCaseAndOtherParameters) {
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=\"abc\""), "abc");
  EXPECT_EQ(*MultipartBoundary("Multipart/Form-Data; BOUNDARY=AbC"), "AbC");
  EXPECT_EQ(*MultipartBoundary("  multipart/form-data ;charset=utf-8;  boundary = \"a b:c\" ; x=y"), "a b:c");
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW"),
            "----WebKitFormBoundary7MA4YWxkTrZu0gW");
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=\"a\\bc\";"), "abc");  // a quoted-pair
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=" + std::string(70, 'b')), std::string(70, 'b'));
  EXPECT_EQ(*MultipartBoundary("multipart/form-data; boundary=\"'()+_,-./:=?\""), "'()+_,-./:=?");
}

TEST(MultipartBoundaryTest, RefusesOtherTypesAndBadBoundaries) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "no type"},
      {"application/json", "not multipart/form-data"},
      {"multipart/mixed; boundary=abc", "not multipart/form-data"},
      {"multipart/form-data", "without a boundary"},
      {"multipart/form-data; charset=utf-8", "without a boundary"},
      {"multipart/form-data; boundary", "without '='"},
      {"multipart/form-data; boundary=", "empty parameter value"},
      {"multipart/form-data; boundary=\"\"", "1 to 70"},
      {"multipart/form-data; boundary=" + std::string(71, 'b'), "1 to 70"},
      {"multipart/form-data; boundary=\"a@b\"", "does not allow"},
      {"multipart/form-data; boundary=\"ab \"", "does not allow"},
      {"multipart/form-data; boundary=a; boundary=b", "two boundary"},
      {"multipart/form-data; boundary=\"abc", "unterminated"},
      {"multipart/form-data; boundary=\"abc\"x", "text after a quoted"},
      {"multipart/form-data; boundary=a b", "space or a quote"},
      {"multipart/form-data; =abc", "malformed parameter name"},
  };
  for (const auto& [content_type, message] : cases) {
    auto boundary = MultipartBoundary(content_type);
    ASSERT_FALSE(boundary.ok()) << content_type;
    EXPECT_EQ(boundary.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(boundary.status().message().find(message), std::string::npos)
        << content_type << " gave " << boundary.status().message();
  }
}

TEST(MultipartTest, ParsesWhatHttpxSends) {
  const std::string body = HttpxBody();
  auto parts = ParseMultipart(body, kHttpxBoundary);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].name, "purpose");
  EXPECT_EQ((*parts)[0].filename, "");
  EXPECT_EQ((*parts)[0].content_type, "");
  EXPECT_EQ(Content(body, (*parts)[0]), "batch");
  EXPECT_EQ((*parts)[1].name, "file");
  EXPECT_EQ((*parts)[1].filename, "x.jsonl");
  EXPECT_EQ((*parts)[1].content_type, "application/octet-stream");
  EXPECT_EQ(Content(body, (*parts)[1]), kJsonl);
  EXPECT_EQ(body.substr((*parts)[1].offset - 4, 4), "\r\n\r\n");  // located in place, never copied
}

TEST(MultipartTest, EmptyPartsAndAnEmptyForm) {
  const std::string body =
      "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n\r\n"
      "--xyz\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\"\r\n"
      "Content-Type: application/octet-stream\r\n\r\n\r\n--xyz--\r\n";
  auto parts = ParseMultipart(body, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ((*parts)[0].length, 0u);
  EXPECT_EQ((*parts)[1].length, 0u);
  EXPECT_EQ((*parts)[1].filename, "");
  EXPECT_EQ((*parts)[1].content_type, "application/octet-stream");

  auto none = ParseMultipart("--xyz--\r\n", "xyz");
  ASSERT_TRUE(none.ok()) << none.status().ToString();
  EXPECT_TRUE(none->empty());

  // A part of headers only: the delimiter follows the blank line at once.
  const std::string headers_only = "--xyz\r\nContent-Disposition: form-data; name=\"h\"\r\n\r\n--xyz--\r\n";
  auto parsed = ParseMultipart(headers_only, "xyz");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->size(), 1u);
  EXPECT_EQ((*parsed)[0].name, "h");
  EXPECT_EQ((*parsed)[0].length, 0u);
  EXPECT_LE((*parsed)[0].offset, headers_only.size());
}

TEST(MultipartTest, BoundaryLikeTextInContentIsContent) {
  const std::string content =
      "--xyz at the start\r\n-xyz\r\n--xy\r\n--xyzz\r\n--xyz-\r\n--xyz--x\r\n--xyz \tx\r\n\r\n--XYZ\r\n"
      "text --xyz\r\n--xyz--more\r\nend";
  const std::string body = OnePart("Content-Disposition: form-data; name=\"f\"", content);
  auto parts = ParseMultipart(body, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ(Content(body, (*parts)[0]), content);
}

TEST(MultipartTest, PreambleEpilogueAndTransportPadding) {
  const std::string body =
      "This is the preamble.\r\n--xyz is not a delimiter\r\n--xyz \t\r\n"
      "Content-Disposition: form-data; name=\"a\"\r\n\r\none\r\n"
      "--xyz  \r\nContent-Disposition: form-data; name=\"b\"\r\n\r\ntwo\r\n"
      "--xyz-- \r\nThis is the epilogue.\r\n--xyz\r\nContent-Disposition: form-data; name=\"c\"\r\n\r\n";
  auto parts = ParseMultipart(body, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 2u);
  EXPECT_EQ(Content(body, (*parts)[0]), "one");
  EXPECT_EQ(Content(body, (*parts)[1]), "two");

  // The close delimiter may end the body without a CRLF; a body may start with CRLF and the delimiter.
  const std::string part = "--xyz\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--xyz--";
  for (const std::string& other : {part, "\r\n" + part + "\t"}) {
    auto more = ParseMultipart(other, "xyz");
    ASSERT_TRUE(more.ok()) << more.status().ToString();
    ASSERT_EQ(more->size(), 1u);
    EXPECT_EQ(Content(other, (*more)[0]), "1");
  }
}

TEST(MultipartTest, BinaryContentWithEveryByte) {
  std::string content;
  for (int round = 0; round < 3; ++round) {
    for (int c = 0; c < 256; ++c) content.push_back(static_cast<char>(c));
  }
  content += "\r\n\r\n\r";
  const std::string body = OnePart("Content-Disposition: form-data; name=\"file\"; filename=\"w.bin\"", content);
  auto parts = ParseMultipart(body, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ(Content(body, (*parts)[0]), content);
}

TEST(MultipartTest, HeaderAndParameterSpellings) {
  const std::string body = OnePart(
      "X-Ignored: yes\r\ncontent-disposition:FORM-DATA;NAME=field ; Filename=\"a\\\"b\\\\c; d.jsonl\";"
      " filename*=UTF-8''ignored.txt\r\nCONTENT-TYPE:   text/plain; charset=utf-8  ",
      "v");
  auto parts = ParseMultipart(body, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].name, "field");
  EXPECT_EQ((*parts)[0].filename, "a\"b\\c; d.jsonl");
  EXPECT_EQ((*parts)[0].content_type, "text/plain; charset=utf-8");

  // httpx and browsers write a quote in a file name as %22 and send UTF-8 as it is: both stay as sent.
  const std::string utf8 =
      OnePart("Content-Disposition: form-data; name=\"file\"; filename=\"b%22\xC3\xA9.jsonl\"", "");
  auto named = ParseMultipart(utf8, "xyz");
  ASSERT_TRUE(named.ok()) << named.status().ToString();
  EXPECT_EQ((*named)[0].filename, "b%22\xC3\xA9.jsonl");
}

TEST(MultipartTest, AllowsUpToMaxPartsAndNoMore) {
  std::string body;
  for (int i = 0; i < 3; ++i) {
    body += "--xyz\r\nContent-Disposition: form-data; name=\"p" + std::to_string(i) + "\"\r\n\r\nv\r\n";
  }
  body += "--xyz--\r\n";
  auto three = ParseMultipart(body, "xyz", 3);
  ASSERT_TRUE(three.ok()) << three.status().ToString();
  ASSERT_EQ(three->size(), 3u);
  EXPECT_EQ((*three)[2].name, "p2");
  EXPECT_NE(ErrorOf(body, "xyz", 2).find("more than 2 parts"), std::string::npos);
  EXPECT_NE(ErrorOf(body, "xyz", 0).find("more than 0 parts"), std::string::npos);
  EXPECT_TRUE(ParseMultipart("--xyz--", "xyz", 0).ok());
}

TEST(MultipartTest, HeadersUpToTheLimit) {
  const std::string disposition = "Content-Disposition: form-data; name=\"f\"\r\n";
  const std::string pad_name = "X-Pad: ";
  // The header block (each line with its CRLF) at exactly kMaxMultipartHeaderBytes, then one byte more.
  const size_t pad = kMaxMultipartHeaderBytes - disposition.size() - pad_name.size() - 2;
  const std::string at_limit = "--xyz\r\n" + disposition + pad_name + std::string(pad, 'p') + "\r\n\r\nc\r\n--xyz--";
  auto parts = ParseMultipart(at_limit, "xyz");
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  EXPECT_EQ(Content(at_limit, (*parts)[0]), "c");
  const std::string over = "--xyz\r\n" + disposition + pad_name + std::string(pad + 1, 'p') + "\r\n\r\nc\r\n--xyz--";
  EXPECT_NE(ErrorOf(over).find("longer than 8192 bytes"), std::string::npos);
}

TEST(MultipartTest, EveryMalformedInputIsNamed) {
  const std::string cd = "Content-Disposition: form-data; name=\"f\"";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", "without a delimiter line"},
      {"no delimiter here", "without a delimiter line"},
      {"--xyzz\r\n", "without a delimiter line"},
      {"--xyz\r\n" + cd + "\r\n\r\ncontent", "missing close delimiter"},
      {"--xyz\r\n" + cd + "\r\n\r\ncontent\r\n--xyz", "missing close delimiter"},
      {"--xyz\r\n" + cd + "\r\n\r\ncontent\r\n--xyz--x", "missing close delimiter"},
      {"--xyz\r\n" + cd + "\r\n\r\n", "missing close delimiter"},
      {"--xyz\r\n", "not ended by a blank line"},
      {"--xyz\r\n" + cd, "not ended by a blank line"},
      {"--xyz\r\n" + cd + "\r\n", "not ended by a blank line"},
      {"--xyz\r\n\r\ncontent\r\n--xyz--", "part 1: part without Content-Disposition"},
      {OnePart("Content-Type: text/plain", "c"), "part without Content-Disposition"},
      {OnePart("no colon", "c"), "malformed header line"},
      {OnePart(": value", "c"), "malformed header line"},
      {OnePart("Bad Name: value\r\n" + cd, "c"), "malformed header line"},
      {OnePart(cd + "\r\n folded", "c"), "folded"},
      {OnePart(cd + "\r\nX: a\x01z", "c"), "control character"},
      {OnePart(cd + "\r\nX: a\nz", "c"), "control character"},
      {OnePart(cd + "\r\n" + cd, "c"), "two Content-Disposition headers"},
      {OnePart(cd + "\r\nContent-Type: a/b\r\ncontent-type: a/b", "c"), "two Content-Type headers"},
      {OnePart("Content-Disposition: attachment; name=\"f\"", "c"), "not form-data"},
      {OnePart("Content-Disposition: form-data", "c"), "without a name"},
      {OnePart("Content-Disposition: form-data; filename=\"a\"", "c"), "without a name"},
      {OnePart("Content-Disposition: form-data; name=a; name=b", "c"), "two name parameters"},
      {OnePart("Content-Disposition: form-data; name=a; filename=b; filename=c", "c"), "two filename parameters"},
      {OnePart("Content-Disposition: form-data; name=\"a", "c"), "Content-Disposition: unterminated"},
      {OnePart("Content-Disposition: form-data; name=\"a\\", "c"), "unterminated"},
      {OnePart("Content-Disposition: form-data; name=\"a\" b", "c"), "text after a quoted parameter value"},
      {OnePart("Content-Disposition: form-data; name", "c"), "without '='"},
      {OnePart("Content-Disposition: form-data; name=", "c"), "empty parameter value"},
      {OnePart("Content-Disposition: form-data; name=a b", "c"), "space or a quote"},
      {OnePart("Content-Disposition: form-data; na me=a", "c"), "malformed parameter name"},
      {OnePart("Content-Disposition: ; name=a", "c"), "no type"},
  };
  for (const auto& [body, message] : cases) {
    const std::string error = ErrorOf(body);
    EXPECT_NE(error.find(message), std::string::npos) << body << "\ngave: " << error;
  }
  EXPECT_NE(ErrorOf("--\r\n", "").find("1 to 70"), std::string::npos);
  EXPECT_NE(ErrorOf("--x\r\n", std::string(71, 'x')).find("1 to 70"), std::string::npos);
  EXPECT_NE(ErrorOf("--a\nb\r\n", "a\nb").find("does not allow"), std::string::npos);
}

TEST(MultipartTest, ErrorsNameThePart) {
  const std::string body =
      "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--xyz\r\nContent-Type: x/y\r\n\r\n2\r\n--xyz--";
  EXPECT_EQ(ErrorOf(body), "multipart part 2: part without Content-Disposition");
}

TEST(MultipartTest, EveryPrefixOfAValidBodyFailsCleanly) {
  const std::string body = "preamble\r\n" + HttpxBody();
  const auto whole = ParseMultipart(body, kHttpxBoundary);
  ASSERT_TRUE(whole.ok());
  for (size_t n = 0; n < body.size(); ++n) {
    // A copy of exactly n bytes, so that a read past the prefix is a read past the allocation under ASan.
    const std::vector<char> prefix(body.begin(), body.begin() + n);
    auto parts = ParseMultipart(std::string_view(prefix.data(), prefix.size()), kHttpxBoundary);
    if (n == body.size() - 2) {  // "--boundary--" without its CRLF still closes the body
      ASSERT_TRUE(parts.ok()) << parts.status().ToString();
      ASSERT_EQ(parts->size(), whole->size());
      for (size_t i = 0; i < parts->size(); ++i) {
        EXPECT_EQ((*parts)[i].offset, (*whole)[i].offset);
        EXPECT_EQ((*parts)[i].length, (*whole)[i].length);
      }
    } else {
      EXPECT_FALSE(parts.ok()) << "prefix of " << n << " bytes";
      EXPECT_EQ(parts.status().code(), StatusCode::kInvalidArgument);
    }
  }
}

TEST(MultipartTest, LargeBodiesWithManyNearMisses) {
  // 16 MiB of content that is almost a delimiter everywhere: linear search, so this stays fast.
  std::string content;
  content.reserve(16 << 20);
  while (content.size() < (16u << 20)) content += "\r\n--4c1d8e0f6a2b49d7a3f5c6e7d8b9a0f0";
  std::string body = "--" + std::string(kHttpxBoundary) +
                     "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.jsonl\"\r\n\r\n";
  const size_t offset = body.size();
  body += content + "\r\n--" + std::string(kHttpxBoundary) + "--\r\n";
  auto parts = ParseMultipart(body, kHttpxBoundary);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), 1u);
  EXPECT_EQ((*parts)[0].offset, offset);
  EXPECT_EQ((*parts)[0].length, content.size());
}

}  // namespace
}  // namespace ferry
