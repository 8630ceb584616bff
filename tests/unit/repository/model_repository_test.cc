#include "repository/model_repository.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

namespace ferry {
namespace {

namespace fs = std::filesystem;

constexpr char kGoodConfig[] = R"(
max_batch_size: 4
inputs: [{name: x, datatype: FP32, dims: [3]}]
outputs: [{name: y, datatype: FP32, dims: [1]}]
)";

// A fresh directory under the system temp folder, removed (permissions restored first) at the end.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = fs::temp_directory_path() / ("ferry_repo_test_" + std::to_string(::getpid()) + "_" +
                                         std::to_string(counter++) + "_" + std::to_string(rd()));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(path_, ec); !ec && it != fs::recursive_directory_iterator();
         it.increment(ec)) {
      fs::permissions(it->path(), fs::perms::owner_all, fs::perm_options::add | fs::perm_options::nofollow, ec);
    }
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

void WriteFile(const fs::path& path, std::string_view text) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  ASSERT_TRUE(out.good()) << path;
}

class ModelRepositoryTest : public ::testing::Test {
 protected:
  fs::path Root() const { return dir_.path() / "models"; }
  void AddModel(const std::string& name, std::string_view config, std::initializer_list<const char*> versions) {
    fs::create_directories(Root() / name);
    WriteFile(Root() / name / "config.yaml", config);
    for (const char* v : versions) fs::create_directories(Root() / name / v);
  }
  static const RepositoryModel* Find(const std::vector<RepositoryModel>& models, std::string_view name) {
    for (const RepositoryModel& m : models) {
      if (m.name == name) return &m;
    }
    return nullptr;
  }

  TempDir dir_;
};

TEST_F(ModelRepositoryTest, ScanListsModelsAndNumericVersions) {
  AddModel("resnet", kGoodConfig, {"1", "2", "10", "v3", "01", "0", "-4", "abc", ".5", "99999999999999999999"});
  WriteFile(Root() / "resnet" / "7", "a file, not a version folder");
  AddModel("bert", "name: bert\n", {"3"});
  WriteFile(Root() / "README.md", "not a model");
  fs::create_directories(Root() / ".git" / "1");
  fs::create_directories(Root() / ".hidden_model");

  ModelRepository repo(Root());
  Result<std::vector<RepositoryModel>> scan = repo.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 2u);
  EXPECT_EQ((*scan)[0].name, "bert");  // sorted by name
  EXPECT_EQ((*scan)[1].name, "resnet");

  const RepositoryModel& resnet = (*scan)[1];
  ASSERT_TRUE(resnet.config.ok()) << resnet.config.status().ToString();
  EXPECT_EQ(resnet.config->name, "resnet");
  EXPECT_EQ(resnet.config->max_batch_size, 4);
  EXPECT_EQ(resnet.versions, (std::vector<int64_t>{1, 2, 10}));
  EXPECT_TRUE(resnet.version_errors.empty());
  EXPECT_EQ(resnet.path, Root() / "resnet");

  const RepositoryModel& bert = (*scan)[0];
  ASSERT_TRUE(bert.config.ok()) << bert.config.status().ToString();
  EXPECT_EQ(bert.versions, (std::vector<int64_t>{3}));
}

