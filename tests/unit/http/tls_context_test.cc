#include "http/tls_context.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <filesystem>
#include <fstream>

namespace ferry {
namespace {

namespace fs = std::filesystem;

// A self-signed P-256 certificate and its key, written as PEM files.
void WritePair(const fs::path& cert, const fs::path& key, const char* common_name) {
  EVP_PKEY* pkey = EVP_EC_gen("P-256");
  ASSERT_NE(pkey, nullptr);
  X509* x = X509_new();
  ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
  X509_gmtime_adj(X509_getm_notBefore(x), 0);
  X509_gmtime_adj(X509_getm_notAfter(x), 3600);
  X509_set_pubkey(x, pkey);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(common_name), -1, -1, 0);
  X509_set_issuer_name(x, name);
  ASSERT_GT(X509_sign(x, pkey, EVP_sha256()), 0);
  FILE* f = std::fopen(cert.c_str(), "w");
  PEM_write_X509(f, x);
  std::fclose(f);
  f = std::fopen(key.c_str(), "w");
  PEM_write_PrivateKey(f, pkey, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
  X509_free(x);
  EVP_PKEY_free(pkey);
}

class TlsContextTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ferry-tls-" + std::to_string(::getpid()) + "-" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    WritePair(dir_ / "a.pem", dir_ / "a.key", "a");
    WritePair(dir_ / "b.pem", dir_ / "b.key", "b");
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(TlsContextTest, LoadsAMatchingPair) {
  auto tls = TlsContext::Open((dir_ / "a.pem").string(), (dir_ / "a.key").string());
  ASSERT_TRUE(tls.ok()) << tls.status().message();
  EXPECT_NE((*tls)->Current(), nullptr);
}

TEST_F(TlsContextTest, RefusesWhatDoesNotParseOrMatch) {
  std::ofstream(dir_ / "garbage.pem") << "not a certificate\n";
  auto mismatch = TlsContext::Open((dir_ / "a.pem").string(), (dir_ / "b.key").string());
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("does not match the certificate"), std::string::npos)
      << mismatch.status().message();
  auto garbage = TlsContext::Open((dir_ / "garbage.pem").string(), (dir_ / "a.key").string());
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("cannot be loaded"), std::string::npos);
  auto missing = TlsContext::Open((dir_ / "nope.pem").string(), (dir_ / "a.key").string());
  EXPECT_FALSE(missing.ok());
  auto half = TlsContext::Open((dir_ / "a.pem").string(), "");
  ASSERT_FALSE(half.ok());
  EXPECT_NE(half.status().message().find("--tls-key"), std::string::npos);
}

TEST_F(TlsContextTest, AFailedReloadKeepsTheContextInForceAndAGoodOneReplacesIt) {
  fs::copy_file(dir_ / "a.pem", dir_ / "live.pem");
  fs::copy_file(dir_ / "a.key", dir_ / "live.key");
  auto tls = TlsContext::Open((dir_ / "live.pem").string(), (dir_ / "live.key").string());
  ASSERT_TRUE(tls.ok());
  auto first = (*tls)->Current();
  Result<bool> unchanged = (*tls)->ReloadIfChanged();
  ASSERT_TRUE(unchanged.ok());
  EXPECT_FALSE(*unchanged);
  EXPECT_EQ((*tls)->Current(), first);

  // Half a swap: b's certificate with a's key.
  fs::copy_file(dir_ / "b.pem", dir_ / "live.pem", fs::copy_options::overwrite_existing);
  fs::last_write_time(dir_ / "live.pem", fs::last_write_time(dir_ / "live.pem") + std::chrono::seconds(1));
  EXPECT_FALSE((*tls)->ReloadIfChanged().ok());
  EXPECT_EQ((*tls)->Current(), first);
  EXPECT_FALSE((*tls)->Reload().ok());
  EXPECT_EQ((*tls)->Current(), first);

  fs::copy_file(dir_ / "b.key", dir_ / "live.key", fs::copy_options::overwrite_existing);
  fs::last_write_time(dir_ / "live.key", fs::last_write_time(dir_ / "live.key") + std::chrono::seconds(2));
  Result<bool> reloaded = (*tls)->ReloadIfChanged();
  ASSERT_TRUE(reloaded.ok()) << reloaded.status().message();
  EXPECT_TRUE(*reloaded);
  EXPECT_NE((*tls)->Current(), first);
  EXPECT_NE(first, nullptr);  // connections that began with it still hold it
}

}  // namespace
}  // namespace ferry
