// Experiment configs: YAML files (yaml-cpp) read into a JSON tree, `--set path=value` overrides applied, and a reader
// that takes typed values out and rejects keys nobody asked for, naming the file and the full key.
#pragma once
#include <nlohmann/json.hpp>

#include <set>
#include <string>
#include <vector>

namespace outeffhop::experiment {

// The YAML file as JSON (mappings -> objects, sequences -> arrays, scalars -> int, float, bool or string).
nlohmann::json load_yaml(const std::string& path);
nlohmann::json parse_yaml(const std::string& text, const std::string& what);

// Applies "a.b.0.c=value" (value in YAML: 3, 1e-3, [0, 1, 2], text); "*" in a path matches every element of an array
// or object. Creates missing object keys; throws on a path through a scalar or past the end of an array.
void apply_override(nlohmann::json& config, const std::string& assignment);

// Typed access to one object of a config. Every key read is marked; finish() throws on the first key never read
// ("<source>: unknown key 'tasks.0.model.d_modle'").
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& object, std::string source, std::string path = "");

  bool has(const std::string& key) const;
  // The value of `key`, or `fallback` when absent; throws naming the key when it has the wrong type.
  template <typename T>
  T get(const std::string& key, const T& fallback) {
    if (!has(key)) return fallback;
    return required<T>(key);
  }
  template <typename T>
  T required(const std::string& key) {
    const auto& value = at(key);
    try {
      return value.template get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(key, "has the wrong type: " + value.dump());
    }
  }
  ConfigReader child(const std::string& key);  // an object (empty when absent)
  std::vector<ConfigReader> children(const std::string& key);  // an array of objects
  void finish() const;

  [[noreturn]] void fail(const std::string& key, const std::string& what) const;
  std::string full(const std::string& key) const {
    return path_.empty() ? key : key.empty() ? path_ : path_ + "." + key;
  }

 private:
  const nlohmann::json& at(const std::string& key);
  nlohmann::json object_;
  std::string source_, path_;
  std::set<std::string> read_;
};

}  // namespace outeffhop::experiment
