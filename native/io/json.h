// A small JSON reader and writer, enough for safetensors headers and
// checkpoint metadata. Not a general-purpose library: numbers are kept as
// their source text and converted on request.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace tabsight::io {

struct Json {
  enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };
  Type type = Type::kNull;
  bool boolean = false;
  std::string text;  // number text or string value
  std::vector<Json> items;
  std::vector<std::pair<std::string, Json>> fields;  // insertion order kept

  const Json* Find(const std::string& key) const;
  int64_t AsInt() const;  // throws on non-integers
  double AsDouble() const;
};

// Throws std::runtime_error with the byte offset on malformed input.
Json ParseJson(const std::string& text);

std::string QuoteJson(const std::string& s);

}  // namespace tabsight::io
