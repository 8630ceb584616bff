#include "repository/reference_set.h"

#include <fstream>
#include <iterator>

#include <fmt/format.h>

#include "repository/yaml_fields.h"
#include "tensor/bytes_elements.h"

namespace ferry {
namespace {

using namespace yaml_fields;  // NOLINT: the checked readers are this file's vocabulary

namespace fs = std::filesystem;

bool IsPlainName(std::string_view name) {
  if (name.empty() || name.front() == '.') return false;
  return name.find_first_of(std::string_view("/\\\0", 3)) == std::string_view::npos;
}

Status ParseTolerance(const YAML::Node& node, std::string_view path, ReferenceTolerance* out) {
  FERRY_RETURN_IF_ERROR(CheckMap(node, path, {"absolute", "relative"}));
  if (const YAML::Node n = node["absolute"]) FERRY_RETURN_IF_ERROR(GetDouble(n, Child(path, "absolute"), &out->absolute));
  if (const YAML::Node n = node["relative"]) FERRY_RETURN_IF_ERROR(GetDouble(n, Child(path, "relative"), &out->relative));
  if (out->absolute < 0 || out->relative < 0) {
    return InvalidArgument(fmt::format("{}: tolerances must not be negative{}", path, Line(node)));
  }
  return Status::Ok();
}

// Reads one tensor file and checks its size against the shape. `budget` is what is left of the limit.
Status ReadTensorFile(const fs::path& folder, const std::string& file, std::string_view path, Tensor* t,
                      int64_t* budget) {
  if (!IsPlainName(file)) {
    return InvalidArgument(fmt::format("{}: file {} must be a plain file name inside the reference folder",
                                       path, Quote(file)));
  }
  std::error_code ec;
  const fs::path full = folder / file;
  const auto size = fs::file_size(full, ec);
  if (ec || !fs::is_regular_file(full, ec)) {
    return InvalidArgument(fmt::format("{}: file {} not found in the reference folder", path, Quote(file)));
  }
  if (static_cast<int64_t>(size) > *budget) {
    return InvalidArgument(fmt::format("{}: the reference tensors exceed the size limit", path));
  }
  *budget -= static_cast<int64_t>(size);
  std::ifstream in(full, std::ios::binary);
  std::vector<uint8_t> bytes(size);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  if (!in && size > 0) return InvalidArgument(fmt::format("{}: cannot read {}", path, Quote(file)));
  t->data = Buffer::Own(std::move(bytes));
  Status valid = t->ValidateData();
  if (!valid.ok()) {
    return InvalidArgument(fmt::format("{}: file {} does not hold shape {} of {}: {}", path, Quote(file),
                                       ShapeToString(t->shape), DataTypeName(t->dtype), valid.message()));
  }
  return Status::Ok();
}

Status ParseTensorList(const YAML::Node& node, std::string_view path, const fs::path& folder,
                       std::vector<Tensor>* out, int64_t* budget) {
  if (!node.IsSequence() || node.size() == 0) {
    return InvalidArgument(fmt::format("{}: expected a non-empty list of tensors{}", path, Line(node)));
  }
  for (size_t i = 0; i < node.size(); ++i) {
    const YAML::Node& item = node[i];
    const std::string item_path = Index(path, i);
    FERRY_RETURN_IF_ERROR(CheckMap(item, item_path, {"name", "datatype", "shape", "file"}));
    for (std::string_view key : {"name", "datatype", "shape", "file"}) {
      if (!item[std::string(key)]) return Missing(item, item_path, key);
    }
    Tensor t;
    std::string file;
    FERRY_RETURN_IF_ERROR(GetString(item["name"], Child(item_path, "name"), &t.name));
    FERRY_RETURN_IF_ERROR(ParseDataType(item["datatype"], Child(item_path, "datatype"), &t.dtype));
    FERRY_RETURN_IF_ERROR(GetIntList(item["shape"], Child(item_path, "shape"), &t.shape));
    FERRY_RETURN_IF_ERROR(GetString(item["file"], Child(item_path, "file"), &file));
    for (const Tensor& seen : *out) {
      if (seen.name == t.name) return InvalidArgument(fmt::format("{}: tensor {} is listed twice", path, Quote(t.name)));
    }
    FERRY_RETURN_IF_ERROR(ElementCount(t.shape).status().WithContext(Child(item_path, "shape")));
    FERRY_RETURN_IF_ERROR(ReadTensorFile(folder, file, item_path, &t, budget));
    out->push_back(std::move(t));
  }
  return Status::Ok();
}

}  // namespace

Result<ReferenceSet> ParseReferenceSet(std::string_view yaml_text, const fs::path& folder,
                                       int64_t max_total_bytes) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml_text));
  } catch (const YAML::Exception& e) {
    return InvalidArgument(fmt::format("{}: {} (line {})", kReferenceFile, e.msg, e.mark.line + 1));
  }
  FERRY_RETURN_IF_ERROR(CheckMap(root, kReferenceFile, {"tolerance", "samples"}));
  ReferenceTolerance defaults;
  if (const YAML::Node n = root["tolerance"]) FERRY_RETURN_IF_ERROR(ParseTolerance(n, "tolerance", &defaults));
  const YAML::Node samples = root["samples"];
  if (!samples || !samples.IsSequence() || samples.size() == 0) {
    return InvalidArgument(fmt::format("{}: expected a non-empty list under 'samples'", kReferenceFile));
  }
  ReferenceSet set;
  int64_t budget = max_total_bytes;
  for (size_t i = 0; i < samples.size(); ++i) {
    const YAML::Node& item = samples[i];
    const std::string path = Index("samples", i);
    FERRY_RETURN_IF_ERROR(CheckMap(item, path, {"name", "tolerance", "inputs", "outputs"}));
    ReferenceSample sample;
    sample.name = fmt::format("#{}", i);
    sample.tolerance = defaults;
    if (const YAML::Node n = item["name"]) FERRY_RETURN_IF_ERROR(GetString(n, Child(path, "name"), &sample.name));
    if (const YAML::Node n = item["tolerance"]) {
      FERRY_RETURN_IF_ERROR(ParseTolerance(n, Child(path, "tolerance"), &sample.tolerance));
    }
    if (!item["inputs"]) return Missing(item, path, "inputs");
    if (!item["outputs"]) return Missing(item, path, "outputs");
    FERRY_RETURN_IF_ERROR(ParseTensorList(item["inputs"], Child(path, "inputs"), folder, &sample.inputs, &budget));
    FERRY_RETURN_IF_ERROR(ParseTensorList(item["outputs"], Child(path, "outputs"), folder, &sample.outputs, &budget));
    set.samples.push_back(std::move(sample));
  }
  return set;
}

Result<std::optional<ReferenceSet>> ReadReferenceSet(const fs::path& version_dir, int64_t max_total_bytes) {
  const fs::path folder = version_dir / kReferenceFolder;
  std::error_code ec;
  if (!fs::exists(folder, ec)) return std::optional<ReferenceSet>();
  const fs::path file = folder / kReferenceFile;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    return InvalidArgument(fmt::format("the version has a '{}' folder without a readable {}", kReferenceFolder,
                                       kReferenceFile));
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  FERRY_ASSIGN_OR_RETURN(ReferenceSet set, ParseReferenceSet(text, folder, max_total_bytes));
  return std::optional<ReferenceSet>(std::move(set));
}

}  // namespace ferry
