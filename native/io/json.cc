#include "io/json.h"

#include <cstdlib>
#include <stdexcept>

namespace tabsight::io {

namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  Json Parse() {
    Json v = Value();
    Skip();
    if (pos_ != s_.size()) Error("trailing characters");
    return v;
  }

 private:
  [[noreturn]] void Error(const std::string& what) {
    throw std::runtime_error("invalid JSON at byte " + std::to_string(pos_) + ": " + what);
  }
  void Skip() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
  }
  char Peek() {
    Skip();
    if (pos_ >= s_.size()) Error("unexpected end");
    return s_[pos_];
  }
  void Expect(char c) {
    if (Peek() != c) Error(std::string("expected '") + c + "'");
    ++pos_;
  }
  Json Value() {
    if (++depth_ > 64) Error("nesting too deep");
    Json v;
    char c = Peek();
    if (c == '{') {
      v.type = Json::Type::kObject;
      ++pos_;
      if (Peek() == '}') {
        ++pos_;
      } else {
        for (;;) {
          if (Peek() != '"') Error("expected a key");
          std::string key = String();
          Expect(':');
          v.fields.emplace_back(key, Value());
          if (Peek() == ',') { ++pos_; continue; }
          Expect('}');
          break;
        }
      }
    } else if (c == '[') {
      v.type = Json::Type::kArray;
      ++pos_;
      if (Peek() == ']') {
        ++pos_;
      } else {
        for (;;) {
          v.items.push_back(Value());
          if (Peek() == ',') { ++pos_; continue; }
          Expect(']');
          break;
        }
      }
    } else if (c == '"') {
      v.type = Json::Type::kString;
      v.text = String();
    } else if (s_.compare(pos_, 4, "true") == 0) {
      v.type = Json::Type::kBool, v.boolean = true, pos_ += 4;
    } else if (s_.compare(pos_, 5, "false") == 0) {
      v.type = Json::Type::kBool, pos_ += 5;
    } else if (s_.compare(pos_, 4, "null") == 0) {
      pos_ += 4;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      v.type = Json::Type::kNumber;
      size_t start = pos_;
      while (pos_ < s_.size() && std::string("+-0123456789.eE").find(s_[pos_]) != std::string::npos) ++pos_;
      v.text = s_.substr(start, pos_ - start);
    } else {
      Error("unexpected character");
    }
    --depth_;
    return v;
  }
  std::string String() {
    Expect('"');
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) Error("unterminated string");
      char c = s_[pos_++];
      if (c == '"') break;
      if (c != '\\') { out += c; continue; }
      if (pos_ >= s_.size()) Error("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          if (pos_ + 4 > s_.size()) Error("short \\u escape");
          unsigned cp = std::stoul(s_.substr(pos_, 4), nullptr, 16);
          pos_ += 4;
          if (cp >= 0xD800 && cp <= 0xDBFF && pos_ + 6 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u') {
            unsigned lo = std::stoul(s_.substr(pos_ + 2, 4), nullptr, 16);
            pos_ += 6;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          // UTF-8 encode.
          if (cp < 0x80) {
            out += static_cast<char>(cp);
          } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
          }
          break;
        }
        default: Error("bad escape");
      }
    }
    return out;
  }

  const std::string& s_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

const Json* Json::Find(const std::string& key) const {
  for (const auto& f : fields) {
    if (f.first == key) return &f.second;
  }
  return nullptr;
}

int64_t Json::AsInt() const {
  if (type != Type::kNumber) throw std::runtime_error("expected an integer");
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (end == text.c_str() || *end != '\0') throw std::runtime_error("expected an integer but found " + text);
  return static_cast<int64_t>(v);
}

double Json::AsDouble() const {
  if (type != Type::kNumber) throw std::runtime_error("expected a number");
  return std::strtod(text.c_str(), nullptr);
}

Json ParseJson(const std::string& text) { return Parser(text).Parse(); }

std::string QuoteJson(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

}  // namespace tabsight::io
