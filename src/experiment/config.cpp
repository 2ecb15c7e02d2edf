// YAML experiment configs as JSON trees (see config.h).
#include "outeffhop/experiment/config.h"

#include <yaml-cpp/yaml.h>

#include <stdexcept>

#include "outeffhop/parse_number.h"

namespace outeffhop::experiment {
namespace {

nlohmann::json scalar(const YAML::Node& node) {
  const auto text = node.Scalar();
  if (node.Tag() == "!") return text;  // quoted: always a string
  if (const auto i = parse_int(text)) return *i;
  if (const auto d = parse_double(text)) return *d;
  if (text == "true" || text == "false") return text == "true";
  if (text == "null" || text == "~") return nullptr;
  return text;
}

nlohmann::json to_json(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      auto object = nlohmann::json::object();
      for (const auto& kv : node) object[kv.first.as<std::string>()] = to_json(kv.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      auto array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(to_json(item));
      return array;
    }
    case YAML::NodeType::Scalar:
      return scalar(node);
    default:
      return nullptr;
  }
}

void assign(nlohmann::json& node, const std::vector<std::string>& keys, size_t i, const nlohmann::json& value,
            const std::string& assignment) {
  if (i == keys.size()) {
    node = value;
    return;
  }
  const auto& key = keys[i];
  if (key == "*") {
    if (!node.is_array() && !node.is_object())
      throw std::runtime_error("--set " + assignment + ": '*' needs an array or object there");
    for (auto& child : node) assign(child, keys, i + 1, value, assignment);
  } else if (node.is_array()) {
    size_t used = 0;
    size_t index = 0;
    try {
      index = std::stoul(key, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != key.size() || index >= node.size())
      throw std::runtime_error("--set " + assignment + ": '" + key + "' is not an index of an array of " +
                               std::to_string(node.size()));
    assign(node[index], keys, i + 1, value, assignment);
  } else if (node.is_object() || node.is_null()) {
    assign(node[key], keys, i + 1, value, assignment);
  } else {
    throw std::runtime_error("--set " + assignment + ": '" + key + "' goes through the value " + node.dump());
  }
}

}  // namespace

nlohmann::json parse_yaml(const std::string& text, const std::string& what) {
  try {
    return to_json(YAML::Load(text));
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(what + ": not valid YAML: " + e.what());
  }
}

nlohmann::json load_yaml(const std::string& path) {
  try {
    return to_json(YAML::LoadFile(path));
  } catch (const YAML::BadFile&) {
    throw std::runtime_error(path + ": cannot read the config file");
  } catch (const YAML::Exception& e) {
    throw std::runtime_error(path + ": not valid YAML: " + e.what());
  }
}

void apply_override(nlohmann::json& config, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::runtime_error("--set " + assignment + ": expected path=value (e.g. tasks.*.train.steps=100)");
  std::vector<std::string> keys;
  const auto path = assignment.substr(0, eq);
  for (size_t start = 0;;) {
    const auto dot = path.find('.', start);
    keys.push_back(path.substr(start, dot - start));
    if (keys.back().empty()) throw std::runtime_error("--set " + assignment + ": empty key in the path");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  assign(config, keys, 0, parse_yaml(assignment.substr(eq + 1), "--set " + assignment), assignment);
}

ConfigReader::ConfigReader(const nlohmann::json& object, std::string source, std::string path)
    : object_(object.is_null() ? nlohmann::json::object() : object),
      source_(std::move(source)),
      path_(std::move(path)) {
  if (!object_.is_object())
    throw std::runtime_error(source_ + ": '" + (path_.empty() ? "(top level)" : path_) + "' must be a mapping, got " +
                             object_.dump());
}

bool ConfigReader::has(const std::string& key) const { return object_.contains(key) && !object_[key].is_null(); }

const nlohmann::json& ConfigReader::at(const std::string& key) {
  if (!has(key)) fail(key, "is required");
  read_.insert(key);
  return object_[key];
}

ConfigReader ConfigReader::child(const std::string& key) {
  read_.insert(key);
  return ConfigReader(has(key) ? object_[key] : nlohmann::json::object(), source_, full(key));
}

std::vector<ConfigReader> ConfigReader::children(const std::string& key) {
  const auto& array = at(key);
  if (!array.is_array()) fail(key, "must be a list");
  std::vector<ConfigReader> out;
  for (size_t i = 0; i < array.size(); ++i) out.emplace_back(array[i], source_, full(key) + "." + std::to_string(i));
  return out;
}

void ConfigReader::finish() const {
  for (const auto& [key, value] : object_.items())
    if (!read_.count(key)) throw std::runtime_error(source_ + ": unknown key '" + full(key) + "'");
}

void ConfigReader::fail(const std::string& key, const std::string& what) const {
  throw std::runtime_error(source_ + ": '" + full(key) + "' " + what);
}

}  // namespace outeffhop::experiment