TEST_F(ModelRepositoryTest, BrokenConfigsAreListedWithTheirError) {
  AddModel("typo", "max_batch: 4\n", {"1"});
  AddModel("syntax", "inputs: [1, 2\n", {"1"});
  AddModel("mismatch", "name: other\n", {"1"});
  fs::create_directories(Root() / "noconfig" / "1");
  fs::create_directories(Root() / "dirconfig" / "config.yaml");
  AddModel("good", kGoodConfig, {});

  Result<std::vector<RepositoryModel>> scan = ModelRepository(Root()).Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 6u);

  const RepositoryModel* typo = Find(*scan, "typo");
  ASSERT_NE(typo, nullptr);
  ASSERT_FALSE(typo->config.ok());
  EXPECT_EQ(typo->config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(typo->config.status().message().rfind("config.yaml: unknown key 'max_batch'", 0), 0u)
      << typo->config.status().message();
  EXPECT_EQ(typo->versions, (std::vector<int64_t>{1}));  // versions are still reported

  const RepositoryModel* syntax = Find(*scan, "syntax");
  ASSERT_NE(syntax, nullptr);
  EXPECT_NE(syntax->config.status().message().find("invalid YAML at line"), std::string::npos)
      << syntax->config.status().message();

  const RepositoryModel* mismatch = Find(*scan, "mismatch");
  ASSERT_NE(mismatch, nullptr);
  EXPECT_NE(mismatch->config.status().message().find("does not match the model folder 'mismatch'"),
            std::string::npos);

  const RepositoryModel* noconfig = Find(*scan, "noconfig");
  ASSERT_NE(noconfig, nullptr);
  EXPECT_EQ(noconfig->config.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(noconfig->config.status().message(), "missing config.yaml");
  EXPECT_EQ(noconfig->versions, (std::vector<int64_t>{1}));

  const RepositoryModel* dirconfig = Find(*scan, "dirconfig");
  ASSERT_NE(dirconfig, nullptr);
  EXPECT_EQ(dirconfig->config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(dirconfig->config.status().message(), "config.yaml is not a regular file");

  const RepositoryModel* good = Find(*scan, "good");
  ASSERT_NE(good, nullptr);
  EXPECT_TRUE(good->config.ok());
  EXPECT_TRUE(good->versions.empty());
}

TEST_F(ModelRepositoryTest, OversizedConfigIsRejectedUnread) {
  AddModel("big", std::string(ModelRepository::kMaxConfigBytes + 1, '#'), {"1"});
  Result<RepositoryModel> model = ModelRepository(Root()).ReadModel("big");
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(model->config.status().message().find("the limit is"), std::string::npos);
}

TEST_F(ModelRepositoryTest, LinksInsideTheRootAreFollowed) {
  AddModel("real", kGoodConfig, {"1"});
  fs::create_directory_symlink(Root() / "real", Root() / "alias");
  // A version that links to another folder inside the repository.
  fs::create_directories(Root() / "shared_weights");
  fs::create_directory_symlink(Root() / "shared_weights", Root() / "real" / "2");
  fs::create_directory_symlink(Root() / "nowhere", Root() / "dangling");

  Result<std::vector<RepositoryModel>> scan = ModelRepository(Root()).Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  const RepositoryModel* alias = Find(*scan, "alias");
  ASSERT_NE(alias, nullptr);
  // Its config has no `name`, so it takes the link's name: one model served under two names.
  ASSERT_TRUE(alias->config.ok()) << alias->config.status().ToString();
  EXPECT_EQ(alias->config->name, "alias");
  EXPECT_EQ(alias->versions, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(Find(*scan, "dangling"), nullptr);
  const RepositoryModel* real = Find(*scan, "real");
  ASSERT_NE(real, nullptr);
  EXPECT_EQ(real->versions, (std::vector<int64_t>{1, 2}));
  EXPECT_TRUE(real->version_errors.empty());
}

TEST_F(ModelRepositoryTest, LinksLeavingTheRootAreRejected) {
  const fs::path outside = dir_.path() / "outside";
  WriteFile(outside / "config.yaml", kGoodConfig);
  fs::create_directories(outside / "1");

  fs::create_directories(Root());
  fs::create_directory_symlink(outside, Root() / "escaped");
  AddModel("leaky", kGoodConfig, {"1"});
  fs::create_directory_symlink(outside / "1", Root() / "leaky" / "2");
  // A relative link that climbs out through "..".
  fs::create_directory_symlink("../../outside/1", Root() / "leaky" / "3");
  fs::create_directories(Root() / "stolen" / "1");
  fs::create_symlink(outside / "config.yaml", Root() / "stolen" / "config.yaml");

  ModelRepository repo(Root());
  Result<std::vector<RepositoryModel>> scan = repo.Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();

  const RepositoryModel* escaped = Find(*scan, "escaped");
  ASSERT_NE(escaped, nullptr);
  EXPECT_EQ(escaped->config.status().code(), StatusCode::kPermissionDenied);
  EXPECT_NE(escaped->config.status().message().find("leaves the model repository"), std::string::npos);
  EXPECT_TRUE(escaped->versions.empty());

  const RepositoryModel* leaky = Find(*scan, "leaky");
  ASSERT_NE(leaky, nullptr);
  EXPECT_TRUE(leaky->config.ok()) << leaky->config.status().ToString();
  EXPECT_EQ(leaky->versions, (std::vector<int64_t>{1}));
  ASSERT_EQ(leaky->version_errors.size(), 2u);
  for (const Status& s : leaky->version_errors) {
    EXPECT_EQ(s.code(), StatusCode::kPermissionDenied) << s.ToString();
  }

  const RepositoryModel* stolen = Find(*scan, "stolen");
  ASSERT_NE(stolen, nullptr);
  EXPECT_EQ(stolen->config.status().code(), StatusCode::kPermissionDenied);
  EXPECT_EQ(stolen->config.status().message(), "config.yaml is a link that leaves the model repository");

  Result<RepositoryModel> read = repo.ReadModel("escaped");
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_EQ(read->config.status().code(), StatusCode::kPermissionDenied);
}

TEST_F(ModelRepositoryTest, RootThroughALinkOrWithATrailingSlash) {
  AddModel("m", kGoodConfig, {"1"});
  fs::create_directory_symlink(Root(), dir_.path() / "root_link");
  for (const fs::path& root : {dir_.path() / "root_link", fs::path(Root().string() + "/")}) {
    Result<std::vector<RepositoryModel>> scan = ModelRepository(root).Scan();
    ASSERT_TRUE(scan.ok()) << root << scan.status().ToString();
    ASSERT_EQ(scan->size(), 1u) << root;
    EXPECT_TRUE((*scan)[0].config.ok()) << root << (*scan)[0].config.status().ToString();
    EXPECT_EQ((*scan)[0].versions, (std::vector<int64_t>{1})) << root;
  }
}

TEST_F(ModelRepositoryTest, ScanFailsOnlyWhenTheRootCannotBeRead) {
  Result<std::vector<RepositoryModel>> missing = ModelRepository(Root() / "absent").Scan();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);

  WriteFile(dir_.path() / "a_file", "x");
  Result<std::vector<RepositoryModel>> file = ModelRepository(dir_.path() / "a_file").Scan();
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kUnavailable);

  // An empty repository is fine.
  fs::create_directories(Root());
  Result<std::vector<RepositoryModel>> empty = ModelRepository(Root()).Scan();
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST_F(ModelRepositoryTest, UnreadableFoldersBecomeUnavailable) {
  if (::geteuid() == 0) GTEST_SKIP() << "root ignores permission bits";
  AddModel("locked", kGoodConfig, {"1"});
  fs::permissions(Root() / "locked", fs::perms::none);
  Result<std::vector<RepositoryModel>> scan = ModelRepository(Root()).Scan();
  ASSERT_TRUE(scan.ok()) << scan.status().ToString();
  ASSERT_EQ(scan->size(), 1u);
  EXPECT_EQ((*scan)[0].config.status().code(), StatusCode::kUnavailable);
  EXPECT_TRUE((*scan)[0].versions.empty());

  fs::permissions(Root(), fs::perms::none);
  Result<std::vector<RepositoryModel>> root = ModelRepository(Root()).Scan();
  ASSERT_FALSE(root.ok());
  EXPECT_EQ(root.status().code(), StatusCode::kUnavailable);
}

TEST_F(ModelRepositoryTest, ReadModel) {
  AddModel("cnn", kGoodConfig, {"2", "1"});
  WriteFile(Root() / "plainfile", "x");
  ModelRepository repo(Root());

  Result<RepositoryModel> cnn = repo.ReadModel("cnn");
  ASSERT_TRUE(cnn.ok()) << cnn.status().ToString();
  EXPECT_EQ(cnn->name, "cnn");
  EXPECT_TRUE(cnn->config.ok());
  EXPECT_EQ(cnn->versions, (std::vector<int64_t>{1, 2}));

  EXPECT_EQ(repo.ReadModel("absent").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(repo.ReadModel("plainfile").status().code(), StatusCode::kNotFound);
  for (std::string_view bad : {"", ".", "..", "../models/cnn", "a/b", "a\\b", ".hidden"}) {
    EXPECT_EQ(repo.ReadModel(bad).status().code(), StatusCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(repo.ReadModel(std::string_view("cnn\0x", 5)).status().code(), StatusCode::kInvalidArgument);
}

TEST(ModelRepositoryNameTest, IsValidModelName) {
  for (std::string_view good : {"cnn", "resnet-50", "bert_base.v2", "a", "UPPER", "with space", "ünïcode"}) {
    EXPECT_TRUE(ModelRepository::IsValidModelName(good)) << good;
  }
  EXPECT_TRUE(ModelRepository::IsValidModelName(std::string(255, 'x')));
  EXPECT_FALSE(ModelRepository::IsValidModelName(std::string(256, 'x')));
  for (std::string_view bad : {"", ".", "..", ".git", "a/b", "/abs", "a\\b", "tab\there", "new\nline", "del\x7f"}) {
    EXPECT_FALSE(ModelRepository::IsValidModelName(bad)) << bad;
  }
  EXPECT_FALSE(ModelRepository::IsValidModelName(std::string_view("a\0b", 3)));
}

TEST(ModelRepositoryPathTest, VersionPath) {
  ModelRepository repo("/srv/models");
  EXPECT_EQ(repo.VersionPath("cnn", 3), fs::path("/srv/models/cnn/3"));
  EXPECT_EQ(repo.root(), fs::path("/srv/models"));
}

TEST(SelectVersionsTest, Latest) {
  VersionPolicy latest;  // latest 1
  EXPECT_EQ(SelectVersions(latest, {1, 3, 2}), (std::vector<int64_t>{3}));
  latest.latest_count = 2;
  EXPECT_EQ(SelectVersions(latest, {10, 1, 3, 2}), (std::vector<int64_t>{3, 10}));
  latest.latest_count = 5;
  EXPECT_EQ(SelectVersions(latest, {2, 1}), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(SelectVersions(latest, {}), (std::vector<int64_t>{}));
  latest.latest_count = 2;
  EXPECT_EQ(SelectVersions(latest, {4, 4, 3}), (std::vector<int64_t>{3, 4}));  // duplicates count once
  latest.latest_count = 0;
  EXPECT_EQ(SelectVersions(latest, {1, 2}), (std::vector<int64_t>{}));
}

TEST(SelectVersionsTest, All) {
  VersionPolicy all{VersionPolicy::Kind::kAll, 1, {}};
  EXPECT_EQ(SelectVersions(all, {5, 1, 3, 1}), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(SelectVersions(all, {}), (std::vector<int64_t>{}));
}

TEST(SelectVersionsTest, Specific) {
  VersionPolicy specific{VersionPolicy::Kind::kSpecific, 1, {3, 1, 7}};
  EXPECT_EQ(SelectVersions(specific, {1, 2, 3, 4}), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(SelectVersions(specific, {2, 4}), (std::vector<int64_t>{}));
  EXPECT_EQ(SelectVersions(specific, {7, 7, 3}), (std::vector<int64_t>{3, 7}));
}

}  // namespace
}  // namespace ferry
